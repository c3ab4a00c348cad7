// SPDX-License-Identifier: BSD-3-Clause
// Cost per packet of the forwarding step, against an ltran-model forwarder, in one run.
//
//   local       a burst whose rules point at the receiving queue: classify, keep
//   missteered  every packet belongs to another queue: classify, hand over zero-copy to its
//               inbox, and that queue's dequeue (both sides of the fabric's work)
//   ltran_model Gazelle's central forwarder: rx, lookup, copy into a fresh mbuf, enqueue into the
//               client's ring, client dequeue and free (one dedicated core in real life)
//   missteered_rules/N  the mis-steered case with N connection rules in the table (1k, 100k, 1M),
//               traffic spread over min(N, 64k) of them in random order: how the cost grows
//               with the number of connections (one rule each) once the table leaves the caches
// Every benchmark recycles the same mbufs, so only the per-packet work is measured. Printed at
// the end: ns/packet of each and the ratio ltran/fabric per core.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_errno.h>
#include <rte_ring.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/flow_key.h"
#include "fabric/mbuf.h"
#include "tests/support/test_support.h"

using namespace gazelle::fabric;

namespace {

constexpr unsigned k_flows = 1024;
constexpr char k_ip_a[] = "198.18.0.1";
constexpr char k_ip_b[] = "198.18.1.2";

std::uint32_t ip(const char* text) {
    in_addr a{};
    inet_pton(AF_INET, text, &a);
    return a.s_addr;
}

struct World {
    std::unique_ptr<Fabric> fabric;
    // Two frame sets, reused by every iteration: minimum-size frames and full 1514-byte frames
    // (a copying forwarder pays for every byte; zero-copy forwarding does not).
    std::array<std::vector<rte_mbuf*>, 2> frames;
    rte_ring* client_ring = nullptr;
    // The scaling benchmark: its own small-frame pool and frames, and how many of its rules are in.
    rte_mempool* scale_pool = nullptr;
    std::vector<rte_mbuf*> scale_frames;
    unsigned scale_rules = 0;
};
World* g_world = nullptr;

constexpr std::array<std::uint16_t, 2> k_frame_len = {60, 1514};

// Scaling flows: 198.19.x.y (one address per 60000 flows) port 1024.. -> 198.18.0.1:7000.
constexpr unsigned k_scale_ports = 60000;
constexpr unsigned k_scale_active_max = 65536;
constexpr std::array<unsigned, 3> k_scale_rules = {1000, 100000, 1000000};
std::uint32_t scale_src(unsigned flow) { return htonl(0xc6130000u + flow / k_scale_ports); } // 198.19.0.0 + n
std::uint16_t scale_sport(unsigned flow) { return htons(static_cast<std::uint16_t>(1024 + flow % k_scale_ports)); }

void build_frame(rte_mbuf* m, unsigned flow, std::uint16_t len) {
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, len));
    if (f == nullptr) {
        return;
    }
    std::memset(f, 0, len);
    f[12] = 0x08;
    f[14] = 0x45;
    const std::uint16_t total = htons(static_cast<std::uint16_t>(len - 14));
    std::memcpy(f + 16, &total, 2);
    f[23] = 17;
    const std::uint32_t src = ip(k_ip_b), dst = ip(k_ip_a);
    std::memcpy(f + 26, &src, 4);
    std::memcpy(f + 30, &dst, 4);
    const std::uint16_t sport = htons(static_cast<std::uint16_t>(10000 + flow)), dport = htons(7000);
    std::memcpy(f + 34, &sport, 2);
    std::memcpy(f + 36, &dport, 2);
    const std::uint16_t udp_len = htons(static_cast<std::uint16_t>(len - 34)); // the parser checks it
    std::memcpy(f + 38, &udp_len, 2);
}

void build_scale_frame(rte_mbuf* m, unsigned flow) {
    build_frame(m, 0, 60);
    auto* f = rte_pktmbuf_mtod(m, std::uint8_t*);
    const std::uint32_t src = scale_src(flow);
    const std::uint16_t sport = scale_sport(flow);
    std::memcpy(f + 26, &src, 4);
    std::memcpy(f + 34, &sport, 2);
}

FlowKey scale_key(unsigned flow) {
    return FlowKey::connection(17, ip(k_ip_a), htons(7000), scale_src(flow), scale_sport(flow));
}

FlowKey key_of(unsigned flow) {
    return FlowKey::connection(17, ip(k_ip_a), htons(7000), ip(k_ip_b), htons(static_cast<std::uint16_t>(10000 + flow)));
}

