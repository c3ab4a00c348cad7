// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// CPU and lcore lists in the notation of DPDK's -l and Linux's cpulist files: "0-3,8,10-11".
//
// Order is kept as written because it carries meaning (num_cpus = "2,22" pins stack thread 0 to
// CPU 2 and stack thread 1 to CPU 22). Duplicates and reversed ranges are errors.

#include <string>
#include <string_view>
#include <vector>

#include "conf/result.h"

namespace gazelle::conf {

// Parses "a,b-c,..." with every id < limit; the empty string is the empty list.
// Errors (EINVAL): malformed entry, reversed range, id >= limit, duplicate id.
[[nodiscard]] Result<std::vector<unsigned>> parse_cpu_list(std::string_view text, unsigned limit);

// The inverse of parse_cpu_list: ascending runs become "a-b" ({1..63} -> "1-63").
[[nodiscard]] std::string format_cpu_list(const std::vector<unsigned>& ids);

} // namespace gazelle::conf
