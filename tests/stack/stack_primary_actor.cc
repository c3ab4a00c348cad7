// SPDX-License-Identifier: BSD-3-Clause
// The test primary of the stack tests: creates the fabric and plays the manager's part (claim
// and reclaim queues on command), so app processes can attach without gazelle-mgr.
//
//   stack_primary_actor EAL... -- veth QA QB [RULES]
//       two user-veth ports on one bridge: veth_a 198.18.0.1/16 (QA queues, slots 0..QA-1) and
//       veth_b 198.18.1.2/16 (QB queues, the next slots); RULES: flow table size (default 8192;
//       two rules per connection when both ends are our stacks)
//   stack_primary_actor EAL(--vdev net_tap0,iface=X)... -- tap QUEUES IPV4 PREFIXLEN
//       one tap ethdev port with QUEUES queues, our address IPV4
// Prints "READY slots=N"; then commands on stdin, one reply line each:
//   claim SLOT PID LCORE -> CLAIM ok= epoch=
//   reclaim SLOT         -> RECLAIM ok= owned= rules= listeners= memps= returned= ...
//   usage                -> USAGE in_use= rules= memps= l2_in_use=
//   heap                 -> HEAP allocated= memp_bytes= (DPDK malloc heap of all sockets, bytes;
//                           memory registered by stacks: their lwIP arenas)
//   stats SLOT           -> STATS <QueueStats fields>
//   queue SLOT           -> QUEUE slot= state= pid= adopter= (adopter: slot of the lease holder, -1 none)
//   hold SLOT FREE       -> HELD n= free=   (takes SLOT's pool down to FREE free mbufs: another holder)
//   release              -> RELEASED n=     (frees what hold took)
// The fabric has an L2 pool of 2047 mbufs; the low watermarks are 10%.
//   quit
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/port_io.h"
#include "fabric/softrss.h"

using namespace gazelle::fabric;

namespace {

std::uint32_t ip(const char* text) {
    in_addr a{};
    inet_pton(AF_INET, text, &a);
    return a.s_addr;
}

// A line from stdin, or nullopt-like false after a timeout (keeps the primary responsive).
bool read_command(std::string& line) {
    static std::string buffer;
    for (;;) {
        const auto nl = buffer.find('\n');
        if (nl != std::string::npos) {
            line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            return true;
        }
        pollfd pfd{STDIN_FILENO, POLLIN, 0};
        const int rc = poll(&pfd, 1, 100);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc <= 0) {
            return false;
        }
        char chunk[256];
        const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            buffer += "\nquit\n";
            continue;
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
    }
}

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < line.size()) {
        const auto end = line.find(' ', at);
        if (end != at) {
            out.push_back(line.substr(at, end == std::string::npos ? std::string::npos : end - at));
        }
        if (end == std::string::npos) {
            break;
        }
        at = end + 1;
    }
    return out;
}

PortSpec veth_port(const char* name, std::uint8_t last_mac_byte, const char* addr, std::uint16_t queues) {
    PortSpec p{};
    std::snprintf(p.name, sizeof p.name, "%s", name);
    p.kind = PortKind::user_veth;
    const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, last_mac_byte};
    std::memcpy(p.mac, mac, 6);
    p.bridge = 1;
    p.nb_queues = queues;
    p.mtu = 1500;
    p.ipv4 = ip(addr);
    p.netmask = ip("255.255.0.0");
    std::memcpy(p.rss_key, k_default_rss_key.data(), k_rss_key_bytes);
    return p;
}

FabricParams base_params() {
    FabricParams params;
    params.max_queues = 8;
    params.pool.mbufs = 4095;
    params.pool.cache_size = 128;
    params.flows.rules = 8192;
    params.flows.listeners = 64;
    params.forward_lane_capacity = 1024;
    params.rx_lane_capacity = 1024;
    params.l2_pool_mbufs = 2047;
    params.low_watermark_percent = 10;
    return params;
}

