// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// EAL start-up and shutdown with clear errors, for the manager, the stacks and test actors.

#include <string>
#include <vector>

#include "conf/result.h"

namespace gazelle::fabric {

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
