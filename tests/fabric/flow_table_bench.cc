// SPDX-License-Identifier: BSD-3-Clause
// Flow-table lookup throughput: bulk lookups (bursts of k_burst_max, keys in random order, all
// hits) at several table sizes, with precomputed hashes and with the CRC computed inline, a
// single-key baseline, and bulk lookups while another process (flow_table_actor) inserts and
// deletes rules as fast as it can. This process is the DPDK primary (lcore 0 on CPU 0); the
// writer is a secondary on lcore 1 / CPU 1.
//
//   flow_table_bench [--smoke] [benchmark flags]     --smoke: 1k and 10k rules, short runs
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <time.h>
#include <netinet/in.h>

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_hash.h>

#include "fabric/eal.h"
#include "fabric/flow_table.h"
#include "tests/support/test_support.h"

namespace {

using namespace gazelle::fabric;
using namespace std::chrono_literals;
using gazelle::test::Child;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t k_local_ip = 0x0a000001;
constexpr std::uint32_t k_remote_base = 0x0a010000;
constexpr std::uint32_t k_churn_first = 0x00800000; // writer's ids, disjoint from the looked-up ones
constexpr std::uint32_t k_churn_count = 4096;
constexpr QueueSlot k_reader = 0;
constexpr QueueSlot k_churn_slot = 1;

// The same keys as flow_table_actor.
FlowKey conn(std::uint32_t id) {
    return FlowKey::connection(IPPROTO_TCP, htonl(k_local_ip), htons(80), htonl(k_remote_base + id),
                               htons(static_cast<std::uint16_t>(1024u + id % 60000u)));
}

struct Bench {
    gazelle::test::HugeMount* mount = nullptr;
    gazelle::test::EalInstance* eal = nullptr;
    std::vector<std::uint32_t> sizes;
};
Bench g_bench;

// One filled table per size, created on first use and kept for the whole run.
struct Fixture {
    std::string name;
    FlowTable table;
    std::vector<FlowKey> keys; // every rule's key, shuffled
    std::vector<std::uint32_t> hashes;
};
std::map<std::uint32_t, std::unique_ptr<Fixture>> g_fixtures;

Fixture* fixture(std::uint32_t rules) {
    auto& f = g_fixtures[rules];
    if (f) {
        return f.get();
    }
    auto fx = std::make_unique<Fixture>();
    fx->name = "bench_" + std::to_string(rules);
    FlowTableConfig config;
    config.name = fx->name;
    config.rules = rules + rules / 4 + 2 * k_churn_count; // ~80% full with the writer's keys
    config.listeners = 16;
    config.deferred_per_writer = 4096;
    auto t = FlowTable::create(config);
    if (!t) {
        std::fprintf(stderr, "flow_table_bench: %s\n", t.error().message.c_str());
        return nullptr;
    }
    fx->table = *t;
    fx->keys.resize(rules);
    for (std::uint32_t id = 0; id < rules; ++id) {
        fx->keys[id] = conn(id);
        const int rc = fx->table.add_connection(fx->keys[id], flow_hash(fx->keys[id]), static_cast<QueueSlot>(2 + id % 8), id);
        if (rc != 0) {
            std::fprintf(stderr, "flow_table_bench: filling %u rules failed at %u: %d\n", rules, id, rc);
            return nullptr;
        }
    }
    std::mt19937 rng(rules);
    std::shuffle(fx->keys.begin(), fx->keys.end(), rng);
    fx->hashes.resize(rules);
    flow_hash_burst(fx->keys, fx->hashes);
    f = std::move(fx);
    return f.get();
}

// Writer process churning the table of the current with-writer benchmark.
struct Writer {
    std::uint32_t rules = 0;
    std::optional<Child> child;
};
Writer g_writer;
std::map<std::uint32_t, double> g_writer_rate; // adds + deletes per second, per table size

void stop_writer() {
    if (!g_writer.child) {
        return;
    }
    g_writer.child->send("stop");
    if (auto result = g_writer.child->expect("RESULT", 30s)) {
        g_writer_rate[g_writer.rules] = static_cast<double>(gazelle::test::field(*result, "ops_per_sec").value_or(0));
        if (gazelle::test::field(*result, "bad").value_or(1) != 0) {
            std::fprintf(stderr, "flow_table_bench: writer reported failures: %s\n", result->c_str());
        }
    }
    g_writer.child->send("quit");
    (void)g_writer.child->wait_success(20s);
    g_writer.child.reset();
}

bool start_writer(std::uint32_t rules, const std::string& table) {
    if (g_writer.child && g_writer.rules == rules) {
        return true;
    }
    stop_writer();
    std::vector<std::string> argv{gazelle::test::bin_path("flow_table_actor")};
    auto eal = g_bench.eal->secondary_args(1);
    argv.insert(argv.end(), eal.begin(), eal.end());
    argv.emplace_back("--");
    argv.emplace_back("secondary");
    argv.push_back(table);
    g_writer.child.emplace(argv);
    g_writer.rules = rules;
    if (!g_writer.child->expect("READY", 30s)) {
        std::fprintf(stderr, "flow_table_bench: writer did not start:\n%s", g_writer.child->transcript().c_str());
        return false;
    }
    g_writer.child->send("bench_churn " + std::to_string(k_churn_slot) + " " + std::to_string(k_churn_first) + " " +
                         std::to_string(k_churn_count));
    return g_writer.child->expect("OK churning", 30s).has_value();
}

// CPU time of this thread: the machine is shared, and preemption by unrelated processes is not
// the table's cost. Wall-clock rates are reported next to it.
double thread_cpu_seconds() {
    timespec ts{};
    (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Last measured rate (lookups per CPU second, and per wall second) per kind and size.
std::map<std::string, std::map<std::uint32_t, double>> g_rates;
std::map<std::string, std::map<std::uint32_t, double>> g_wall_rates;

enum class Mode { bulk, bulk_hash_inline, single, bulk_with_writer, raw_rte_hash };

void run_lookups(benchmark::State& state, Mode mode) {
    const auto rules = static_cast<std::uint32_t>(state.range(0));
    Fixture* fx = fixture(rules);
    if (fx == nullptr) {
        state.SkipWithError("table setup failed");
        return;
    }
    if (mode == Mode::bulk_with_writer && !start_writer(rules, fx->name)) {
        state.SkipWithError("writer did not start");
        return;
    }
    FlowTable& t = fx->table;
    rte_hash* raw = rte_hash_find_existing(fx->name.c_str());
    const void* raw_keys[k_burst_max];
    void* raw_data[k_burst_max];
    (void)t.reader_online(k_reader);
    const std::size_t n = fx->keys.size();
    std::size_t off = 0;
    std::uint64_t lookups = 0;
    std::uint64_t hits = 0;
    FlowHit out[k_burst_max];
    std::uint32_t hashes[k_burst_max];
    const auto start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    for (auto _ : state) {
        if (off + k_burst_max > n) {
            off = 0;
        }
        const std::span<const FlowKey> keys(fx->keys.data() + off, std::min<std::size_t>(k_burst_max, n));
        switch (mode) {
        case Mode::bulk:
        case Mode::bulk_with_writer:
            hits += t.lookup_burst(keys, std::span(fx->hashes.data() + off, keys.size()), std::span(out, keys.size()));
            break;
        case Mode::bulk_hash_inline:
            flow_hash_burst(keys, std::span(hashes, keys.size()));
            hits += t.lookup_burst(keys, std::span(hashes, keys.size()), std::span(out, keys.size()));
            break;
        case Mode::raw_rte_hash: { // baseline: the DPDK call alone, no decoding
            for (std::size_t i = 0; i < keys.size(); ++i) {
                raw_keys[i] = &keys[i];
            }
            std::uint64_t mask = 0;
            hits += static_cast<unsigned>(rte_hash_lookup_with_hash_bulk_data(
                raw, raw_keys, fx->hashes.data() + off, static_cast<std::uint32_t>(keys.size()), &mask, raw_data));
            benchmark::DoNotOptimize(raw_data);
            break;
        }
        case Mode::single:
            for (std::size_t i = 0; i < keys.size(); ++i) {
                out[i] = t.lookup(keys[i], fx->hashes[off + i]);
                hits += out[i].kind != FlowHitKind::none ? 1u : 0u;
            }
            break;
        }
        benchmark::DoNotOptimize(out);
        t.reader_quiescent(k_reader); // once per burst: a stack does it once per poll loop
        lookups += keys.size();
        off += keys.size();
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu_secs = thread_cpu_seconds() - cpu_start;
    t.reader_offline(k_reader);
    if (hits != lookups) {
        state.SkipWithError("a lookup missed");
        return;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(lookups));
    static const char* const names[] = {"bulk", "bulk_hash_inline", "single", "bulk_with_writer", "raw_rte_hash"};
    g_rates[names[static_cast<int>(mode)]][rules] = cpu_secs > 0 ? static_cast<double>(lookups) / cpu_secs : 0;
    g_wall_rates[names[static_cast<int>(mode)]][rules] = secs > 0 ? static_cast<double>(lookups) / secs : 0;
}

void BM_BulkLookup(benchmark::State& s) { run_lookups(s, Mode::bulk); }
void BM_BulkLookupHashInline(benchmark::State& s) { run_lookups(s, Mode::bulk_hash_inline); }
void BM_SingleLookup(benchmark::State& s) { run_lookups(s, Mode::single); }
void BM_BulkLookupWithWriter(benchmark::State& s) { run_lookups(s, Mode::bulk_with_writer); }
void BM_RawRteHashBulk(benchmark::State& s) { run_lookups(s, Mode::raw_rte_hash); }

void BM_PickListener(benchmark::State& state) {
    const std::uint64_t mask = 0x00f0'0f00'0000'1111ull;
    std::uint32_t h = 1;
    for (auto _ : state) {
        h = h * 1664525u + 1013904223u;
        benchmark::DoNotOptimize(FlowTable::pick_listener(mask, 5, h));
    }
    state.SetItemsProcessed(state.iterations());
}

void register_benchmarks() {
    for (auto* b : {benchmark::RegisterBenchmark("BM_RawRteHashBulk", BM_RawRteHashBulk),
                    benchmark::RegisterBenchmark("BM_BulkLookup", BM_BulkLookup),
                    benchmark::RegisterBenchmark("BM_BulkLookupHashInline", BM_BulkLookupHashInline),
                    benchmark::RegisterBenchmark("BM_SingleLookup", BM_SingleLookup),
                    benchmark::RegisterBenchmark("BM_BulkLookupWithWriter", BM_BulkLookupWithWriter)}) {
        for (std::uint32_t n : g_bench.sizes) {
            b->Arg(n);
        }
        b->Unit(benchmark::kNanosecond);
    }
    benchmark::RegisterBenchmark("BM_PickListener", BM_PickListener);
}

// Control-path costs on each filled table: "show rules" (a full iteration) and the reclaim of one
// dead owner holding 10000 of the rules (remove_owned_by iterates the whole table per pass).
void measure_control_path() {
    std::printf("\ncontrol path (one thread, wall-clock)\n%9s %14s %22s\n", "rules", "rules() ms",
                "remove_owned_by ms");
    constexpr QueueSlot k_dead = 10;
    constexpr std::uint32_t k_dead_rules = 10000;
    constexpr std::uint32_t k_dead_first = 0x00400000;
    for (std::uint32_t n : g_bench.sizes) {
        Fixture* fx = fixture(n);
        if (fx == nullptr) {
            continue;
        }
        FlowTable& t = fx->table;
        for (std::uint32_t i = 0; i < k_dead_rules; ++i) {
            const FlowKey k = conn(k_dead_first + i);
            (void)t.add_connection(k, flow_hash(k), k_dead, 5);
        }
        auto start = Clock::now();
        auto rules = t.rules();
        const double list_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        start = Clock::now();
        unsigned removed = 0;
        for (bool complete = false; !complete;) { // the manager's list holds 4096: call again
            auto sweep = t.remove_owned_by(k_dead, 5);
            if (!sweep) {
                break;
            }
            removed += sweep->connections;
            complete = sweep->complete;
            (void)t.reclaim_deferred(k_manager_slot);
        }
        const double sweep_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        std::printf("%9u %9.1f (%zu) %14.1f (%u rules)\n", n, list_ms, rules ? rules->size() : 0u, sweep_ms, removed);
        while (t.deferred_pending(k_manager_slot) != 0) {
            (void)t.reclaim_deferred(k_manager_slot);
        }
    }
}

void print_summary() {
    std::printf("\nflow table lookups, M lookups per CPU second of the looking-up thread (wall-clock in brackets)\n"
                "bursts of %u keys, random order, all hits, one core\n",
                k_burst_max);
    std::printf("%9s %16s %16s %16s %16s %16s %7s %9s\n", "rules", "raw rte_hash", "bulk", "bulk+crc", "single",
                "bulk+writer", "ratio", "writer");
    auto cell = [](const char* kind, std::uint32_t n) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f (%.1f)", g_rates[kind][n] / 1e6, g_wall_rates[kind][n] / 1e6);
        return std::string(buf);
    };
    for (std::uint32_t n : g_bench.sizes) {
        const double bulk = g_rates["bulk"][n];
        const double with_writer = g_rates["bulk_with_writer"][n];
        std::printf("%9u %16s %16s %16s %16s %16s %7.2f %7.2f M\n", n, cell("raw_rte_hash", n).c_str(),
                    cell("bulk", n).c_str(), cell("bulk_hash_inline", n).c_str(),
                    cell("single", n).c_str(), cell("bulk_with_writer", n).c_str(), bulk > 0 ? with_writer / bulk : 0.0,
                    g_writer_rate[n] / 1e6);
    }
    std::printf("ratio = bulk+writer / bulk (CPU time); writer = adds+deletes per second of the other process\n"
                "(lcore 1, CPU 1), toggling %u rules of its own and freeing each deleted slot after its grace period.\n",
                k_churn_count);
}

} // namespace

int main(int argc, char** argv) {
    bool smoke = false;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--smoke") == 0) {
            smoke = true;
        } else {
            args.push_back(argv[i]);
        }
    }
    static char min_time[] = "--benchmark_min_time=0.02";
    if (smoke) {
        args.push_back(min_time);
    }
    int bargc = static_cast<int>(args.size());
    benchmark::Initialize(&bargc, args.data());

