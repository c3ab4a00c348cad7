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

// The group the kernel's fair scheduler shares CPU time between for pid: its cpu cgroup ("cgroup
// /a/b", cgroup v1's cpu hierarchy, or the nearest v2 cgroup with the cpu controller), or in the
// root group, with kernel.sched_autogroup_enabled, its session's autogroup ("autogroup-52");
// "root" otherwise, "" when pid is gone. Busy stacks of two groups on one CPU are scheduled
// group against group, which this kernel gets wrong (doc/reliability.md).
[[nodiscard]] std::string cpu_scheduling_group(pid_t pid);

} // namespace gazelle::mgr
