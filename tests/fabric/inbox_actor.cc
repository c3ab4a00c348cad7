// SPDX-License-Identifier: BSD-3-Clause
// Helper process for inbox_mp_test and inbox_bench: one DPDK process playing one role around an
// inbox in a shared region (and, for the baseline, a DPDK rte_ring in MP-enqueue/SC-dequeue mode).
//
//   inbox_actor <EAL args> -- primary  name=<region> lanes=<n> capacity=<n> [ring=<count>]
//   inbox_actor <EAL args> -- consumer name=<region> [ring=1] [sleep=1] [check=0] [yield=1]
//   inbox_actor <EAL args> -- producer name=<region> lane=<n> epoch=<n> [count=<n>] [ring=1]
//                                      [die_after_ms=<n>] [manual=1]
//
// Objects are not mbufs but non-zero integers that say who sent them: lane (= producer id) + 1,
// the producer's epoch (a new process taking over a lane starts a new epoch) and a 1-based
// sequence number. The consumer checks every lane's objects arrive exactly once and in order.
//
// Line protocol (stdin commands -> stdout answers), every answer one line of key=value fields:
//   all roles      READY once attached; "quit" or EOF on stdin ends the process (exit code 0).
//   primary        "salvage <lane>" -> SALVAGED ...; "drain" -> DRAINED ... per lane, DRAIN_DONE ...;
//                  "pending" -> PENDING ...
//   consumer       "stats" -> STATS t_ns= total= errors= sleeps= wake_ns= l<L>_count= l<L>_last= l<L>_epoch=
//   producer       "go" starts it; "stats" -> STATS t_ns= sent= full=; "stop" -> DONE sent= ...
//                  manual=1: no loop, "send <n>" enqueues n objects, rings the doorbell -> SENT t_ns= n=
//                  die_after_ms=T: T ms after "go", writes 20 more objects without publishing them,
//                  prints DYING first=<seq> n=20 and SIGKILLs itself (a producer dying inside enqueue).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>

#include <rte_errno.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "fabric/eal.h"
#include "fabric/inbox.h"
#include "fabric/shared_region.h"

