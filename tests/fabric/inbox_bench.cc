// SPDX-License-Identifier: BSD-3-Clause
// Inbox throughput against its baseline, a DPDK rte_ring with multi-producer enqueue and
// single-consumer dequeue, measured in the same run:
//  - MP/<transport>/<placement>: 2 producer processes -> 1 consumer process (inbox_actor),
//    bursts of 32, objects per second counted by the consumer (which only counts them, like
//    DPDK's ring perf tests). Placements on this 2-CPU machine: producers on cpu 0 and cpu 1
//    (the consumer shares cpu 1), and both producers on cpu 0 (consumer alone on cpu 1), where a
//    preempted MP-ring producer stalls the other (dpdk-probes.md Q6); and, as a reference, one
//    producer on cpu 0 -> the consumer on cpu 1.
//  - ST/<transport>/burst:<n>: one thread enqueues a burst and dequeues it again, on heap memory:
//    the per-object cost without any cache-line transfer.
// This process is the DPDK primary (lcore 0): it creates every inbox and ring; producers are
// lcores 1 and 2, the consumer lcore 3.
//
//   inbox_bench [--smoke] [benchmark flags]     --smoke: one round, ~0.2 s per multi-process run
//                                                (default: 3 rounds of 1.5 s)
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ring.h>

#include "fabric/eal.h"
#include "fabric/inbox.h"
#include "fabric/shared_region.h"
#include "tests/support/test_support.h"

namespace {

using namespace gazelle::fabric;
using namespace std::chrono_literals;
using gazelle::test::Child;
using gazelle::test::field;

// Must match inbox_actor.cc.
constexpr std::uint64_t k_region_magic = make_magic("gzinbox.");
constexpr std::uint32_t k_region_layout = 1;

// Same buffering on both sides: the probes' ring size (Q6) and two active lanes of half that.
// When processes share CPUs, throughput is mostly "objects buffered per scheduling turn", so
// unequal sizes would measure the buffer, not the transport.
constexpr unsigned k_ring_count = 16384;
constexpr unsigned k_lanes = 64; // a real inbox: one lane per possible queue slot
constexpr unsigned k_lane_capacity = k_ring_count / 2;

struct Bench {
    gazelle::test::EalInstance* eal = nullptr;
    bool smoke = false;
    unsigned run_index = 0;
    bool failed = false;
    // results[config][transport] = Mobj/s of each repetition
    std::map<std::string, std::map<std::string, std::vector<double>>> mp;
    std::map<std::string, std::map<unsigned, std::vector<double>>> st_ns; // [transport][burst]
};
Bench g_bench;

std::vector<std::string> pinned(std::vector<std::string> args, unsigned lcore, unsigned cpu) {
    for (auto& a : args) {
        if (a.rfind("--lcores=", 0) == 0) {
            a = "--lcores=" + std::to_string(lcore) + "@" + std::to_string(cpu);
        }
    }
    return args;
}

std::optional<Child> spawn(unsigned lcore, unsigned cpu, const std::vector<std::string>& role) {
    std::vector<std::string> argv{gazelle::test::bin_path("inbox_actor")};
    const auto eal = pinned(g_bench.eal->secondary_args(lcore), lcore, cpu);
    argv.insert(argv.end(), eal.begin(), eal.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), role.begin(), role.end());
    Child child(argv);
    if (!child.running() || !child.expect("READY", 20s)) {
        std::fprintf(stderr, "inbox_bench: actor failed to start:\n%s\n", child.transcript().c_str());
        return std::nullopt;
    }
    return child;
}

struct Placement {
    std::string name;
    std::vector<unsigned> producer_cpus;
    unsigned consumer_cpu;
};

struct MpResult {
    bool ok = false;
    double seconds = 0;
    double mobj_per_sec = 0;
    double lane_share = 0; // fraction of all objects sent that came from producer 0
};