// Rules: flows 0..k_flows-1 owned by `owner`.
void own_all(QueueSlot owner) {
    FlowTable& flows = g_world->fabric->flows();
    for (unsigned f = 0; f < k_flows; ++f) {
        const FlowKey k = key_of(f);
        (void)flows.remove_connection(k, flow_hash(k), 0);
        (void)flows.add_connection(k, flow_hash(k), owner, g_world->fabric->registry().queue(owner).epoch.load());
    }
    while (flows.deferred_pending(0) != 0) {
        flows.reader_quiescent(0);
        flows.reader_quiescent(1);
        (void)flows.reclaim_deferred(0);
    }
}

std::span<rte_mbuf* const> burst_at(benchmark::State& state, unsigned i) {
    const auto& set = g_world->frames[static_cast<std::size_t>(state.range(0))];
    return {set.data() + (i % (k_flows / k_burst_max)) * k_burst_max, k_burst_max};
}

void BM_ForwardLocal(benchmark::State& state) {
    own_all(0);
    Fabric& f = *g_world->fabric;
    Forwarder fwd(f.registry(), f.flows(), f.forward_inboxes(), 0, f.pool(0));
    fwd.unpark();
    std::array<rte_mbuf*, k_burst_max> local, none;
    unsigned i = 0;
    for (auto _ : state) {
        const ForwardSplit s = fwd.forward_burst(burst_at(state, i++), local, none);
        benchmark::DoNotOptimize(s);
        fwd.end_of_poll();
    }
    fwd.park();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_burst_max);
}

void BM_ForwardMissteered(benchmark::State& state) {
    own_all(1);
    Fabric& f = *g_world->fabric;
    Forwarder rx_side(f.registry(), f.flows(), f.forward_inboxes(), 0, f.pool(0));
    Forwarder owner(f.registry(), f.flows(), f.forward_inboxes(), 1, f.pool(1));
    rx_side.unpark();
    owner.unpark();
    std::array<rte_mbuf*, k_burst_max> local, none, got;
    unsigned i = 0;
    for (auto _ : state) {
        const ForwardSplit s = rx_side.forward_burst(burst_at(state, i++), local, none);
        benchmark::DoNotOptimize(s);
        unsigned n = 0;
        while (n < k_burst_max) { // the owner takes them (same core here: per-core cost of both)
            n += owner.receive_forwarded(std::span<rte_mbuf*>(got.data() + n, k_burst_max - n));
        }
        rx_side.end_of_poll();
    }
    rx_side.park();
    owner.park();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_burst_max);
}

void BM_LtranModel(benchmark::State& state) {
    own_all(1);
    Fabric& f = *g_world->fabric;
    FlowTable& flows = f.flows();
    rte_mempool* pool = f.pool(2);
    std::array<FlowKey, k_burst_max> keys;
    std::array<std::uint32_t, k_burst_max> hashes;
    std::array<FlowHit, k_burst_max> hits;
    std::array<rte_mbuf*, k_burst_max> copies, got;
    unsigned i = 0;
    for (auto _ : state) {
        const auto rx = burst_at(state, i++);
        // Central thread: parse, look up, copy each packet into the client's memory, enqueue.
        for (unsigned j = 0; j < k_burst_max; ++j) {
            const std::uint8_t* p = rte_pktmbuf_mtod(rx[j], const std::uint8_t*);
            std::uint32_t src, dst;
            std::uint16_t sport, dport;
            std::memcpy(&src, p + 26, 4);
            std::memcpy(&dst, p + 30, 4);
            std::memcpy(&sport, p + 34, 2);
            std::memcpy(&dport, p + 36, 2);
            keys[j] = FlowKey::connection(p[23], dst, dport, src, sport);
            hashes[j] = flow_hash(keys[j]);
        }
        flows.lookup_burst(keys, hashes, hits);
        if (rte_pktmbuf_alloc_bulk(pool, copies.data(), k_burst_max) != 0) {
            state.SkipWithError("copy pool empty");
            break;
        }
        for (unsigned j = 0; j < k_burst_max; ++j) {
            const std::uint16_t len = rte_pktmbuf_data_len(rx[j]);
            void* to = rte_pktmbuf_append(copies[j], len);
            std::memcpy(to, rte_pktmbuf_mtod(rx[j], const void*), len);
        }
        const unsigned q = rte_ring_sp_enqueue_burst(g_world->client_ring, reinterpret_cast<void* const*>(copies.data()),
                                                     k_burst_max, nullptr);
        // Client: dequeue and free the copies (the originals go back to the NIC in real life).
        const unsigned n = rte_ring_sc_dequeue_burst(g_world->client_ring, reinterpret_cast<void**>(got.data()), q, nullptr);
        rte_pktmbuf_free_bulk(got.data(), n);
        benchmark::DoNotOptimize(hits);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_burst_max);
}