namespace {

using namespace gazelle::fabric;

constexpr std::uint64_t k_region_magic = make_magic("gzinbox.");
constexpr std::uint32_t k_region_layout = 1;
constexpr unsigned k_max_lanes = 64;
constexpr unsigned k_die_unpublished = 20;
// Empty polls before an idle consumer (sleep=1) goes to sleep, and how long one sleep lasts.
constexpr unsigned k_idle_polls_before_sleep = 1024;
constexpr unsigned k_sleep_usec = 100'000;
// Busy pollers sharing a CPU only make progress at scheduler speed unless they step aside: a
// producer facing a full lane, and an idle consumer told that a producer shares its CPU
// (yield=1), yield after this many fruitless polls.
constexpr unsigned k_full_polls_before_yield = 64;
constexpr unsigned k_idle_polls_before_yield = 64;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

constexpr std::uint64_t k_seq_mask = (std::uint64_t{1} << 40) - 1;
std::uint64_t object(unsigned lane, unsigned epoch, std::uint64_t seq) {
    return (std::uint64_t{lane + 1} << 48) | (std::uint64_t{epoch & 0xffu} << 40) | seq;
}
unsigned lane_of(std::uint64_t v) { return static_cast<unsigned>(v >> 48) - 1; }
unsigned epoch_of(std::uint64_t v) { return static_cast<unsigned>(v >> 40) & 0xffu; }
std::uint64_t seq_of(std::uint64_t v) { return v & k_seq_mask; }
rte_mbuf* as_mbuf(std::uint64_t v) { return reinterpret_cast<rte_mbuf*>(static_cast<std::uintptr_t>(v)); }
std::uint64_t as_value(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

struct Args {
    std::map<std::string, std::string> kv;
    std::string get(const std::string& key, const std::string& fallback = "") const {
        auto it = kv.find(key);
        return it == kv.end() ? fallback : it->second;
    }
    unsigned long long num(const std::string& key, unsigned long long fallback = 0) const {
        auto it = kv.find(key);
        return it == kv.end() ? fallback : std::strtoull(it->second.c_str(), nullptr, 10);
    }
};

std::string ring_name(const std::string& region) { return region + "_r"; }

// Reads stdin lines on a plain (non-EAL) thread, which makes no DPDK calls: the worker keeps the
// main lcore and only polls atomics.
class CommandThread {
public:
    template <typename Handler>
    explicit CommandThread(Handler handler)
        : thread_([this, handler] {
              std::string line;
              while (std::getline(std::cin, line)) {
                  if (line == "quit" || line == "stop") {
                      break;
                  }
                  handler(line);
              }
              stop_.store(true);
          }) {}
    ~CommandThread() { thread_.join(); }
    CommandThread(const CommandThread&) = delete;
    CommandThread& operator=(const CommandThread&) = delete;
    bool stop() const { return stop_.load(std::memory_order_relaxed); }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// --- primary --------------------------------------------------------------------------------------

// Sequence-checks what the reclaimer takes out of one lane.
struct LaneTally {
    std::uint64_t count = 0;
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    unsigned epoch = 0;
    bool ordered = true;

    void add(std::uint64_t v) {
        if (count == 0) {
            first = seq_of(v);
            epoch = epoch_of(v);
        } else if (epoch_of(v) != epoch || seq_of(v) != last + 1) {
            ordered = false;
        }
        last = seq_of(v);
        ++count;
    }
};

void salvage(Inbox& inbox, unsigned lane) {
    LaneTally tally;
    std::array<rte_mbuf*, k_burst_max> out{};
    while (const unsigned n = inbox.salvage_unpublished(lane, out)) {
        for (unsigned i = 0; i < n; ++i) {
            tally.ordered = tally.ordered && lane_of(as_value(out[i])) == lane;
            tally.add(as_value(out[i]));
        }
    }
    // The live consumer keeps taking what the dead producer did publish; report once it has.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (inbox.lane_pending(lane) != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::printf("SALVAGED lane=%u count=%llu first=%llu last=%llu epoch=%u ordered=%d pending=%u\n", lane,
                static_cast<unsigned long long>(tally.count), static_cast<unsigned long long>(tally.first),
                static_cast<unsigned long long>(tally.last), tally.epoch, tally.ordered ? 1 : 0,
                inbox.lane_pending(lane));
}

// The consumer is dead: act as the consumer (a fresh view) until nothing is pending.
void drain(void* memory) {
    Inbox reclaimer(memory);
    std::array<std::uint64_t, k_max_lanes> pending_before{};
    for (unsigned lane = 0; lane < reclaimer.lanes(); ++lane) {
        pending_before[lane] = reclaimer.lane_pending(lane);
    }
    std::array<LaneTally, k_max_lanes> tally{};
    std::uint64_t total = 0;
    std::uint64_t foreign = 0;
    std::array<rte_mbuf*, k_burst_max> out{};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (reclaimer.pending() != 0 && std::chrono::steady_clock::now() < deadline) {
        const unsigned n = reclaimer.dequeue_burst(out);
        for (unsigned i = 0; i < n; ++i) {
            const std::uint64_t v = as_value(out[i]);
            if (v == 0 || lane_of(v) >= k_max_lanes) {
                ++foreign;
                continue;
            }
            tally[lane_of(v)].add(v);
        }
        total += n;
    }
    for (unsigned lane = 0; lane < reclaimer.lanes(); ++lane) {
        if (tally[lane].count == 0 && pending_before[lane] == 0) {
            continue;
        }
        std::printf("DRAINED lane=%u pending_before=%llu count=%llu first=%llu last=%llu epoch=%u ordered=%d\n", lane,
                    static_cast<unsigned long long>(pending_before[lane]),
                    static_cast<unsigned long long>(tally[lane].count),
                    static_cast<unsigned long long>(tally[lane].first),
                    static_cast<unsigned long long>(tally[lane].last), tally[lane].epoch,
                    tally[lane].ordered ? 1 : 0);
    }
    std::printf("DRAIN_DONE total=%llu pending=%llu foreign=%llu\n", static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(reclaimer.pending()), static_cast<unsigned long long>(foreign));
}

int run_primary(const Args& args) {
    const std::string name = args.get("name", "inbox");
    const auto lanes = static_cast<unsigned>(args.num("lanes", k_max_lanes));
    const auto capacity = static_cast<unsigned>(args.num("capacity", 1024));
    auto region = create_region(name, Inbox::bytes(lanes, capacity), k_region_magic, k_region_layout);
    if (!region) {
        std::printf("ERROR %s\n", region.error().message.c_str());
        return 1;
    }
    Inbox inbox = Inbox::format(*region, lanes, capacity);
    if (!inbox.valid()) {
        std::printf("ERROR bad inbox geometry lanes=%u capacity=%u\n", lanes, capacity);
        return 1;
    }
    rte_ring* ring = nullptr;
    if (const auto count = static_cast<unsigned>(args.num("ring", 0)); count != 0) {
        // The baseline: default (MP) enqueue, single-consumer dequeue.
        ring = rte_ring_create(ring_name(name).c_str(), count, SOCKET_ID_ANY, RING_F_SC_DEQ);
        if (ring == nullptr) {
            std::printf("ERROR rte_ring_create: %s\n", rte_strerror(rte_errno));
            return 1;
        }
    }
    std::printf("READY bytes=%zu\n", Inbox::bytes(lanes, capacity));
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "quit") {
            break;
        }
        if (line.rfind("salvage ", 0) == 0) {
            salvage(inbox, static_cast<unsigned>(std::strtoul(line.c_str() + 8, nullptr, 10)));
        } else if (line == "drain") {
            drain(*region);
        } else if (line == "pending") {
            std::printf("PENDING total=%llu", static_cast<unsigned long long>(inbox.pending()));
            for (unsigned lane = 0; lane < lanes; ++lane) {
                if (const unsigned p = inbox.lane_pending(lane)) {
                    std::printf(" l%u=%u", lane, p);
                }
            }
            std::printf("\n");
        } else {
            std::printf("ERROR unknown command '%s'\n", line.c_str());
        }
    }
    rte_ring_free(ring);
    free_region(name);
    return 0;
}