// One multi-process run on a fresh inbox / ring: consumer + producers, measured by the consumer.
MpResult run_mp(bool ring, const Placement& where, double seconds) {
    MpResult result;
    const std::string name = "ibench" + std::to_string(++g_bench.run_index);
    auto region = create_region(name, Inbox::bytes(k_lanes, k_lane_capacity), k_region_magic, k_region_layout);
    if (!region) {
        std::fprintf(stderr, "inbox_bench: %s\n", region.error().message.c_str());
        return result;
    }
    (void)Inbox::format(*region, k_lanes, k_lane_capacity);
    rte_ring* r = nullptr;
    if (ring && (r = rte_ring_create((name + "_r").c_str(), k_ring_count, SOCKET_ID_ANY, RING_F_SC_DEQ)) == nullptr) {
        std::fprintf(stderr, "inbox_bench: rte_ring_create: %s\n", rte_strerror(rte_errno));
        free_region(name);
        return result;
    }
    const std::string transport = ring ? "ring=1" : "ring=0";
    {
        const bool shared = std::find(where.producer_cpus.begin(), where.producer_cpus.end(), where.consumer_cpu) !=
                            where.producer_cpus.end();
        auto consumer = spawn(3, where.consumer_cpu,
                              {"consumer", "name=" + name, transport, "check=0", shared ? "yield=1" : "yield=0"});
        std::vector<Child> producers;
        const auto nb_producers = static_cast<unsigned>(where.producer_cpus.size());
        for (unsigned p = 0; p < nb_producers && consumer; ++p) {
            auto child = spawn(1 + p, where.producer_cpus[p],
                               {"producer", "name=" + name, transport, "lane=" + std::to_string(p), "epoch=1"});
            if (child) {
                producers.push_back(std::move(*child));
            }
        }
        if (consumer && producers.size() == nb_producers) {
            for (auto& p : producers) {
                p.send("go");
            }
            std::this_thread::sleep_for(g_bench.smoke ? 30ms : 200ms); // warm-up
            consumer->send("stats");
            const auto a = consumer->expect("STATS");
            std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
            consumer->send("stats");
            const auto b = consumer->expect("STATS");
            if (a && b) {
                const double secs = static_cast<double>(*field(*b, "t_ns") - *field(*a, "t_ns")) / 1e9;
                const auto total = static_cast<double>(*field(*b, "total") - *field(*a, "total"));
                result.ok = true;
                result.seconds = secs;
                result.mobj_per_sec = total / secs / 1e6;
            }
            std::array<double, 2> sent{};
            for (auto& p : producers) {
                p.send("stop");
            }
            for (unsigned p = 0; p < nb_producers; ++p) {
                const auto done = producers[p].expect("DONE");
                sent[p] = done ? static_cast<double>(field(*done, "sent").value_or(0)) : 0;
                result.ok = producers[p].wait_success(20s) && result.ok;
            }
            result.lane_share = sent[0] + sent[1] > 0 ? sent[0] / (sent[0] + sent[1]) : 0;
            consumer->send("quit");
            result.ok = consumer->wait_success(20s) && result.ok;
        }
    }
    rte_ring_free(r);
    free_region(name);
    return result;
}

void BM_MultiProcess(benchmark::State& state, bool ring, Placement where) {
    const double seconds = g_bench.smoke ? 0.2 : 1.5;
    MpResult r;
    for (auto _ : state) {
        r = run_mp(ring, where, seconds);
        state.SetIterationTime(r.ok ? r.seconds : seconds);
    }
    if (!r.ok) {
        g_bench.failed = true;
        state.SkipWithError("multi-process run failed (see stderr)");
        return;
    }
    state.counters["Mobj/s"] = r.mobj_per_sec;
    state.counters["producer0_share"] = r.lane_share;
    g_bench.mp[where.name][ring ? "rte_ring" : "inbox"].push_back(r.mobj_per_sec);
}

// --- single thread --------------------------------------------------------------------------------

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};
using HeapPtr = std::unique_ptr<void, FreeDeleter>;

HeapPtr aligned_heap(std::size_t bytes) {
    return HeapPtr(std::aligned_alloc(k_cache_line, (bytes + k_cache_line - 1) / k_cache_line * k_cache_line));
}

std::vector<rte_mbuf*> fake_objects(unsigned n) {
    std::vector<rte_mbuf*> v(n);
    for (unsigned i = 0; i < n; ++i) {
        v[i] = reinterpret_cast<rte_mbuf*>(static_cast<std::uintptr_t>(0x1000 + 64 * i));
    }
    return v;
}