void print_stats(const Registry& registry, QueueSlot slot) {
    const QueueStats& s = registry.stats(slot);
    std::printf("STATS slot=%u rx_packets=%llu rx_bytes=%llu tx_packets=%llu tx_bytes=%llu forwarded_out=%llu "
                "forwarded_in=%llu arp_fanout=%llu local=%llu drop_inbox_full=%llu drop_no_owner=%llu "
                "drop_owner_gone=%llu drop_malformed=%llu drop_tx_full=%llu drop_alloc_failed=%llu "
                "drop_table_full=%llu connections=%llu adopted_rx_packets=%llu adopted_rx_bytes=%llu "
                "adopted_queues=%llu adoptions=%llu adopt_handover_waits=%llu heartbeat=%llu parked=%u "
                "l2_allocs=%llu l2_alloc_failed=%llu l2_shed=%llu\n",
                slot, static_cast<unsigned long long>(s.rx_packets), static_cast<unsigned long long>(s.rx_bytes),
                static_cast<unsigned long long>(s.tx_packets), static_cast<unsigned long long>(s.tx_bytes),
                static_cast<unsigned long long>(s.forwarded_out), static_cast<unsigned long long>(s.forwarded_in),
                static_cast<unsigned long long>(s.arp_fanout), static_cast<unsigned long long>(s.local),
                static_cast<unsigned long long>(s.drop_inbox_full), static_cast<unsigned long long>(s.drop_no_owner),
                static_cast<unsigned long long>(s.drop_owner_gone), static_cast<unsigned long long>(s.drop_malformed),
                static_cast<unsigned long long>(s.drop_tx_full), static_cast<unsigned long long>(s.drop_alloc_failed),
                static_cast<unsigned long long>(s.drop_table_full), static_cast<unsigned long long>(s.connections),
                static_cast<unsigned long long>(s.adopted_rx_packets), static_cast<unsigned long long>(s.adopted_rx_bytes),
                static_cast<unsigned long long>(s.adopted_queues), static_cast<unsigned long long>(s.adoptions),
                static_cast<unsigned long long>(s.adopt_handover_waits),
                static_cast<unsigned long long>(registry.queue(slot).heartbeat.load()),
                static_cast<unsigned>(registry.queue(slot).parked.load()),
                static_cast<unsigned long long>(s.l2_allocs), static_cast<unsigned long long>(s.l2_alloc_failed),
                static_cast<unsigned long long>(s.l2_shed));
}

int serve(Fabric& f) {
    std::printf("READY slots=%u\n", f.registry().nb_slots());
    std::vector<rte_mbuf*> held;
    std::string line;
    for (;;) {
        if (!read_command(line)) {
            continue;
        }
        const auto w = words(line);
        if (w.empty()) {
            continue;
        }
        if (w[0] == "quit") {
            break;
        }
        if (w[0] == "claim" && w.size() == 4) {
            auto epoch = f.claim_queue(static_cast<QueueSlot>(std::stoul(w[1])), std::stoi(w[2]),
                                       static_cast<std::uint16_t>(std::stoul(w[3])));
            if (!epoch) {
                std::fprintf(stderr, "primary: %s\n", epoch.error().message.c_str());
            }
            std::printf("CLAIM ok=%d epoch=%u\n", epoch.ok() ? 1 : 0, epoch.ok() ? *epoch : 0);
        } else if (w[0] == "reclaim" && w.size() == 2) {
            auto r = f.reclaim_queue(static_cast<QueueSlot>(std::stoul(w[1])));
            if (!r) {
                std::printf("RECLAIM ok=0\n");
                continue;
            }
            std::fprintf(stderr, "primary: reclaimed %s\n", describe(*r).c_str());
            std::printf("RECLAIM ok=1 owned=%d rules=%u listeners=%u memps=%u memp_bytes=%llu returned=%u cached=%u "
                        "inbox=%u rx=%u salvaged=%u adoptions=%u grace_timeout=%d usec=%.0f\n",
                        r->was_owned, r->rules, r->listeners, r->memp_pools,
                        static_cast<unsigned long long>(r->memp_bytes), r->mbufs_returned, r->cache_flushed,
                        r->inbox_drained, r->rx_drained, r->salvaged, r->adoptions, r->grace_timed_out ? 1 : 0,
                        r->usec);
        } else if (w[0] == "usage") {
            unsigned in_use = 0;
            for (QueueSlot s = 0; s < f.registry().nb_slots(); ++s) {
                if (rte_mempool* p = f.pool(s); p != nullptr) {
                    in_use += pool_usage(p).in_use;
                }
            }
            std::printf("USAGE in_use=%u rules=%u memps=%zu l2_in_use=%u\n", in_use, f.flows().count(),
                        f.memps().list().size(), f.l2_pool() != nullptr ? pool_usage(f.l2_pool()).in_use : 0);
        } else if (w[0] == "heap") {
            // The fabric's memory view (gazellectl show memory): hugepage heap every process
            // allocates from (memzones of the stacks' arenas included), and what the stacks
            // registered.
            std::uint64_t allocated = 0;
            for (unsigned socket = 0; socket < rte_socket_count(); ++socket) {
                rte_malloc_socket_stats stats{};
                if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(socket), &stats) == 0) {
                    allocated += stats.heap_allocsz_bytes;
                }
            }
            std::uint64_t memp_bytes = 0;
            for (const MempInfo& m : f.memps().list()) {
                memp_bytes += m.bytes;
            }
            std::printf("HEAP allocated=%llu memp_bytes=%llu\n", static_cast<unsigned long long>(allocated),
                        static_cast<unsigned long long>(memp_bytes));
        } else if (w[0] == "queue" && w.size() == 2) {
            const auto slot = static_cast<QueueSlot>(std::stoul(w[1]));
            const QueueEntry& q = f.registry().queue(slot);
            const OwnerTag adopter = f.registry().adopter_of(slot);
            std::printf("QUEUE slot=%u state=%u pid=%d adopter=%d\n", slot, static_cast<unsigned>(q.state.load()),
                        q.owner_pid.load(), adopter.empty() ? -1 : static_cast<int>(adopter.slot()));
        } else if (w[0] == "hold" && w.size() == 3) {
            rte_mempool* pool = f.pool(static_cast<QueueSlot>(std::stoul(w[1])));
            const unsigned leave = static_cast<unsigned>(std::stoul(w[2]));
            unsigned n = 0;
            while (pool != nullptr && pool_usage(pool).available > leave) {
                rte_mbuf* m = rte_pktmbuf_alloc(pool); // untagged: the test primary holds it, reclaim never
                if (m == nullptr) {
                    break;
                }
                held.push_back(m);
                ++n;
            }
            std::printf("HELD n=%u free=%u\n", n, pool != nullptr ? pool_usage(pool).available : 0);
        } else if (w[0] == "release") {
            free_burst(held);
            std::printf("RELEASED n=%zu\n", held.size());
            held.clear();
            // Back to the rings, where the stacks' free counts see them (not in our lcore's caches).
            for (QueueSlot s = 0; s < f.registry().nb_slots(); ++s) {
                if (rte_mempool* pool = f.pool(s); pool != nullptr) {
                    rte_mempool_cache_flush(rte_mempool_default_cache(pool, rte_lcore_id()), pool);
                }
            }
        } else if (w[0] == "stats" && w.size() == 2) {
            print_stats(f.registry(), static_cast<QueueSlot>(std::stoul(w[1])));
        } else {
            std::printf("UNKNOWN %s\n", line.c_str());
        }
    }
    return 0;
}