// --- consumer -------------------------------------------------------------------------------------

// Per-lane state the worker publishes for the command thread (relaxed: monitoring only).
struct alignas(k_cache_line) LaneStats {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> last{0}; // last object value, 0 = none yet
};

struct ConsumerStats {
    std::array<LaneStats, k_max_lanes> lanes;
    alignas(k_cache_line) std::atomic<std::uint64_t> total{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> sleeps{0};
    std::atomic<std::uint64_t> wake_ns{0}; // when the first object after the latest sleep arrived
};

void print_consumer_stats(const ConsumerStats& s) {
    std::string line = "STATS t_ns=" + std::to_string(now_ns()) + " total=" + std::to_string(s.total.load()) +
                       " errors=" + std::to_string(s.errors.load()) + " sleeps=" + std::to_string(s.sleeps.load()) +
                       " wake_ns=" + std::to_string(s.wake_ns.load());
    for (unsigned lane = 0; lane < k_max_lanes; ++lane) {
        const std::uint64_t count = s.lanes[lane].count.load(std::memory_order_relaxed);
        if (count == 0) {
            continue;
        }
        const std::uint64_t last = s.lanes[lane].last.load(std::memory_order_relaxed);
        const std::string l = " l" + std::to_string(lane) + "_";
        line += l + "count=" + std::to_string(count) + l + "last=" + std::to_string(seq_of(last)) + l +
                "epoch=" + std::to_string(epoch_of(last));
    }
    std::printf("%s\n", line.c_str());
}

int run_consumer(const Args& args) {
    const std::string name = args.get("name", "inbox");
    const bool use_ring = args.num("ring", 0) != 0;
    const bool may_sleep = args.num("sleep", 0) != 0;
    // check=0 (benchmarks): count only, like DPDK's ring perf tests, so the figure is the transport's.
    const bool check = args.num("check", 1) != 0;
    // yield=1 when a producer shares the consumer's CPU; alone on its CPU it polls without pause,
    // since yielding would only donate its time to unrelated work.
    const bool yield_when_idle = !may_sleep && args.num("yield", 0) != 0;
    auto region = attach_region(name, k_region_magic, k_region_layout);
    if (!region) {
        std::printf("ERROR %s\n", region.error().message.c_str());
        return 1;
    }
    Inbox inbox(*region);
    rte_ring* ring = nullptr;
    if (use_ring && (ring = rte_ring_lookup(ring_name(name).c_str())) == nullptr) {
        std::printf("ERROR rte_ring_lookup(%s) failed\n", ring_name(name).c_str());
        return 1;
    }
    static ConsumerStats stats; // large and aligned: not on the stack
    std::array<std::uint64_t, k_max_lanes> expect_epoch{};
    std::array<std::uint64_t, k_max_lanes> expect_seq{};
    std::printf("READY\n");
    CommandThread commands([](const std::string& line) {
        if (line == "stats") {
            print_consumer_stats(stats);
        }
    });
    std::array<rte_mbuf*, k_burst_max> out{};
    unsigned idle = 0;
    bool woken = false;
    std::uint64_t total = 0;
    while (!commands.stop()) {
        const unsigned n = use_ring ? rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(out.data()),
                                                                k_burst_max, nullptr)
                                    : inbox.dequeue_burst(out);
        if (n == 0) {
            if (may_sleep && ++idle >= k_idle_polls_before_sleep) {
                const std::uint32_t seen = inbox.prepare_sleep();
                if (inbox.pending() == 0) { // the re-check (a dequeue would do too)
                    stats.sleeps.fetch_add(1, std::memory_order_relaxed);
                    inbox.wait(seen, k_sleep_usec);
                    woken = true;
                }
                inbox.finish_sleep();
                idle = 0;
            } else if (yield_when_idle && ++idle % k_idle_polls_before_yield == 0) {
                sched_yield(); // a producer shares this CPU: let it run (see the producer's yield)
            } else {
                rte_pause();
            }
            continue;
        }
        idle = 0;
        if (woken) {
            stats.wake_ns.store(now_ns(), std::memory_order_relaxed);
            woken = false;
        }
        for (unsigned i = 0; check && i < n; ++i) {
            const std::uint64_t v = as_value(out[i]);
            const unsigned lane = lane_of(v);
            if (v == 0 || lane >= k_max_lanes) {
                stats.errors.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            // Exactly once and in order: the next object of a lane is the next seq of the same
            // epoch, or seq 1 of a newer epoch (a successor took over the lane).
            const unsigned epoch = epoch_of(v);
            const std::uint64_t seq = seq_of(v);
            const bool ok = (epoch == expect_epoch[lane] && seq == expect_seq[lane] + 1) ||
                            (epoch > expect_epoch[lane] && seq == 1);
            if (!ok) {
                stats.errors.fetch_add(1, std::memory_order_relaxed);
            }
            expect_epoch[lane] = epoch;
            expect_seq[lane] = seq;
            LaneStats& ls = stats.lanes[lane];
            ls.count.store(ls.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            ls.last.store(v, std::memory_order_relaxed);
        }
        total += n;
        stats.total.store(total, std::memory_order_relaxed);
    }
    print_consumer_stats(stats);
    return 0;
}

// --- producer -------------------------------------------------------------------------------------

struct ProducerStats {
    alignas(k_cache_line) std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> full{0}; // polls that found no room
    std::atomic<bool> go{false};
};

int run_producer(const Args& args) {
    const std::string name = args.get("name", "inbox");
    const auto lane = static_cast<unsigned>(args.num("lane", 0));
    const auto epoch = static_cast<unsigned>(args.num("epoch", 1));
    const bool use_ring = args.num("ring", 0) != 0;
    const std::uint64_t die_after_ms = args.num("die_after_ms", 0);
    const std::uint64_t count = args.num("count", 0); // 0 = until stopped
    auto region = attach_region(name, k_region_magic, k_region_layout);
    if (!region) {
        std::printf("ERROR %s\n", region.error().message.c_str());
        return 1;
    }
    Inbox inbox(*region);
    if (lane >= inbox.lanes()) {
        std::printf("ERROR lane %u outside the inbox (%u lanes)\n", lane, inbox.lanes());
        return 1;
    }
    rte_ring* ring = nullptr;
    if (use_ring && (ring = rte_ring_lookup(ring_name(name).c_str())) == nullptr) {
        std::printf("ERROR rte_ring_lookup(%s) failed\n", ring_name(name).c_str());
        return 1;
    }
    std::uint64_t next = 1;
    std::printf("READY lane=%u epoch=%u\n", lane, epoch);

    if (args.num("manual", 0) != 0) {
        std::string line;
        while (std::getline(std::cin, line) && line != "quit") {
            if (line.rfind("send ", 0) != 0) {
                continue;
            }
            const auto n = static_cast<unsigned>(std::min(std::strtoul(line.c_str() + 5, nullptr, 10), 32ul));
            std::array<rte_mbuf*, k_burst_max> burst{};
            for (unsigned i = 0; i < n; ++i) {
                burst[i] = as_mbuf(object(lane, epoch, next + i));
            }
            const std::uint64_t t = now_ns();
            const unsigned done = inbox.enqueue_burst(lane, std::span(burst.data(), n));
            inbox.ring_doorbell();
            next += done;
            std::printf("SENT t_ns=%llu n=%u\n", static_cast<unsigned long long>(t), done);
        }
        return 0;
    }

    static ProducerStats stats;
    CommandThread commands([](const std::string& line) {
        if (line == "go") {
            stats.go.store(true);
        } else if (line == "stats") {
            std::printf("STATS t_ns=%llu sent=%llu full=%llu\n", static_cast<unsigned long long>(now_ns()),
                        static_cast<unsigned long long>(stats.sent.load(std::memory_order_relaxed)),
                        static_cast<unsigned long long>(stats.full.load(std::memory_order_relaxed)));
        }
    });
    while (!stats.go.load(std::memory_order_relaxed) && !commands.stop()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const std::uint64_t die_at_ns = die_after_ms != 0 ? now_ns() + die_after_ms * 1'000'000 : 0;
    bool die = false;
    std::array<rte_mbuf*, k_burst_max> burst{};
    unsigned burst_len = 0;
    unsigned burst_done = 0;
    std::uint64_t full = 0;
    unsigned full_polls = 0;
    while (!commands.stop()) {
        if (burst_done == burst_len) { // the previous burst is all in: build the next one
            if (count != 0 && next > count) {
                break;
            }
            if (die_at_ns != 0 && now_ns() >= die_at_ns) {
                die = true;
                break;
            }
            burst_len = static_cast<unsigned>(
                std::min<std::uint64_t>(k_burst_max, count != 0 ? count - next + 1 : k_burst_max));
            for (unsigned i = 0; i < burst_len; ++i) {
                burst[i] = as_mbuf(object(lane, epoch, next + i));
            }
            burst_done = 0;
        }
        const std::span<rte_mbuf* const> rest(burst.data() + burst_done, burst_len - burst_done);
        const unsigned n = use_ring ? rte_ring_mp_enqueue_burst(ring, reinterpret_cast<void* const*>(rest.data()),
                                                                static_cast<unsigned>(rest.size()), nullptr)
                                    : inbox.enqueue_burst(lane, rest);
        if (n == 0) {
            stats.full.store(++full, std::memory_order_relaxed);
            // A full lane for a while: give the CPU away, as a stack with nothing else to do would.
            // A consumer sharing this CPU then gets to drain; spinning would only burn the slice.
            if (++full_polls % k_full_polls_before_yield == 0) {
                sched_yield();
            } else {
                rte_pause();
            }
            continue;
        }
        full_polls = 0;
        if (!use_ring) {
            inbox.ring_doorbell();
        }
        burst_done += n;
        if (burst_done == burst_len) {
            next += burst_len;
        }
        stats.sent.store(stats.sent.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    if (die) {
        // Die inside an enqueue: slots written, tail never published. Wait (bounded) for room
        // first: with the consumer behind, a full lane would leave nothing to salvage.
        const auto room_deadline = now_ns() + 2'000'000'000ull;
        while (inbox.lane_pending(lane) + k_die_unpublished > inbox.lane_capacity() && now_ns() < room_deadline) {
            sched_yield();
        }
        std::array<rte_mbuf*, k_die_unpublished> doomed{};
        for (unsigned i = 0; i < k_die_unpublished; ++i) {
            doomed[i] = as_mbuf(object(lane, epoch, next + i));
        }
        const unsigned written = inbox.enqueue_unpublished_for_test(lane, doomed);
        std::printf("DYING first=%llu n=%u\n", static_cast<unsigned long long>(next), written);
        std::fflush(stdout);
        std::raise(SIGKILL);
    }
    std::printf("DONE sent=%llu full=%llu\n", static_cast<unsigned long long>(stats.sent.load()),
                static_cast<unsigned long long>(full));
    if (count != 0) {
        // Count-limited run finished by itself: wait for the test to say goodbye.
        while (!commands.stop()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    return 0;
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
    if (*first >= argc) {
        std::printf("ERROR no role given\n");
        return 2;
    }
    const std::string role = argv[*first];
    Args args;
    for (int i = *first + 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto eq = a.find('=');
        if (eq != std::string::npos) {
            args.kv[a.substr(0, eq)] = a.substr(eq + 1);
        }
    }
    if (role == "primary") {
        return run_primary(args);
    }
    if (role == "consumer") {
        return run_consumer(args);
    }
    if (role == "producer") {
        return run_producer(args);
    }
    std::printf("ERROR unknown role '%s'\n", role.c_str());
    return 2;
}