    gazelle::test::HugeMount mount;
    if (!mount.ok()) {
        std::fprintf(stderr, "flow_table_bench: %s\n", mount.error().c_str());
        return 1;
    }
    gazelle::test::EalInstance eal(mount, "flowbench");
    g_bench.mount = &mount;
    g_bench.eal = &eal;
    g_bench.sizes = smoke ? std::vector<std::uint32_t>{1000, 10000} : std::vector<std::uint32_t>{1000, 100000, 1000000};
    // 1M rules: ~2M buckets x 8 B + 1.3M key slots x 32 B + ring, about 70 MB, plus the keys here.
    const long free_pages = gazelle::test::free_hugepages();
    if (!smoke && free_pages < 160) {
        std::fprintf(stderr, "flow_table_bench: only %ld free hugepages, skipping 1M rules\n", free_pages);
        g_bench.sizes.pop_back();
    }
    auto r = eal_init("flow_table_bench", eal.primary_args(0));
    if (!r) {
        std::fprintf(stderr, "flow_table_bench: %s\n", r.error().message.c_str());
        return 1;
    }
    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    stop_writer();
    print_summary();
    measure_control_path();
    benchmark::Shutdown();
    for (auto& [n, fx] : g_fixtures) {
        if (fx) {
            FlowTable::destroy(fx->name);
        }
    }
    g_fixtures.clear();
    (void)rte_eal_cleanup();
    return 0;
}
