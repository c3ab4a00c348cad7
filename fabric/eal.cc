// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>

namespace gazelle::fabric {

namespace {

std::string joined(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        out += (out.empty() ? "" : " ") + a;
    }
    return out;
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
    return {};
}

Result<int> eal_init_from_main(int argc, char** argv) {
    const int consumed = rte_eal_init(argc, argv);
    if (consumed < 0) {
        const int err = rte_errno;
        return make_error(err, std::string("Failed to initialise DPDK EAL: ") + rte_strerror(err));
    }
    int next = consumed + 1; // argv[consumed] is the program name again
    if (next < argc && std::string(argv[next]) == "--") {
        ++next;
    }
    return next;
}

EalSession::~EalSession() { (void)rte_eal_cleanup(); }

} // namespace gazelle::fabric