void record_ns_per_object(benchmark::State& state, const std::string& transport, unsigned burst) {
    const double objects = static_cast<double>(state.iterations()) * burst;
    state.SetItemsProcessed(static_cast<std::int64_t>(objects));
    state.counters["ns/obj"] = benchmark::Counter(objects, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    (void)transport;
}

// backlog = 0: the lane empties on every dequeue, so each burst also pays the non-empty flag's
// set (producer) and clear + re-check (consumer). backlog > 0: the lane never empties, the steady
// state of a busy inbox (only the producer's publish fence remains).
template <unsigned Backlog>
void BM_InboxSingleThread(benchmark::State& state) {
    const auto burst = static_cast<unsigned>(state.range(0));
    auto memory = aligned_heap(Inbox::bytes(k_lanes, k_lane_capacity));
    Inbox inbox = Inbox::format(memory.get(), k_lanes, k_lane_capacity);
    const auto in = fake_objects(burst);
    std::vector<rte_mbuf*> out(burst);
    const auto backlog = fake_objects(Backlog);
    if (inbox.enqueue_burst(5, backlog) != Backlog) {
        state.SkipWithError("backlog does not fit");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(inbox.enqueue_burst(5, in));
        benchmark::DoNotOptimize(inbox.dequeue_burst(out));
        benchmark::ClobberMemory();
    }
    record_ns_per_object(state, "inbox", burst);
}

template <bool Mp>
void BM_RingSingleThread(benchmark::State& state) {
    const auto burst = static_cast<unsigned>(state.range(0));
    constexpr unsigned count = 4096;
    auto memory = aligned_heap(static_cast<std::size_t>(rte_ring_get_memsize(count)));
    auto* ring = static_cast<rte_ring*>(memory.get());
    if (rte_ring_init(ring, Mp ? "st_mp" : "st_sp", count, Mp ? RING_F_SC_DEQ : RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
        state.SkipWithError("rte_ring_init failed");
        return;
    }
    const auto in = fake_objects(burst);
    std::vector<void*> out(burst);
    for (auto _ : state) {
        if constexpr (Mp) {
            benchmark::DoNotOptimize(rte_ring_mp_enqueue_burst(ring, reinterpret_cast<void* const*>(in.data()), burst,
                                                               nullptr));
        } else {
            benchmark::DoNotOptimize(rte_ring_sp_enqueue_burst(ring, reinterpret_cast<void* const*>(in.data()), burst,
                                                               nullptr));
        }
        benchmark::DoNotOptimize(rte_ring_sc_dequeue_burst(ring, out.data(), burst, nullptr));
        benchmark::ClobberMemory();
    }
    record_ns_per_object(state, Mp ? "rte_ring MP/SC" : "rte_ring SP/SC", burst);
}

void register_benchmarks() {
    const std::vector<Placement> placements{
        {"producers_cpu0_cpu1", {0, 1}, 1},
        {"producers_share_cpu0", {0, 0}, 1},
        // Reference, not an MPSC case: the cross-CPU cost of the transport itself, with nobody
        // sharing a CPU (the inbox uses one lane; the MP ring has no contention on its head).
        {"one_producer_cpu0", {0}, 1},
    };
    // Inbox and ring alternate, and rounds repeat the whole set, so each pair ran on about the
    // same host state (the probes' results are bimodal with the host's vCPU placement).
    const unsigned rounds = g_bench.smoke ? 1 : 3;
    for (unsigned round = 1; round <= rounds; ++round) {
        for (const auto& where : placements) {
            for (bool ring : {false, true}) {
                const std::string name = std::string("MP/") + (ring ? "rte_ring_mp_sc" : "inbox") + "/" +
                                         where.name + "/burst:32/round:" + std::to_string(round);
                benchmark::RegisterBenchmark(name.c_str(), BM_MultiProcess, ring, where)
                    ->Iterations(1)
                    ->UseManualTime()
                    ->Unit(benchmark::kMillisecond);
            }
        }
    }
    for (auto* b : {benchmark::RegisterBenchmark("ST/inbox", BM_InboxSingleThread<0>),
                    benchmark::RegisterBenchmark("ST/inbox_backlog64", BM_InboxSingleThread<64>),
                    benchmark::RegisterBenchmark("ST/rte_ring_sp_sc", BM_RingSingleThread<false>),
                    benchmark::RegisterBenchmark("ST/rte_ring_mp_sc", BM_RingSingleThread<true>)}) {
        b->ArgName("burst")->Arg(1)->Arg(8)->Arg(32);
        if (g_bench.smoke) {
            b->MinTime(0.02);
        }
    }
}

// Collects the single-thread figures from the reporter (the counters are computed there).
class TableReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            const std::string name = run.benchmark_name();
            if (name.rfind("ST/", 0) != 0 || run.error_occurred || run.run_type != Run::RT_Iteration) {
                continue;
            }
            const auto slash = name.find("/burst:");
            const std::string transport = name.substr(3, slash - 3);
            const auto burst = static_cast<unsigned>(std::strtoul(name.c_str() + slash + 7, nullptr, 10));
            const auto it = run.counters.find("ns/obj");
            if (it != run.counters.end()) {
                g_bench.st_ns[transport][burst].push_back(it->second.value * 1e9);
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void print_table() {
    std::printf("\nInbox vs rte_ring (MP enqueue / SC dequeue), 2 producer processes -> 1 consumer process,\n"
                "bursts of 32, consumer-side Mobj/s (median over the rounds), measured in this run:\n");
    std::printf("  %-24s %12s %12s %10s   %s\n", "placement", "inbox", "rte_ring", "inbox/ring",
                "each round: inbox/ring");
    for (const auto& [placement, by_transport] : g_bench.mp) {
        const auto in = by_transport.find("inbox");
        const auto rg = by_transport.find("rte_ring");
        const double a = in == by_transport.end() ? 0 : median(in->second);
        const double b = rg == by_transport.end() ? 0 : median(rg->second);
        char ratio[32];
        if (b > 0 && a / b < 1000) {
            std::snprintf(ratio, sizeof ratio, "%.1fx", a / b);
        } else {
            std::snprintf(ratio, sizeof ratio, "%s", a > 0 ? ">1000x" : "-");
        }
        std::string rounds;
        for (std::size_t i = 0; in != by_transport.end() && i < in->second.size(); ++i) {
            char one[64];
            std::snprintf(one, sizeof one, "%s%.1f/%.2f", i == 0 ? "" : "  ", in->second[i],
                          rg != by_transport.end() && i < rg->second.size() ? rg->second[i] : 0.0);
            rounds += one;
        }
        std::printf("  %-24s %12.2f %12.2f %10s   %s\n", placement.c_str(), a, b, ratio, rounds.c_str());
    }
    std::printf("Single thread, enqueue burst + dequeue burst on heap memory, ns per object:\n");
    std::printf("  %-24s %8s %8s %8s\n", "transport", "burst 1", "burst 8", "burst 32");
    for (const auto& [transport, by_burst] : g_bench.st_ns) {
        std::printf("  %-24s", transport.c_str());
        for (unsigned burst : {1u, 8u, 32u}) {
            const auto it = by_burst.find(burst);
            std::printf(" %8.2f", it == by_burst.end() ? 0.0 : median(it->second));
        }
        std::printf("\n");
    }
    std::printf("Placements: producers_cpu0_cpu1 = producers on cpu 0 and cpu 1, consumer on cpu 1 (shared);\n"
                "producers_share_cpu0 = both producers on cpu 0, consumer alone on cpu 1;\n"
                "one_producer_cpu0 = reference: a single producer on cpu 0, consumer on cpu 1.\n"
                "Shared-CPU figures depend on the scheduler and on whatever else runs on the machine.\n");
}

} // namespace

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--smoke") == 0) {
            g_bench.smoke = true;
        } else {
            args.push_back(argv[i]);
        }
    }
    int bargc = static_cast<int>(args.size());
    benchmark::Initialize(&bargc, args.data());

    gazelle::test::HugeMount mount;
    if (!mount.ok()) {
        std::fprintf(stderr, "inbox_bench: %s\n", mount.error().c_str());
        return 1;
    }
    gazelle::test::EalInstance eal(mount, "inboxbench");
    g_bench.eal = &eal;
    auto r = eal_init("inbox_bench", eal.primary_args(0));
    if (!r) {
        std::fprintf(stderr, "inbox_bench: %s\n", r.error().message.c_str());
        return 1;
    }
    register_benchmarks();
    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_table();
    benchmark::Shutdown();
    (void)rte_eal_cleanup();
    return g_bench.failed ? 1 : 0;
}