// Grows the scaling rules to `rules` (owned by queue 1; the sizes only grow, in order) and points
// the frames at min(rules, 64k) of them, spread over the whole set, in random order.
bool scale_to(unsigned rules) {
    World& w = *g_world;
    FlowTable& flows = w.fabric->flows();
    const Epoch epoch = w.fabric->registry().queue(1).epoch.load();
    for (; w.scale_rules < rules; ++w.scale_rules) {
        const FlowKey k = scale_key(w.scale_rules);
        if (flows.add_connection(k, flow_hash(k), 1, epoch) < 0) {
            return false;
        }
    }
    const unsigned active = std::min(rules, k_scale_active_max);
    std::vector<unsigned> picked(active);
    for (unsigned i = 0; i < active; ++i) {
        picked[i] = static_cast<unsigned>(static_cast<std::uint64_t>(i) * rules / active);
    }
    std::shuffle(picked.begin(), picked.end(), std::mt19937(rules));
    w.scale_frames.resize(active);
    for (unsigned i = 0; i < active; ++i) {
        rte_mbuf*& m = w.scale_frames[i];
        if (m == nullptr && (m = rte_pktmbuf_alloc(w.scale_pool)) == nullptr) {
            return false;
        }
        rte_pktmbuf_reset(m);
        build_scale_frame(m, picked[i]);
    }
    return true;
}

void BM_ForwardMissteeredRules(benchmark::State& state) {
    const auto rules = static_cast<unsigned>(state.range(0));
    if (!scale_to(rules)) {
        state.SkipWithError("could not add the scaling rules or build their frames");
        return;
    }
    Fabric& f = *g_world->fabric;
    Forwarder rx_side(f.registry(), f.flows(), f.forward_inboxes(), 0, f.pool(0));
    Forwarder owner(f.registry(), f.flows(), f.forward_inboxes(), 1, f.pool(1));
    rx_side.unpark();
    owner.unpark();
    const auto& frames = g_world->scale_frames;
    const unsigned bursts = static_cast<unsigned>(frames.size()) / k_burst_max;
    std::array<rte_mbuf*, k_burst_max> local, none, got;
    unsigned i = 0;
    for (auto _ : state) {
        const std::span<rte_mbuf* const> burst(frames.data() + (i++ % bursts) * k_burst_max, k_burst_max);
        const ForwardSplit s = rx_side.forward_burst(burst, local, none);
        benchmark::DoNotOptimize(s);
        unsigned n = 0;
        while (n < k_burst_max) {
            n += owner.receive_forwarded(std::span<rte_mbuf*>(got.data() + n, k_burst_max - n));
        }
        rx_side.end_of_poll();
    }
    rx_side.park();
    owner.park();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_burst_max);
}

BENCHMARK(BM_ForwardLocal)->Arg(0)->Arg(1);
BENCHMARK(BM_ForwardMissteered)->Arg(0)->Arg(1);
BENCHMARK(BM_LtranModel)->Arg(0)->Arg(1);
BENCHMARK(BM_ForwardMissteeredRules)->Arg(k_scale_rules[0])->Arg(k_scale_rules[1])->Arg(k_scale_rules[2]);

// Collects ns/packet per benchmark for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const Run& r : runs) {
            const double items = static_cast<double>(r.iterations) * k_burst_max;
            ns_[r.benchmark_name()] = r.cpu_accumulated_time * 1e9 / items; // CPU time: the machine is shared
        }
    }
    void print_ratios() const {
        std::printf("\nfigure                                        ns/packet   baseline    ratio\n");
        for (unsigned size = 0; size < k_frame_len.size(); ++size) {
            const std::string arg = "/" + std::to_string(size);
            if (!ns_.contains("BM_ForwardLocal" + arg) || !ns_.contains("BM_ForwardMissteered" + arg) ||
                !ns_.contains("BM_LtranModel" + arg)) {
                continue; // --benchmark_filter left one of them out
            }
            const double local = ns_.at("BM_ForwardLocal" + arg);
            const double miss = ns_.at("BM_ForwardMissteered" + arg);
            const double ltran = ns_.at("BM_LtranModel" + arg);
            const unsigned len = k_frame_len[size];
            std::printf("deliver local, %4u B frames (fabric)          %9.1f\n", len, local);
            std::printf("forward mis-steered, %4u B (fabric, both ends)%9.1f  %9.1f  %6.2fx ltran-model cost\n", len,
                        miss, ltran, ltran / miss);
            std::printf("mis-steering penalty, %4u B                    %9.1f  %9.1f  %6.2fx\n", len, miss, local,
                        miss / local);
        }
        std::printf("forward mis-steered, 60 B, by rules in the table (traffic over min(rules, 64k) of them):\n");
        const auto scaled = [&](unsigned rules) {
            const auto it = ns_.find("BM_ForwardMissteeredRules/" + std::to_string(rules));
            return it == ns_.end() ? 0.0 : it->second;
        };
        for (const unsigned rules : k_scale_rules) {
            if (scaled(rules) == 0 || scaled(k_scale_rules[0]) == 0) {
                continue; // not run (--benchmark_filter)
            }
            std::printf("  %8u rules                               %9.1f  %9.1f  %6.2fx vs %u rules\n", rules,
                        scaled(rules), scaled(k_scale_rules[0]), scaled(rules) / scaled(k_scale_rules[0]),
                        k_scale_rules[0]);
        }
        std::printf("cores: fabric 0 extra (runs in the receiving stack); ltran model: 1 dedicated core at least,\n"
                    "       and every packet of every app crosses it (the per-core figures above are for one core)\n");
    }

