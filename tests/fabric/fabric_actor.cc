// SPDX-License-Identifier: BSD-3-Clause
// Processes for fabric_mp_test: a primary that owns the fabric (and plays the manager's claim and
// reclaim on command), stacks that poll a queue and forward, an injector on a second port, and a
// victim that holds mbufs everywhere before it is killed.
//
//   fabric_actor EAL... -- primary
//   fabric_actor EAL... -- stack SLOT            (secondary; commands on stdin)
//   fabric_actor EAL... -- inject SLOT FLOWS PER_FLOW   (secondary on port B)
//   fabric_actor EAL... -- victim SLOT PEER_SLOT (secondary)
//   fabric_actor EAL... -- tiered SLOT           (secondary: allocates through MbufSource on command)
//   fabric_actor EAL... -- l2victim SLOT PEER_SLOT (secondary: holds L2 mbufs everywhere, is killed)
// The primary's fabric has an L2 pool of 1023 mbufs; every low watermark is 10%.
// Frames are UDP 198.18.1.2:(10000+flow) -> 198.18.0.1:7000 carrying (flow, seq).
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/flow_key.h"

using namespace gazelle::fabric;

namespace {

constexpr std::uint8_t k_mac_a[6] = {0x02, 0, 0, 0, 0, 0x0a};
constexpr std::uint8_t k_mac_b[6] = {0x02, 0, 0, 0, 0, 0x0b};
constexpr char k_ip_a[] = "198.18.0.1";
constexpr char k_ip_b[] = "198.18.1.2";
constexpr std::uint16_t k_server_port = 7000;

std::uint32_t ip(const char* text) {
    in_addr a{};
    inet_pton(AF_INET, text, &a);
    return a.s_addr;
}

PortSpec port_entry(const char* name, const std::uint8_t* mac, const char* addr, std::uint16_t queues) {
    PortSpec p{};
    std::snprintf(p.name, sizeof p.name, "%s", name);
    p.kind = PortKind::user_veth;
    std::memcpy(p.mac, mac, 6);
    p.bridge = 1;
    p.nb_queues = queues;
    p.mtu = 1500;
    p.ipv4 = ip(addr);
    p.netmask = ip("255.255.0.0");
    std::memcpy(p.rss_key, k_default_rss_key.data(), k_rss_key_bytes);
    return p;
}

// Reads a command line from stdin without blocking (the poll loops keep running).
bool read_command(std::string& line) {
    static std::string buffer;
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    if (poll(&pfd, 1, 0) == 1) {
        char chunk[256];
        const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n > 0) {
            buffer.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0) {
            buffer += "\nquit\n";
        }
    }
    const auto nl = buffer.find('\n');
    if (nl == std::string::npos) {
        return false;
    }
    line = buffer.substr(0, nl);
    buffer.erase(0, nl + 1);
    return true;
}

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < line.size()) {
        const auto end = line.find(' ', at);
        out.push_back(line.substr(at, end - at));
        if (end == std::string::npos) {
            break;
        }
        at = end + 1;
    }
    return out;
}

FlowKey flow_key(unsigned flow) {
    return FlowKey::connection(17, ip(k_ip_a), htons(k_server_port), ip(k_ip_b), htons(static_cast<std::uint16_t>(10000 + flow)));
}

rte_mbuf* make_frame(rte_mempool* pool, OwnerTag owner, unsigned flow, std::uint32_t seq) {
    rte_mbuf* m = nullptr;
    if (alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), owner) != 1) {
        return nullptr;
    }
    constexpr std::uint16_t len = 14 + 20 + 8 + 8;
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, len));
    if (f == nullptr) {
        free_one(m);
        return nullptr;
    }
    std::memset(f, 0, len);
    std::memcpy(f, k_mac_a, 6);
    std::memcpy(f + 6, k_mac_b, 6);
    f[12] = 0x08;
    std::uint8_t* iph = f + 14;
    iph[0] = 0x45;
    const std::uint16_t total = htons(20 + 8 + 8);
    std::memcpy(iph + 2, &total, 2);
    iph[8] = 64;
    iph[9] = 17;
    const std::uint32_t src = ip(k_ip_b), dst = ip(k_ip_a);
    std::memcpy(iph + 12, &src, 4);
    std::memcpy(iph + 16, &dst, 4);
    std::uint8_t* udp = iph + 20;
    const std::uint16_t sport = htons(static_cast<std::uint16_t>(10000 + flow)), dport = htons(k_server_port),
                        ulen = htons(16);
    std::memcpy(udp, &sport, 2);
    std::memcpy(udp + 2, &dport, 2);
    std::memcpy(udp + 4, &ulen, 2);
    const std::uint32_t payload[2] = {flow, seq};
    std::memcpy(udp + 8, payload, 8);
    return m;
}