int run_veth(std::uint16_t qa, std::uint16_t qb, std::uint32_t rules) {
    FabricParams params = base_params();
    params.flows.rules = rules;
    params.ports = {veth_port("veth_a", 0x0a, "198.18.0.1", qa), veth_port("veth_b", 0x0b, "198.18.1.2", qb)};
    auto fabric = Fabric::create(params);
    if (!fabric) {
        std::printf("ERROR %s\n", fabric.error().message.c_str());
        return 1;
    }
    return serve(**fabric);
}

int run_tap(std::uint16_t queues, const char* addr, unsigned prefix) {
    std::uint16_t port_id = 0;
    if (rte_eth_dev_get_port_by_name("net_tap0", &port_id) != 0) {
        std::printf("ERROR no net_tap0 (pass --vdev net_tap0,iface=...)\n");
        return 1;
    }
    rte_ether_addr mac{};
    if (rte_eth_macaddr_get(port_id, &mac) != 0) {
        std::printf("ERROR no MAC for net_tap0\n");
        return 1;
    }
    PortSpec spec{};
    std::snprintf(spec.name, sizeof spec.name, "tap0");
    spec.kind = PortKind::ethdev;
    spec.dpdk_port_id = port_id;
    std::memcpy(spec.mac, mac.addr_bytes, 6);
    spec.nb_queues = queues;
    spec.mtu = 1500;
    spec.ipv4 = ip(addr);
    spec.netmask = htonl(prefix == 0 ? 0 : ~0u << (32 - prefix));
    std::memcpy(spec.rss_key, k_default_rss_key.data(), k_rss_key_bytes);
    FabricParams params = base_params();
    params.ports = {spec};
    auto fabric = Fabric::create(params);
    if (!fabric) {
        std::printf("ERROR %s\n", fabric.error().message.c_str());
        return 1;
    }
    auto started = start_ethdev_port((*fabric)->registry(), 0, EthdevParams{256, 256});
    if (!started) {
        std::printf("ERROR %s\n", started.error().message.c_str());
        return 1;
    }
    const int rc = serve(**fabric);
    stop_ethdev_port((*fabric)->registry(), 0);
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    auto first = eal_init_from_main(argc, argv);
    if (!first) {
        std::printf("ERROR %s\n", first.error().message.c_str());
        return 1;
    }
    EalSession eal;
    const int i = *first;
    const std::string mode = i < argc ? argv[i] : "";
    if (mode == "veth" && i + 2 < argc) {
        const auto rules = i + 3 < argc ? static_cast<std::uint32_t>(std::stoul(argv[i + 3])) : base_params().flows.rules;
        return run_veth(static_cast<std::uint16_t>(std::stoul(argv[i + 1])),
                        static_cast<std::uint16_t>(std::stoul(argv[i + 2])), rules);
    }
    if (mode == "tap" && i + 3 < argc) {
        return run_tap(static_cast<std::uint16_t>(std::stoul(argv[i + 1])), argv[i + 2],
                       static_cast<unsigned>(std::stoul(argv[i + 3])));
    }
    std::fprintf(stderr, "stack_primary_actor: bad arguments\n");
    return 2;
}
