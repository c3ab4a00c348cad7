// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// EAL start-up and shutdown with clear errors, for the manager, the stacks and test actors.

#include <string>
#include <vector>

#include "conf/result.h"

namespace gazelle::fabric {

// Where a primary maps the hugepages (--base-virtaddr); secondaries map them at the same
// addresses. Far above the usual mmap area, so the range is free in every process (measured:
// under ASan, or in apps with large heaps, the address EAL picks by default can be taken:
// "Cannot reserve ... at [addr]"). ThreadSanitizer keeps that range for its shadow memory: its
// builds use its low application range (below 512 GiB), which has room for DPDK's reservations.
#if defined(__SANITIZE_THREAD__)
inline constexpr const char* k_base_virtaddr_arg = "--base-virtaddr=0x1000000000";
#else
inline constexpr const char* k_base_virtaddr_arg = "--base-virtaddr=0x200000000000";
#endif

// Runs rte_eal_init() with `args` (argv[0] is prepended). Errors carry rte_errno and the
// arguments, e.g. "Failed to initialise DPDK EAL (--proc-type=secondary --file-prefix=x): ...".
Result<void> eal_init(const std::string& program, const std::vector<std::string>& args);

// Initialises EAL from main()'s argc/argv, DPDK style; on success returns the index of the first
// argument after EAL's (the program's own arguments start there, after an optional "--").
Result<int> eal_init_from_main(int argc, char** argv);

// rte_eal_cleanup() on destruction (releases this process's hugepage mappings and runtime files).
class EalSession {
public:
    EalSession() = default;
    ~EalSession();
    EalSession(const EalSession&) = delete;
    EalSession& operator=(const EalSession&) = delete;
};

} // namespace gazelle::fabric
