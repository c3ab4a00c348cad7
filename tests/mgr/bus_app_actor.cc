// SPDX-License-Identifier: BSD-3-Clause
// An application for the D-Bus tests: registers with gazelle-mgr (fabric/mgr_client.h) and, with
// --hold, joins the fabric as a DPDK secondary and holds what reclaim must give back.
//
//   bus_app_actor --socket PATH [--queues N] [--program NAME] [--hold]
// Prints "ATTACHED pid=P port=I slots=S[,S] lcores=L[,L]", then with --hold
// "READY rules=R listener=0 memp=1 in_hand=M". Commands on stdin:
//   detach   detach cleanly (prints "DETACHED rc=0") and exit 0
//   quit     exit 0 without detaching
// Otherwise it waits (for SIGKILL).
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/mgr_client.h"

namespace {

using namespace gazelle::fabric;

constexpr unsigned k_rules = 5;
constexpr unsigned k_in_hand = 100;

std::string join(const auto& values) {
    std::string out;
    for (const auto v : values) {
        out += (out.empty() ? "" : ",") + std::to_string(v);
    }
    return out;
}

int hold(const Attachment& attachment) {
    auto eal = eal_init("bus_app_actor", attachment.eal_args());
    if (!eal) {
        std::fprintf(stderr, "bus_app_actor: %s\n", eal.error().message.c_str());
        return 1;
    }
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "bus_app_actor: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    const QueueSlot slot = attachment.slots()[0];
    const Epoch epoch = attachment.epochs()[0];
    const OwnerTag me = OwnerTag::of(slot, epoch);
    unsigned rules = 0;
    for (unsigned i = 0; i < k_rules; ++i) {
        const FlowKey key =
            FlowKey::connection(IPPROTO_TCP, htonl(0xc6120001u), htons(static_cast<std::uint16_t>(5000 + i)),
                                htonl(0xc6120009u), htons(40000));
        rules += f.flows().add_connection(key, flow_hash(key), slot, epoch) == 0 ? 1u : 0u;
    }
    const int listener = f.flows().add_listener(IPPROTO_TCP, 0, htons(7000), slot, epoch);
    auto memp = f.memps().create_memp(me, "tcp_pcb", 64 * 1024);
    rte_mempool* pool = f.pool(slot);
    if (pool == nullptr) {
        std::fprintf(stderr, "bus_app_actor: no mbuf pool for slot %u\n", slot);
        return 1;
    }
    static rte_mbuf* held[k_in_hand];
    const unsigned in_hand = alloc_burst(pool, std::span<rte_mbuf*>(held), me);
    std::printf("READY rules=%u listener=%d memp=%d in_hand=%u\n", rules, listener, memp.ok() ? 1 : 0, in_hand);
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50)); // until SIGKILL
    }
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    AttachOptions options;
    options.program = "bus_app_actor";
    bool hold_resources = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc) {
            options.socket_path = argv[++i];
        } else if (a == "--queues" && i + 1 < argc) {
            options.queues = static_cast<unsigned>(std::stoul(argv[++i]));
        } else if (a == "--program" && i + 1 < argc) {
            options.program = argv[++i];
        } else if (a == "--hold") {
            hold_resources = true;
        } else {
            std::fprintf(stderr, "bus_app_actor: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    auto attached = attach_to_manager(options);
    if (!attached) {
        std::printf("ERROR %s\n", attached.error().message.c_str());
        return 1;
    }
    Attachment attachment = std::move(*attached);
    std::printf("ATTACHED pid=%d port=%u slots=%s lcores=%s\n", static_cast<int>(getpid()), attachment.port(),
                join(attachment.slots()).c_str(), join(attachment.lcores()).c_str());
    if (hold_resources) {
        return hold(attachment);
    }
    char line[256];
    while (std::fgets(line, sizeof line, stdin) != nullptr) {
        if (std::strncmp(line, "detach", 6) == 0) {
            auto r = attachment.detach();
            std::printf("DETACHED rc=%d %s\n", r.ok() ? 0 : r.error().code, r.ok() ? "" : r.error().message.c_str());
            return r.ok() ? 0 : 1;
        }
        if (std::strncmp(line, "quit", 4) == 0) {
            return 0;
        }
    }
    for (;;) {
        pause();
    }
}
