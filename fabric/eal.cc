// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_service_component.h>

namespace gazelle::fabric {

namespace {

std::string joined(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        out += (out.empty() ? "" : " ") + a;
    }
    return out;
}

// EAL's service library keeps each process's own state (a table of 64 services and one entry per
// lcore, 152 KiB) in the shared hugepage heap, and frees it in rte_eal_cleanup(): a secondary that
// is SIGKILLed never gets there, and the heap lost 155904 bytes for good per killed app
// (crash_soak_mp_test). No fabric process runs DPDK services, so a secondary gives it back at
// once (rte_eal_cleanup() then finds nothing to free). The primary, the manager, keeps its own.
void release_service_state_of_secondary() {
    if (rte_eal_process_type() == RTE_PROC_SECONDARY) {
        rte_service_finalize();
    }
}

} // namespace

Result<void> eal_init(const std::string& program, const std::vector<std::string>& args) {
    std::vector<std::string> storage;
    storage.reserve(args.size() + 1);
    storage.push_back(program);
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(storage.size()), argv.data()) < 0) {
        const int err = rte_errno;
        return make_error(err, "Failed to initialise DPDK EAL (" + joined(args) + "): " + rte_strerror(err));
    }
    release_service_state_of_secondary();
    return {};
}

Result<int> eal_init_from_main(int argc, char** argv) {
    const int consumed = rte_eal_init(argc, argv);
    if (consumed < 0) {
        const int err = rte_errno;
        return make_error(err, std::string("Failed to initialise DPDK EAL: ") + rte_strerror(err));
    }
    release_service_state_of_secondary();
    int next = consumed + 1; // argv[consumed] is the program name again
    if (next < argc && std::string(argv[next]) == "--") {
        ++next;
    }
    return next;
}

EalSession::~EalSession() { (void)rte_eal_cleanup(); }

} // namespace gazelle::fabric