int run_primary() {
    FabricParams params;
    params.max_queues = 8;
    params.pool.mbufs = 2047;
    params.pool.cache_size = 64;
    params.flows.rules = 4096;
    params.flows.listeners = 64;
    params.forward_lane_capacity = 256;
    params.rx_lane_capacity = 256;
    params.ports = {port_entry("veth_a", k_mac_a, k_ip_a, 4), port_entry("veth_b", k_mac_b, k_ip_b, 2)};
    params.l2_pool_mbufs = 1023;
    params.low_watermark_percent = 10;
    auto fabric = Fabric::create(params);
    if (!fabric) {
        std::fprintf(stderr, "primary: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    std::printf("READY slots=%u l1_reserve=%u l2_reserve=%u l2_mbufs=%u\n", f.registry().nb_slots(),
                f.registry().l2_pool().l1_reserve, f.registry().l2_pool().l2_reserve, f.registry().l2_pool().mbufs);
    std::string line;
    for (;;) {
        if (!read_command(line)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
            std::printf("CLAIM ok=%d epoch=%u\n", epoch.ok() ? 1 : 0, epoch.ok() ? *epoch : 0);
        } else if (w[0] == "reclaim" && w.size() == 2) {
            auto r = f.reclaim_queue(static_cast<QueueSlot>(std::stoul(w[1])));
            if (!r) {
                std::printf("RECLAIM ok=0\n");
                continue;
            }
            std::fprintf(stderr, "primary: reclaimed %s\n", describe(*r).c_str());
            std::printf("RECLAIM ok=1 owned=%d rules=%u listeners=%u memps=%u returned=%u cached=%u l2=%u inbox=%u rx=%u "
                        "salvaged=%u grace_timeout=%d usec=%.0f\n",
                        r->was_owned, r->rules, r->listeners, r->memp_pools, r->mbufs_returned, r->cache_flushed,
                        r->l2_returned, r->inbox_drained, r->rx_drained, r->salvaged, r->grace_timed_out ? 1 : 0,
                        r->usec);
        } else if (w[0] == "usage") {
            unsigned in_use = 0;
            unsigned cached = 0;
            for (QueueSlot s = 0; s < f.registry().nb_slots(); ++s) {
                rte_mempool* p = f.pool(s);
                if (p == nullptr) {
                    continue;
                }
                in_use += pool_usage(p).in_use;
                for (unsigned l = 0; l < RTE_MAX_LCORE; ++l) {
                    cached += p->local_cache[l].len;
                }
            }
            const PoolUsage l2 = pool_usage(f.l2_pool());
            std::printf("USAGE in_use=%u cached=%u rules=%u memps=%zu l2_in_use=%u l2_size=%u\n", in_use, cached,
                        f.flows().count(), f.memps().list().size(), l2.in_use, l2.size);
        } else if (w[0] == "cache" && w.size() == 2) { // objects in one lcore's caches, all pools
            unsigned len = 0;
            const unsigned lcore = static_cast<unsigned>(std::stoul(w[1]));
            for (QueueSlot s = 0; s < f.registry().nb_slots(); ++s) {
                if (rte_mempool* p = f.pool(s); p != nullptr && lcore < RTE_MAX_LCORE) {
                    len += p->local_cache[lcore].len;
                }
            }
            const unsigned l2_len = lcore < RTE_MAX_LCORE ? f.l2_pool()->local_cache[lcore].len : 0;
            std::printf("CACHE len=%u l2_len=%u\n", len + l2_len, l2_len);
        } else if (w[0] == "stats" && w.size() == 2) { // the L2 counters of one queue, as the manager sees them
            const QueueStats& st = f.registry().stats(static_cast<QueueSlot>(std::stoul(w[1])));
            std::printf("STATS l2_allocs=%llu l2_alloc_failed=%llu l2_shed=%llu\n",
                        static_cast<unsigned long long>(st.l2_allocs),
                        static_cast<unsigned long long>(st.l2_alloc_failed),
                        static_cast<unsigned long long>(st.l2_shed));
        } else if (w[0] == "state" && w.size() == 2) {
            const auto s = static_cast<QueueSlot>(std::stoul(w[1]));
            std::printf("STATE state=%u live=%d\n", static_cast<unsigned>(f.registry().queue(s).state.load()),
                        f.registry().is_live(s) ? 1 : 0);
        }
    }
    return 0;
}

// A stack: polls its user-veth rx queue and its forwarding inbox, forwards what is not its own,
// and checks that its own flows arrive in order.
int run_stack(QueueSlot slot) {
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "stack: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    FlowTable& flows = f.flows();
    Forwarder fwd(f.registry(), flows, f.forward_inboxes(), slot, f.pool(slot));
    fwd.unpark();
    std::map<unsigned, std::uint32_t> next_seq; // per owned flow
    unsigned received = 0, out_of_order = 0, not_mine = 0;
    std::vector<unsigned> owned;
    std::printf("READY slot=%u\n", slot);
    std::array<rte_mbuf*, k_burst_max> rx, local, none;
    std::string line;
    unsigned idle = 0;
    for (;;) {
        if (read_command(line)) {
            const auto w = words(line);
            if (w.empty()) {
                continue;
            }
            if (w[0] == "quit") {
                break;
            }
            if (w[0] == "own" && w.size() == 2) { // own FLOW: add the connection rule
                const unsigned flow = static_cast<unsigned>(std::stoul(w[1]));
                const FlowKey key = flow_key(flow);
                const int rc = flows.add_connection(key, flow_hash(key), slot, f.registry().queue(slot).epoch.load());
                owned.push_back(flow);
                next_seq[flow] = 0;
                std::printf("OWN rc=%d\n", rc);
            } else if (w[0] == "report") {
                std::string seqs;
                for (unsigned flow : owned) {
                    seqs += " f" + std::to_string(flow) + "=" + std::to_string(next_seq[flow]);
                }
                const QueueStats& st = f.registry().stats(slot);
                std::printf("REPORT received=%u out_of_order=%u not_mine=%u forwarded_out=%llu forwarded_in=%llu%s\n",
                            received, out_of_order, not_mine, static_cast<unsigned long long>(st.forwarded_out),
                            static_cast<unsigned long long>(st.forwarded_in), seqs.c_str());
            }
        }
        unsigned n = f.user_veth().rx_burst(slot, rx);
        ForwardSplit split = fwd.forward_burst(std::span<rte_mbuf* const>(rx.data(), n), local, none);
        unsigned nl = split.local;
        nl += fwd.receive_forwarded(std::span<rte_mbuf*>(local.data() + nl, local.size() - nl));
        for (unsigned i = 0; i < nl; ++i) {
            std::uint32_t payload[2];
            std::memcpy(payload, rte_pktmbuf_mtod_offset(local[i], const std::uint8_t*, 42), 8);
            auto it = next_seq.find(payload[0]);
            if (it == next_seq.end()) {
                ++not_mine;
            } else {
                if (payload[1] != it->second) {
                    ++out_of_order;
                }
                it->second = payload[1] + 1;
            }
            ++received;
        }
        free_burst(std::span<rte_mbuf* const>(local.data(), nl));
        free_burst(std::span<rte_mbuf* const>(none.data(), split.no_owner));
        not_mine += split.no_owner;
        fwd.end_of_poll();
        // Back off when idle: two cores are shared by several busy processes in this test.
        idle = (n + nl) == 0 ? idle + 1 : 0;
        if (idle > 64) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }
    fwd.park();
    return 0;
}

// Sends PER_FLOW frames on each of FLOWS flows from a queue of port B towards port A.
int run_inject(QueueSlot slot, unsigned nb_flows, unsigned per_flow) {
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "inject: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    const OwnerTag me = f.registry().owner_tag(slot);
    unsigned sent = 0;
    for (std::uint32_t seq = 0; seq < per_flow; ++seq) {
        std::array<rte_mbuf*, k_burst_max> burst;
        unsigned n = 0;
        for (unsigned flow = 0; flow < nb_flows; ++flow) {
            rte_mbuf* m = make_frame(f.pool(slot), me, flow, seq);
            while (m == nullptr) { // pool momentarily empty: receivers are freeing
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                m = make_frame(f.pool(slot), me, flow, seq);
            }
            burst[n++] = m;
            if (n == burst.size() || flow + 1 == nb_flows) {
                sent += f.user_veth().tx_burst(slot, std::span<rte_mbuf* const>(burst.data(), n));
                n = 0;
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(300)); // paces below the lane capacity
    }
    std::printf("INJECTED sent=%u drops=%llu\n", sent,
                static_cast<unsigned long long>(f.registry().stats(slot).drop_tx_full +
                                                f.registry().stats(slot).drop_owner_gone));
    return 0;
}

// Holds mbufs in every place reclaim must look: in hand, in a peer's forwarding inbox (the peer
// is claimed but not polling), in its own lcore cache; plus rules, a listener and a memp pool.
int run_victim(QueueSlot slot, QueueSlot peer) {
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "victim: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    FlowTable& flows = f.flows();
    (void)flows.reader_online(slot); // dies online and unparked: reclaim must take it offline
    f.registry().queue(slot).parked.store(0);
    const Epoch epoch = f.registry().queue(slot).epoch.load();
    const OwnerTag me = OwnerTag::of(slot, epoch);
    unsigned rules = 0;
    for (unsigned flow = 100; flow < 120; ++flow) {
        const FlowKey key = flow_key(flow);
        rules += flows.add_connection(key, flow_hash(key), slot, epoch) == 0 ? 1u : 0u;
    }
    const int listener = flows.add_listener(6, ip(k_ip_a), htons(8080), slot, epoch);
    auto memp = f.memps().create_memp(me, "tcp_pcb", 256 * 1024);
    // In hand: 300 mbufs, from our pool and from the peer's pool.
    static rte_mbuf* held[300];
    unsigned in_hand = 0;
    for (auto& m : held) {
        rte_mempool* pool = in_hand % 2 == 0 ? f.pool(slot) : f.pool(peer);
        if (alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), me) == 1) {
            ++in_hand;
        }
    }
    // In flight: 64 mbufs forwarded into the peer's inbox (it does not poll), tags handed over.
    std::array<rte_mbuf*, 64> fly;
    unsigned in_flight = alloc_burst(f.pool(slot), fly, f.registry().owner_tag(peer));
    Inbox peer_inbox = f.forward_inboxes().of(peer);
    in_flight = peer_inbox.enqueue_burst(slot, std::span<rte_mbuf* const>(fly.data(), in_flight));
    // In our lcore cache: allocate and free 100 (they land in this lcore's cache, not the ring).
    std::array<rte_mbuf*, 100> tmp;
    const unsigned cached = alloc_burst(f.pool(peer), tmp, me);
    free_burst(std::span<rte_mbuf* const>(tmp.data(), cached));
    std::printf("READY rules=%u listener=%d memp=%d in_hand=%u in_flight=%u cached=%u\n", rules, listener,
                memp.ok() ? 1 : 0, in_hand, in_flight, cached);
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10)); // wait for SIGKILL
    }
}