private:
    std::map<std::string, double> ns_;
};

} // namespace

int main(int argc, char** argv) {
    bool smoke = false;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::string(argv[i]) == "--smoke") {
            smoke = true;
        } else {
            args.push_back(argv[i]);
        }
    }
    std::string min_time = "--benchmark_min_time=0.02";
    if (smoke) {
        args.push_back(min_time.data());
    }
    gazelle::test::HugeMount mount;
    if (!mount.ok()) {
        std::fprintf(stderr, "forwarder_bench: %s\n", mount.error().c_str());
        return 1;
    }
    gazelle::test::EalInstance eal(mount, "fwdbench");
    if (auto r = eal_init("forwarder_bench", eal.primary_args(0)); !r) {
        std::fprintf(stderr, "forwarder_bench: %s\n", r.error().message.c_str());
        return 1;
    }
    int rc = 0;
    {
        World world;
        g_world = &world;
        FabricParams params;
        params.max_queues = 4;
        params.pool.mbufs = 8191;
        params.pool.cache_size = 256;
        params.flows.rules = 2 * k_scale_rules.back(); // rte_hash fills reliably to ~90%
        params.flows.listeners = 16;
        PortSpec port{};
        std::snprintf(port.name, sizeof port.name, "bench");
        port.nb_queues = 3;
        port.mac[0] = 0x02;
        port.mac[5] = 0x01;
        port.ipv4 = ip(k_ip_a);
        std::memcpy(port.rss_key, k_default_rss_key.data(), k_rss_key_bytes);
        params.ports = {port};
        auto fabric = Fabric::create(params);
        if (!fabric) {
            std::fprintf(stderr, "forwarder_bench: %s\n", fabric.error().message.c_str());
            return 1;
        }
        world.fabric = std::move(*fabric);
        for (QueueSlot s = 0; s < 3; ++s) {
            (void)world.fabric->claim_queue(s, getpid(), static_cast<std::uint16_t>(s));
        }
        world.scale_pool = rte_pktmbuf_pool_create("bench_scale", 2 * k_scale_active_max - 1, 256, k_mbuf_priv_size,
                                                   RTE_PKTMBUF_HEADROOM + 128, SOCKET_ID_ANY);
        if (world.scale_pool == nullptr) {
            std::fprintf(stderr, "forwarder_bench: scaling frame pool: %s\n", rte_strerror(rte_errno));
            return 1;
        }
        world.client_ring = rte_ring_create("bench_client", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        for (unsigned size = 0; size < k_frame_len.size(); ++size) {
            world.frames[size].resize(k_flows);
            for (unsigned f = 0; f < k_flows; ++f) {
                world.frames[size][f] = rte_pktmbuf_alloc(world.fabric->pool(0));
                build_frame(world.frames[size][f], f, k_frame_len[size]);
            }
        }
        int bargc = static_cast<int>(args.size());
        benchmark::Initialize(&bargc, args.data());
        RatioReporter reporter;
        benchmark::RunSpecifiedBenchmarks(&reporter);
        reporter.print_ratios();
        for (auto& set : world.frames) {
            rte_pktmbuf_free_bulk(set.data(), static_cast<unsigned>(set.size()));
        }
        rte_pktmbuf_free_bulk(world.scale_frames.data(), static_cast<unsigned>(world.scale_frames.size()));
        rte_mempool_free(world.scale_pool);
        rte_ring_free(world.client_ring);
        g_world = nullptr;
    }
    benchmark::Shutdown();
    (void)rte_eal_cleanup();
    return rc;
}
