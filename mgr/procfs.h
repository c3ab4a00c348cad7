// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Small reads of /proc for the manager (process names, thread states, mappings).

#include <cstddef>
#include <string>

#include <sys/types.h>

namespace gazelle::mgr {

// The whole file (at most max_bytes), or "" when it cannot be read.
[[nodiscard]] std::string read_text_file(const std::string& path, std::size_t max_bytes = 1 << 20);

// /proc/<pid>/comm without its newline, or "" when the process is gone.
[[nodiscard]] std::string process_name(pid_t pid);

} // namespace gazelle::mgr