// Allocates through the queue's MbufSource as a stack's tx path does, and holds pool mbufs directly
// on command (another holder draining a pool). Commands (each answered by one line):
//   hold POOL N     takes up to N mbufs of POOL (l1 | l2) directly -> HELD n=
//   alloc N         refresh (a poll), then N allocations -> ALLOC l1= l2= failed=
//   shed N          refresh, then N sheddable allocations -> SHED l1= l2= shed=
//   free            frees everything held and allocated -> FREED n=
//   free_estimate   -> ESTIMATE l1= l2= (what MbufSource sees)
//   bench N         -> BENCH source_ns= direct_ns= ... (N bursts of 32 allocations and frees)
// Every answer ends with the queue's L2 counters and the budgets after the operation.
int run_tiered(QueueSlot slot) {
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "tiered: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    rte_mempool* const l1_pool = f.pool(slot);
    if (l1_pool == nullptr || f.l2_pool() == nullptr) {
        std::fprintf(stderr, "tiered: no pool for slot %u, or the fabric has no L2 pool\n", slot);
        return 1;
    }
    const OwnerTag me = f.registry().owner_tag(slot);
    MbufSource source = f.mbuf_source(slot);
    const QueueStats& st = f.registry().stats(slot);
    std::vector<rte_mbuf*> held;
    auto counters = [&] {
        return " l2_allocs=" + std::to_string(st.l2_allocs) + " l2_alloc_failed=" + std::to_string(st.l2_alloc_failed) +
               " l2_shed=" + std::to_string(st.l2_shed) + " l1_budget=" + std::to_string(source.l1_budget());
    };
    std::printf("READY l1_free=%u l2_free=%u\n", free_estimate(f.pool(slot)), free_estimate(f.l2_pool()));
    std::string line;
    for (;;) {
        if (!read_command(line)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
        }
        const auto w = words(line);
        if (w.empty()) {
            continue;
        }
        if (w[0] == "quit") {
            break;
        }
        const unsigned n = w.size() > 1 && w[0] != "hold" ? static_cast<unsigned>(std::stoul(w[1]))
                           : w.size() > 2                 ? static_cast<unsigned>(std::stoul(w[2]))
                                                          : 0;
        if (w[0] == "hold" && w.size() == 3) {
            rte_mempool* pool = w[1] == "l2" ? f.l2_pool() : f.pool(slot);
            unsigned got = 0;
            for (rte_mbuf* m = nullptr; got < n && alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), me) == 1; ++got) {
                held.push_back(m);
            }
            std::printf("HELD n=%u%s\n", got, counters().c_str());
        } else if (w[0] == "alloc" || w[0] == "shed") {
            source.refresh();
            unsigned l1 = 0, l2 = 0, none = 0;
            for (unsigned k = 0; k < n; ++k) {
                rte_mbuf* m = w[0] == "alloc" ? source.alloc(me) : source.alloc_sheddable(me);
                if (m == nullptr) {
                    ++none;
                    continue;
                }
                if (mbuf_owner(m) != me) {
                    std::fprintf(stderr, "tiered: an mbuf came without our owner tag\n");
                    return 1;
                }
                (m->pool == f.l2_pool() ? l2 : l1) += 1;
                held.push_back(m);
            }
            std::printf("%s l1=%u l2=%u %s=%u%s\n", w[0] == "alloc" ? "ALLOC" : "SHED", l1, l2,
                        w[0] == "alloc" ? "failed" : "shed", none, counters().c_str());
        } else if (w[0] == "free") {
            free_burst(held);
            std::printf("FREED n=%zu%s\n", held.size(), counters().c_str());
            held.clear();
        } else if (w[0] == "bench") { // ns per mbuf: MbufSource vs a plain get, and the two free counts
            using clock = std::chrono::steady_clock;
            std::array<rte_mbuf*, k_burst_max> burst;
            auto per_op = [&](auto&& body, unsigned ops) {
                const auto t0 = clock::now();
                body();
                return std::chrono::duration<double, std::nano>(clock::now() - t0).count() / ops;
            };
            const double via_source = per_op([&] {
                for (unsigned round = 0; round < n; ++round) {
                    source.refresh(); // once per poll, a burst per poll
                    for (rte_mbuf*& m : burst) {
                        m = source.alloc(me);
                    }
                    free_burst(burst);
                }
            }, n * k_burst_max);
            const double direct = per_op([&] {
                for (unsigned round = 0; round < n; ++round) {
                    for (rte_mbuf*& m : burst) {
                        m = rte_pktmbuf_alloc(l1_pool);
                        if (m != nullptr) {
                            set_mbuf_owner(m, me);
                        }
                    }
                    free_burst(burst);
                }
            }, n * k_burst_max);
            unsigned sink = 0;
            const double estimate = per_op([&] {
                for (unsigned k = 0; k < n; ++k) {
                    sink += free_estimate(f.pool(slot));
                }
            }, n);
            const double avail = per_op([&] {
                for (unsigned k = 0; k < n; ++k) {
                    sink += rte_mempool_avail_count(f.pool(slot));
                }
            }, n);
            std::printf("BENCH source_ns=%.1f direct_ns=%.1f free_estimate_ns=%.1f avail_count_ns=%.1f sink=%u%s\n",
                        via_source, direct, estimate, avail, sink & 1u, counters().c_str());
        } else if (w[0] == "free_estimate") {
            std::printf("ESTIMATE l1=%u l2=%u%s\n", free_estimate(f.pool(slot)), free_estimate(f.l2_pool()),
                        counters().c_str());
        }
    }
    free_burst(held);
    // A clean exit leaves nothing in this lcore's caches (as a stack's shutdown does).
    for (rte_mempool* pool : {f.pool(slot), f.l2_pool()}) {
        if (pool != nullptr) {
            rte_mempool_cache_flush(rte_mempool_default_cache(pool, rte_lcore_id()), pool);
        }
    }
    return 0;
}

// Holds L2 mbufs in every place reclaim must look, the way a stack under memory pressure gets
// them: its own L1 pool is drained below the watermark (mbufs in hand), so MbufSource hands out
// L2 mbufs: some in hand, some forwarded into a peer's inbox (the peer is claimed, not polling),
// some allocated and freed into this lcore's cache of the L2 pool.
int run_l2_victim(QueueSlot slot, QueueSlot peer) {
    auto fabric = Fabric::attach();
    if (!fabric) {
        std::fprintf(stderr, "l2victim: %s\n", fabric.error().message.c_str());
        return 1;
    }
    Fabric& f = **fabric;
    const OwnerTag me = f.registry().owner_tag(slot);
    // L1 below its reserve: hold all but half the reserve.
    const unsigned keep_free = f.registry().l2_pool().l1_reserve / 2;
    static std::vector<rte_mbuf*> l1_held;
    for (rte_mbuf* m = nullptr; free_estimate(f.pool(slot)) > keep_free &&
                                alloc_burst(f.pool(slot), std::span<rte_mbuf*>(&m, 1), me) == 1;) {
        l1_held.push_back(m);
    }
    MbufSource source = f.mbuf_source(slot);
    auto take = [&](std::span<rte_mbuf*> out, OwnerTag owner) {
        unsigned from_l2 = 0;
        for (rte_mbuf*& m : out) {
            m = source.alloc(owner);
            from_l2 += m != nullptr && m->pool == f.l2_pool() ? 1u : 0u;
        }
        return from_l2;
    };
    static std::array<rte_mbuf*, 200> in_hand;
    const unsigned l2_in_hand = take(in_hand, me);
    std::array<rte_mbuf*, 64> fly;
    const unsigned l2_fly = take(fly, me);
    set_owner_burst(fly, f.registry().owner_tag(peer)); // the hand-off rule: tag first
    Inbox peer_inbox = f.forward_inboxes().of(peer);
    const unsigned in_flight = peer_inbox.enqueue_burst(slot, std::span<rte_mbuf* const>(fly.data(), fly.size()));
    std::array<rte_mbuf*, 40> tmp;
    const unsigned l2_tmp = take(tmp, me);
    free_burst(tmp);
    const unsigned cached = f.l2_pool()->local_cache[rte_lcore_id()].len;
    std::printf("READY l1_held=%zu l2_in_hand=%u l2_in_flight=%u in_flight=%u l2_freed=%u l2_cached=%u l2_allocs=%llu\n",
                l1_held.size(), l2_in_hand, l2_fly, in_flight, l2_tmp, cached,
                static_cast<unsigned long long>(f.registry().stats(slot).l2_allocs));
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10)); // wait for SIGKILL
    }
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    auto first = eal_init_from_main(argc, argv);
    if (!first) {
        std::fprintf(stderr, "fabric_actor: %s\n", first.error().message.c_str());
        return 1;
    }
    EalSession eal;
    const int i = *first;
    const std::string role = i < argc ? argv[i] : "";
    auto arg = [&](int k) { return static_cast<unsigned>(std::stoul(argv[i + k])); }; // NOLINT
    if (role == "primary") {
        return run_primary();
    }
    if (role == "stack" && i + 1 < argc) {
        return run_stack(static_cast<QueueSlot>(arg(1)));
    }
    if (role == "inject" && i + 3 < argc) {
        return run_inject(static_cast<QueueSlot>(arg(1)), arg(2), arg(3));
    }
    if (role == "tiered" && i + 1 < argc) {
        return run_tiered(static_cast<QueueSlot>(arg(1)));
    }
    if (role == "l2victim" && i + 2 < argc) {
        return run_l2_victim(static_cast<QueueSlot>(arg(1)), static_cast<QueueSlot>(arg(2)));
    }
    if (role == "victim" && i + 2 < argc) {
        return run_victim(static_cast<QueueSlot>(arg(1)), static_cast<QueueSlot>(arg(2)));
    }
    std::fprintf(stderr, "fabric_actor: unknown role '%s'\n", role.c_str());
    return 2;
}
