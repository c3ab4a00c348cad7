// SPDX-License-Identifier: BSD-3-Clause
// Single-process tests of the MPSC inbox. The inbox only moves pointers and works on any memory,
// so these use cache-aligned heap memory and fake mbuf pointers (non-zero integers), no EAL.
#include "fabric/inbox.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace gazelle::fabric {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

rte_mbuf* fake(std::uint64_t value) { return reinterpret_cast<rte_mbuf*>(static_cast<std::uintptr_t>(value)); }
std::uint64_t value_of(const rte_mbuf* m) { return reinterpret_cast<std::uintptr_t>(m); }

// Object identity for the concurrent tests: lane in the high bits, 1-based sequence number below.
std::uint64_t object(unsigned lane, std::uint64_t seq) { return (std::uint64_t{lane + 1} << 48) | seq; }
unsigned lane_of(std::uint64_t v) { return static_cast<unsigned>(v >> 48) - 1; }
std::uint64_t seq_of(std::uint64_t v) { return v & ((std::uint64_t{1} << 48) - 1); }

std::vector<rte_mbuf*> objects(unsigned lane, std::uint64_t first_seq, unsigned n) {
    std::vector<rte_mbuf*> v;
    for (unsigned i = 0; i < n; ++i) {
        v.push_back(fake(object(lane, first_seq + i)));
    }
    return v;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// An inbox in cache-aligned heap memory, plus the ABI-level views tests need to set up states
// that only a crash produces (the layout is fixed: header, lanes, then slots).
class HeapInbox {
public:
    HeapInbox(unsigned lanes, unsigned capacity)
        : bytes_((Inbox::bytes(lanes, capacity) + k_cache_line - 1) / k_cache_line * k_cache_line),
          memory_(std::aligned_alloc(k_cache_line, bytes_)) {
        std::fill_n(static_cast<unsigned char*>(memory_.get()), bytes_, 0xa5); // formatting must clear it
        inbox_ = Inbox::format(memory_.get(), lanes, capacity);
    }

    Inbox& inbox() { return inbox_; }
    void* memory() { return memory_.get(); }
    InboxHeader* header() { return static_cast<InboxHeader*>(memory_.get()); }
    InboxLane* lane(unsigned index) { return reinterpret_cast<InboxLane*>(header() + 1) + index; }
    std::uint64_t* slots(unsigned index) {
        auto* base = reinterpret_cast<std::uint64_t*>(lane(header()->lanes));
        return base + std::size_t{index} * header()->lane_capacity;
    }
    std::uint64_t mask() { return header()->nonempty.load(); }

private:
    std::size_t bytes_;
    std::unique_ptr<void, FreeDeleter> memory_;
    Inbox inbox_;
};

std::vector<std::uint64_t> drain(Inbox& inbox, unsigned burst = k_burst_max) {
    std::vector<std::uint64_t> got;
    std::vector<rte_mbuf*> out(burst);
    while (const unsigned n = inbox.dequeue_burst(out)) {
        for (unsigned i = 0; i < n; ++i) {
            got.push_back(value_of(out[i]));
        }
    }
    return got;
}

std::vector<std::uint64_t> values(const std::vector<rte_mbuf*>& pkts) {
    std::vector<std::uint64_t> v;
    for (auto* p : pkts) {
        v.push_back(value_of(p));
    }
    return v;
}

// --- geometry -------------------------------------------------------------------------------------

TEST(InboxTest, BytesCoverHeaderLanesAndSlots) {
    EXPECT_EQ(Inbox::bytes(1, 1), sizeof(InboxHeader) + sizeof(InboxLane) + 8);
    EXPECT_EQ(Inbox::bytes(64, 1024), sizeof(InboxHeader) + 64 * sizeof(InboxLane) + 64u * 1024u * 8u);
    // Slots start cache-line aligned, so lanes never share a slot line.
    EXPECT_EQ((sizeof(InboxHeader) + 3 * sizeof(InboxLane)) % k_cache_line, 0u);
}

TEST(InboxTest, FormatClearsMemoryAndRecordsGeometry) {
    HeapInbox h(8, 16);
    ASSERT_TRUE(h.inbox().valid());
    EXPECT_EQ(h.inbox().lanes(), 8u);
    EXPECT_EQ(h.inbox().lane_capacity(), 16u);
    EXPECT_EQ(h.header()->lane_mask, 15u);
    EXPECT_EQ(h.mask(), 0u);
    EXPECT_EQ(h.inbox().pending(), 0u);
    for (unsigned lane = 0; lane < 8; ++lane) {
        EXPECT_EQ(h.lane(lane)->head.load(), 0u);
        EXPECT_EQ(h.lane(lane)->tail.load(), 0u);
        for (unsigned i = 0; i < 16; ++i) {
            ASSERT_EQ(h.slots(lane)[i], 0u) << "lane " << lane << " slot " << i;
        }
    }
    // A view attached to the same memory (what a secondary does) sees the same inbox.
    Inbox attached(h.memory());
    EXPECT_EQ(attached.lanes(), 8u);
    EXPECT_EQ(attached.lane_capacity(), 16u);
}

TEST(InboxTest, FormatRejectsGeometryTheMaskCannotRepresent) {
    alignas(k_cache_line) static std::array<unsigned char, 1 << 16> memory{};
    EXPECT_FALSE(Inbox::format(memory.data(), 0, 16).valid());
    EXPECT_FALSE(Inbox::format(memory.data(), 65, 1).valid()) << "the non-empty mask has 64 bits";
    EXPECT_FALSE(Inbox::format(memory.data(), 4, 0).valid());
    EXPECT_FALSE(Inbox::format(memory.data(), 4, 24).valid()) << "capacity must be a power of two";
    EXPECT_TRUE(Inbox::format(memory.data(), 64, 1).valid());
    EXPECT_FALSE(Inbox().valid());
}

// --- producer / consumer basics --------------------------------------------------------------------

TEST(InboxTest, EmptyInboxDequeuesNothing) {
    HeapInbox h(4, 8);
    std::array<rte_mbuf*, 4> out{};
    EXPECT_EQ(h.inbox().dequeue_burst(out), 0u);
    EXPECT_EQ(h.inbox().dequeue_burst(std::span<rte_mbuf*>()), 0u);
}

TEST(InboxTest, LaneIsFifoAcrossBursts) {
    HeapInbox h(4, 64);
    Inbox& inbox = h.inbox();
    const auto a = objects(3, 1, 5);
    const auto b = objects(3, 6, 7);
    ASSERT_EQ(inbox.enqueue_burst(3, a), 5u);
    ASSERT_EQ(inbox.enqueue_burst(3, b), 7u);
    EXPECT_EQ(inbox.lane_pending(3), 12u);
    EXPECT_EQ(inbox.pending(), 12u);
    EXPECT_EQ(h.mask(), std::uint64_t{1} << 3);

    // Small output bursts: order is kept across dequeue calls too.
    const auto got = drain(inbox, 4);
    ASSERT_EQ(got.size(), 12u);
    for (unsigned i = 0; i < 12; ++i) {
        EXPECT_EQ(got[i], object(3, i + 1)) << "position " << i;
    }
    EXPECT_EQ(inbox.pending(), 0u);
    // Consumed slots are cleared: that is what lets salvage tell unpublished entries apart.
    for (unsigned i = 0; i < 64; ++i) {
        EXPECT_EQ(h.slots(3)[i], 0u);
    }
}

TEST(InboxTest, FullLaneAcceptsPartOfABurstAndNeverBlocks) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    EXPECT_EQ(inbox.enqueue_burst(0, objects(0, 1, 5)), 5u);
    EXPECT_EQ(inbox.enqueue_burst(0, objects(0, 6, 5)), 3u) << "only 3 of 8 slots were left";
    EXPECT_EQ(inbox.enqueue_burst(0, objects(0, 9, 5)), 0u) << "a full lane rejects, it does not wait";
    EXPECT_EQ(inbox.lane_pending(0), 8u);

    std::array<rte_mbuf*, 3> out{};
    ASSERT_EQ(inbox.dequeue_burst(out), 3u);
    EXPECT_EQ(value_of(out[0]), object(0, 1));
    // Room for exactly 3 again; the caller re-offers what was rejected.
    EXPECT_EQ(inbox.enqueue_burst(0, objects(0, 9, 5)), 3u);
    const auto got = drain(inbox);
    ASSERT_EQ(got.size(), 8u);
    for (unsigned i = 0; i < 8; ++i) {
        EXPECT_EQ(got[i], object(0, 4 + i));
    }
}

TEST(InboxTest, FullLaneDoesNotAffectOtherLanes) {
    HeapInbox h(2, 4);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 1, 4)), 4u);
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 5, 1)), 0u);
    EXPECT_EQ(inbox.enqueue_burst(1, objects(1, 1, 4)), 4u);
    EXPECT_EQ(inbox.pending(), 8u);
}

TEST(InboxTest, LaneOutsideTheInboxIsRejected) {
    HeapInbox h(2, 4);
    EXPECT_EQ(h.inbox().enqueue_burst(2, objects(2, 1, 1)), 0u);
    EXPECT_EQ(h.inbox().enqueue_burst(64, objects(1, 1, 1)), 0u);
    EXPECT_EQ(h.inbox().lane_pending(7), 0u);
    EXPECT_EQ(h.mask(), 0u);
}

TEST(InboxTest, DequeueVisitsLanesRoundRobin) {
    HeapInbox h(64, 64);
    Inbox& inbox = h.inbox();
    const std::array<unsigned, 4> lanes{0, 1, 5, 63};
    for (unsigned lane : lanes) {
        ASSERT_EQ(inbox.enqueue_burst(lane, objects(lane, 1, 20)), 20u);
    }
    // Bursts of 8 from lanes with 20 each: every burst starts after the lane served last.
    std::array<rte_mbuf*, 8> out{};
    std::vector<unsigned> first_lane;
    std::array<unsigned, 64> served{};
    while (const unsigned n = inbox.dequeue_burst(out)) {
        first_lane.push_back(lane_of(value_of(out[0])));
        for (unsigned i = 0; i < n; ++i) {
            ++served[lane_of(value_of(out[i]))];
        }
        // Fairness: at no point has any lane been served more than one burst ahead of another.
        const auto [lo, hi] = std::minmax({served[0], served[1], served[5], served[63]});
        if (inbox.pending() > 0 && hi < 20) {
            EXPECT_LE(hi - lo, 8u);
        }
    }
    ASSERT_GE(first_lane.size(), 8u);
    const std::vector<unsigned> expected_start{0, 1, 5, 63, 0, 1, 5, 63};
    EXPECT_EQ(std::vector<unsigned>(first_lane.begin(), first_lane.begin() + 8), expected_start);
    for (unsigned lane : lanes) {
        EXPECT_EQ(served[lane], 20u);
    }
}

TEST(InboxTest, OneBurstSpansSeveralLanesInLaneOrder) {
    HeapInbox h(8, 16);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(6, objects(6, 1, 3)), 3u);
    ASSERT_EQ(inbox.enqueue_burst(2, objects(2, 1, 2)), 2u);
    std::array<rte_mbuf*, 32> out{};
    ASSERT_EQ(inbox.dequeue_burst(out), 5u);
    const std::vector<std::uint64_t> got{value_of(out[0]), value_of(out[1]), value_of(out[2]), value_of(out[3]),
                                         value_of(out[4])};
    EXPECT_EQ(got, (std::vector<std::uint64_t>{object(2, 1), object(2, 2), object(6, 1), object(6, 2), object(6, 3)}));
    EXPECT_EQ(h.mask(), 0u) << "both lanes were found empty and unflagged";
}

TEST(InboxTest, BusyLaneDoesNotStarveAQuietOne) {
    HeapInbox h(4, 256);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(1, objects(1, 1, 3)), 3u);
    std::uint64_t busy_seq = 1;
    std::array<rte_mbuf*, 8> out{};
    unsigned quiet_received = 0;
    for (int poll = 0; poll < 6; ++poll) {
        // The busy producer refills its lane before every poll.
        busy_seq += inbox.enqueue_burst(0, objects(0, busy_seq, 16));
        const unsigned n = inbox.dequeue_burst(out);
        for (unsigned i = 0; i < n; ++i) {
            quiet_received += lane_of(value_of(out[i])) == 1 ? 1u : 0u;
        }
    }
    EXPECT_EQ(quiet_received, 3u) << "the quiet lane waits at most one burst";
}

TEST(InboxTest, FreeRunningCountersWrapAround) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    // Put lane 1 just before the 32-bit wrap (what 4 G objects of traffic would do).
    h.lane(1)->head.store(0xfffffffcu);
    h.lane(1)->tail.store(0xfffffffcu);
    std::uint64_t next_in = 1;
    std::uint64_t next_out = 1;
    for (int round = 0; round < 10; ++round) {
        next_in += inbox.enqueue_burst(1, objects(1, next_in, 6));
        EXPECT_LE(inbox.lane_pending(1), 8u);
        std::array<rte_mbuf*, 5> out{};
        const unsigned n = inbox.dequeue_burst(out);
        for (unsigned i = 0; i < n; ++i) {
            ASSERT_EQ(value_of(out[i]), object(1, next_out++));
        }
    }
    for (std::uint64_t v : drain(inbox)) {
        ASSERT_EQ(v, object(1, next_out++));
    }
    EXPECT_EQ(next_out, next_in);
    EXPECT_LT(h.lane(1)->tail.load(), 0x100u) << "the test did cross the wrap";
}

TEST(InboxTest, MaskFollowsLaneState) {
    HeapInbox h(8, 8);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(4, objects(4, 1, 8)), 8u);
    ASSERT_EQ(inbox.enqueue_burst(7, objects(7, 1, 1)), 1u);
    EXPECT_EQ(h.mask(), (std::uint64_t{1} << 4) | (std::uint64_t{1} << 7));
    std::array<rte_mbuf*, 4> out{};
    ASSERT_EQ(inbox.dequeue_burst(out), 4u); // lane 4 still has 4: keeps its bit
    EXPECT_EQ(h.mask(), (std::uint64_t{1} << 4) | (std::uint64_t{1} << 7));
    (void)drain(inbox);
    EXPECT_EQ(h.mask(), 0u);
    ASSERT_EQ(inbox.enqueue_burst(4, objects(4, 9, 1)), 1u);
    EXPECT_EQ(h.mask(), std::uint64_t{1} << 4) << "an empty lane is flagged again by its next enqueue";
}

// --- concurrency -----------------------------------------------------------------------------------

struct StressResult {
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t foreign = 0;
    bool timed_out = false;
};

// Producer threads on `lanes` push `per_lane` objects each (burst sizes varying 1..32, retrying
// the rejected rest); one consumer thread checks that every lane's objects arrive exactly once,
// in order. A lost non-empty flag shows up as a consumer that never sees the last objects.
StressResult stress(unsigned lane_capacity, const std::vector<unsigned>& lanes, std::uint64_t per_lane,
                    unsigned consumer_burst) {
    HeapInbox h(64, lane_capacity);
    Inbox& shared = h.inbox();
    std::atomic<bool> start{false};
    std::vector<std::thread> producers;
    for (unsigned lane : lanes) {
        producers.emplace_back([&shared, &start, lane, per_lane] {
            Inbox inbox = shared; // every process/thread has its own view
            while (!start.load()) {
                std::this_thread::yield();
            }
            std::array<rte_mbuf*, 32> burst{};
            std::uint64_t next = 1;
            std::uint32_t rng = lane * 2654435761u + 1;
            while (next <= per_lane) {
                rng = rng * 1664525u + 1013904223u;
                const auto want = static_cast<unsigned>(std::min<std::uint64_t>(1 + (rng >> 27), per_lane - next + 1));
                for (unsigned i = 0; i < want; ++i) {
                    burst[i] = fake(object(lane, next + i));
                }
                unsigned done = 0;
                while (done < want) {
                    const unsigned n = inbox.enqueue_burst(lane, std::span(burst.data() + done, want - done));
                    done += n;
                    if (n == 0) {
                        std::this_thread::yield(); // 2 CPUs for 3+ threads: let the consumer run
                    }
                }
                next += want;
            }
        });
    }
    StressResult result;
    std::thread consumer([&] {
        Inbox inbox = shared;
        std::array<std::uint64_t, 64> last{};
        std::vector<rte_mbuf*> out(consumer_burst);
        const std::uint64_t total = per_lane * lanes.size();
        const auto deadline = Clock::now() + 60s;
        unsigned idle = 0;
        while (result.received < total) {
            const unsigned n = inbox.dequeue_burst(out);
            for (unsigned i = 0; i < n; ++i) {
                const std::uint64_t v = value_of(out[i]);
                const unsigned lane = lane_of(v);
                if (lane >= 64) {
                    ++result.foreign;
                    continue;
                }
                if (seq_of(v) != last[lane] + 1) {
                    ++result.out_of_order;
                }
                last[lane] = seq_of(v);
            }
            result.received += n;
            if (n == 0 && ++idle % 64 == 0) {
                std::this_thread::yield();
                if (Clock::now() > deadline) {
                    result.timed_out = true;
                    break;
                }
            }
        }
    });
    start.store(true);
    for (auto& t : producers) {
        t.join();
    }
    consumer.join();
    if (!result.timed_out) {
        EXPECT_EQ(shared.pending(), 0u);
        std::array<rte_mbuf*, 1> out{};
        EXPECT_EQ(shared.dequeue_burst(out), 0u);
        EXPECT_EQ(h.mask(), 0u) << "every lane empty, every flag cleared";
    }
    return result;
}

TEST(InboxConcurrencyTest, TwoProducerThreadsAndAConsumerLoseNothing) {
    constexpr std::uint64_t per_lane = 2'000'000;
    const auto t0 = Clock::now();
    const StressResult r = stress(256, {0, 63}, per_lane, 32);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("stress: %llu objects in %.2f s (%.1f Mobj/s)\n", static_cast<unsigned long long>(r.received), secs,
                static_cast<double>(r.received) / secs / 1e6);
    EXPECT_FALSE(r.timed_out) << "received " << r.received << ": a non-empty flag was lost";
    EXPECT_EQ(r.received, 2 * per_lane);
    EXPECT_EQ(r.out_of_order, 0u);
    EXPECT_EQ(r.foreign, 0u);
}

TEST(InboxConcurrencyTest, TinyLanesStressTheFlagHandshake) {
    // Capacity 4 and consumer bursts of 3: lanes go empty <-> non-empty all the time, so the
    // publish/flag vs clear/recheck race runs millions of times.
    constexpr std::uint64_t per_lane = 500'000;
    const StressResult r = stress(4, {1, 2, 40}, per_lane, 3);
    EXPECT_FALSE(r.timed_out) << "received " << r.received << ": a non-empty flag was lost";
    EXPECT_EQ(r.received, 3 * per_lane);
    EXPECT_EQ(r.out_of_order, 0u);
    EXPECT_EQ(r.foreign, 0u);
}

// --- doorbell --------------------------------------------------------------------------------------

TEST(InboxDoorbellTest, SleepingConsumerIsWokenQuickly) {
    HeapInbox h(4, 64);
    constexpr int rounds = 20;
    constexpr unsigned wait_usec = 2'000'000; // a missed wake-up would cost this much
    std::atomic<int> asleep_round{-1};
    std::atomic<int> received{0};
    std::array<Clock::time_point, rounds> rung{};
    std::array<Clock::time_point, rounds> woke{};
    std::atomic<unsigned> waits{0};
    std::thread consumer([&] {
        Inbox inbox = h.inbox();
        std::array<rte_mbuf*, 32> out{};
        for (int round = 0; round < rounds; ++round) {
            const auto deadline = Clock::now() + 10s;
            for (;;) {
                const std::uint32_t seen = inbox.prepare_sleep();
                // Re-check after announcing the sleep: a producer that missed the announcement
                // published before it, so this sees the entries.
                unsigned n = inbox.dequeue_burst(out);
                if (n == 0) {
                    asleep_round.store(round);
                    waits.fetch_add(1);
                    inbox.wait(seen, wait_usec);
                    inbox.finish_sleep();
                    n = inbox.dequeue_burst(out);
                } else {
                    inbox.finish_sleep();
                }
                if (n > 0) {
                    woke[static_cast<std::size_t>(round)] = Clock::now();
                    received.fetch_add(static_cast<int>(n));
                    break;
                }
                if (Clock::now() > deadline) {
                    return;
                }
            }
        }
    });
    Inbox producer = h.inbox();
    const auto deadline = Clock::now() + 30s;
    for (int round = 0; round < rounds && Clock::now() < deadline; ++round) {
        while (asleep_round.load() != round && Clock::now() < deadline) {
            std::this_thread::sleep_for(100us);
        }
        std::this_thread::sleep_for(2ms); // let it get into FUTEX_WAIT
        const auto one = objects(2, static_cast<std::uint64_t>(round) + 1, 1);
        rung[static_cast<std::size_t>(round)] = Clock::now();
        EXPECT_EQ(producer.enqueue_burst(2, one), 1u);
        producer.ring_doorbell();
        while (received.load() != round + 1 && Clock::now() < deadline) {
            std::this_thread::sleep_for(20us);
        }
    }
    consumer.join();
    ASSERT_EQ(received.load(), rounds);
    std::vector<double> latency_usec;
    for (int i = 0; i < rounds; ++i) {
        latency_usec.push_back(std::chrono::duration<double, std::micro>(woke[static_cast<std::size_t>(i)] -
                                                                         rung[static_cast<std::size_t>(i)])
                                   .count());
    }
    std::sort(latency_usec.begin(), latency_usec.end());
    std::printf("doorbell wake-up latency over %d rounds: median %.1f us, max %.1f us (%u waits)\n", rounds,
                latency_usec[rounds / 2], latency_usec.back(), waits.load());
    EXPECT_EQ(received.load(), rounds);
    // Generous bound for a loaded 2-CPU box; a lost wake-up would take the full 2 s wait.
    EXPECT_LT(latency_usec.back(), 500'000.0);
    EXPECT_EQ(h.header()->sleeping.load(), 0u);
}

TEST(InboxDoorbellTest, WaitTimesOutWhenNobodyRings) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    const std::uint32_t seen = inbox.prepare_sleep();
    const auto t0 = Clock::now();
    inbox.wait(seen, 30'000);
    const auto waited = Clock::now() - t0;
    inbox.finish_sleep();
    EXPECT_GE(waited, 25ms);
    EXPECT_LT(waited, 1s);
}

TEST(InboxDoorbellTest, RingBetweenPrepareAndWaitIsNotLost) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    const std::uint32_t seen = inbox.prepare_sleep();
    Inbox producer = inbox;
    ASSERT_EQ(producer.enqueue_burst(1, objects(1, 1, 1)), 1u);
    producer.ring_doorbell(); // the consumer is not in the kernel yet
    const auto t0 = Clock::now();
    inbox.wait(seen, 5'000'000);
    EXPECT_LT(Clock::now() - t0, 1s) << "the doorbell value moved, so the wait must not block";
    inbox.finish_sleep();
}

TEST(InboxDoorbellTest, RingingIsFreeWhileTheConsumerIsAwake) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    const std::uint32_t before = h.header()->doorbell.load();
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 1, 1)), 1u);
    inbox.ring_doorbell();
    EXPECT_EQ(h.header()->doorbell.load(), before) << "no announced sleeper: no bump, no futex syscall";
    (void)inbox.prepare_sleep();
    inbox.ring_doorbell();
    EXPECT_EQ(h.header()->doorbell.load(), before + 1);
    inbox.finish_sleep();
}

// --- crash recovery --------------------------------------------------------------------------------

TEST(InboxSalvageTest, FindsWrittenButUnpublishedEntries) {
    HeapInbox h(4, 16);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(2, objects(2, 1, 5)), 5u);
    // The producer dies inside its next enqueue: slots written, tail not stored.
    ASSERT_EQ(inbox.enqueue_unpublished_for_test(2, objects(2, 6, 3)), 3u);
    EXPECT_EQ(inbox.lane_pending(2), 5u);

    const auto consumed = drain(inbox);
    EXPECT_EQ(consumed, values(objects(2, 1, 5))) << "the consumer gets only what was published";

    std::array<rte_mbuf*, 32> out{};
    ASSERT_EQ(inbox.salvage_unpublished(2, out), 3u);
    EXPECT_EQ(std::vector<std::uint64_t>({value_of(out[0]), value_of(out[1]), value_of(out[2])}),
              values(objects(2, 6, 3)));
    EXPECT_EQ(inbox.salvage_unpublished(2, out), 0u) << "salvaged slots are cleared";
    EXPECT_EQ(inbox.salvage_unpublished(1, out), 0u) << "other lanes have nothing unpublished";
    EXPECT_EQ(drain(inbox).size(), 0u);
}

TEST(InboxSalvageTest, RunsConcurrentlyWithTheConsumerWithoutOverlap) {
    HeapInbox h(2, 16);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 1, 10)), 10u);
    ASSERT_EQ(inbox.enqueue_unpublished_for_test(0, objects(0, 11, 6)), 6u);
    // Salvage before the consumer drained the published part: the two sets are disjoint.
    std::array<rte_mbuf*, 32> out{};
    ASSERT_EQ(inbox.salvage_unpublished(0, out), 6u);
    EXPECT_EQ(value_of(out[0]), object(0, 11));
    EXPECT_EQ(value_of(out[5]), object(0, 16));
    EXPECT_EQ(drain(inbox), values(objects(0, 1, 10)));
}

TEST(InboxSalvageTest, ReturnsInChunksUntilZero) {
    HeapInbox h(2, 64);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_unpublished_for_test(1, objects(1, 1, 40)), 40u);
    std::vector<std::uint64_t> got;
    std::array<rte_mbuf*, 16> out{};
    while (const unsigned n = inbox.salvage_unpublished(1, out)) {
        for (unsigned i = 0; i < n; ++i) {
            got.push_back(value_of(out[i]));
        }
    }
    EXPECT_EQ(got, values(objects(1, 1, 40)));
}

TEST(InboxSalvageTest, NewOwnerOfTheLaneContinuesAtTail) {
    HeapInbox h(4, 8);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(3, objects(3, 1, 3)), 3u);
    ASSERT_EQ(inbox.enqueue_unpublished_for_test(3, objects(3, 4, 4)), 4u);
    std::array<rte_mbuf*, 8> out{};
    ASSERT_EQ(inbox.salvage_unpublished(3, out), 4u);
    // The successor (a new process) attaches its own view and produces on the same lane.
    Inbox successor(h.memory());
    ASSERT_EQ(successor.enqueue_burst(3, objects(3, 100, 5)), 5u) << "3 published + 5 new = full";
    EXPECT_EQ(successor.enqueue_burst(3, objects(3, 105, 1)), 0u);
    auto expected = values(objects(3, 1, 3));
    const auto fresh = values(objects(3, 100, 5));
    expected.insert(expected.end(), fresh.begin(), fresh.end());
    EXPECT_EQ(drain(inbox), expected);
    EXPECT_EQ(inbox.salvage_unpublished(3, out), 0u);
}

TEST(InboxSalvageTest, WorksAcrossTheCounterWrap) {
    HeapInbox h(2, 8);
    Inbox& inbox = h.inbox();
    h.lane(0)->head.store(0xfffffffeu);
    h.lane(0)->tail.store(0xfffffffeu);
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 1, 3)), 3u); // tail wraps to 1
    ASSERT_EQ(inbox.enqueue_unpublished_for_test(0, objects(0, 4, 5)), 5u);
    std::array<rte_mbuf*, 8> out{};
    ASSERT_EQ(inbox.salvage_unpublished(0, out), 5u);
    EXPECT_EQ(value_of(out[0]), object(0, 4));
    EXPECT_EQ(value_of(out[4]), object(0, 8));
    EXPECT_EQ(drain(inbox), values(objects(0, 1, 3)));
}

TEST(InboxSalvageTest, ReflagsEntriesPublishedByAProducerThatDiedBeforeFlagging) {
    HeapInbox h(4, 8);
    Inbox& inbox = h.inbox();
    std::array<rte_mbuf*, 8> out{};
    EXPECT_EQ(inbox.dequeue_burst(out), 0u); // a live consumer that has been polling all along
    ASSERT_EQ(inbox.enqueue_burst(1, objects(1, 1, 4)), 4u);
    // The producer died between storing tail and setting its bit (emulated by clearing the bit).
    h.header()->nonempty.fetch_and(~(std::uint64_t{1} << 1));
    EXPECT_EQ(inbox.dequeue_burst(out), 0u) << "without its flag the lane is invisible";
    EXPECT_EQ(inbox.salvage_unpublished(1, out), 0u);
    EXPECT_EQ(drain(inbox), values(objects(1, 1, 4))) << "salvage made the published entries visible again";
}

TEST(InboxReclaimTest, FreshConsumerViewFindsLanesWhoseFlagADeadConsumerCleared) {
    HeapInbox h(4, 8);
    Inbox consumer(h.memory());
    std::array<rte_mbuf*, 8> out{};
    EXPECT_EQ(consumer.dequeue_burst(out), 0u);
    ASSERT_EQ(consumer.enqueue_burst(2, objects(2, 1, 2)), 2u);
    // The consumer died between clearing the bit of a lane it found empty and re-checking the
    // lane, while the producer published without re-flagging (it still saw the bit set).
    h.header()->nonempty.store(0);
    EXPECT_EQ(consumer.pending(), 2u);
    EXPECT_EQ(consumer.dequeue_burst(out), 0u) << "the dead consumer's view would never see them";
    // The reclaimer attaches its own view and drains until pending() == 0.
    Inbox reclaimer(h.memory());
    EXPECT_EQ(drain(reclaimer), values(objects(2, 1, 2)));
    EXPECT_EQ(reclaimer.pending(), 0u);
}

TEST(InboxReclaimTest, SlotsTakenByADeadConsumerAreSkipped) {
    HeapInbox h(4, 8);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(0, objects(0, 1, 6)), 6u);
    // The consumer died inside dequeue_burst(): it had copied and cleared the first two slots but
    // not stored head. Those two objects are in the dead consumer's hands, not in the inbox.
    h.slots(0)[0] = 0;
    h.slots(0)[1] = 0;
    EXPECT_EQ(inbox.pending(), 6u);
    Inbox reclaimer(h.memory());
    EXPECT_EQ(drain(reclaimer), values(objects(0, 3, 4))) << "no null pointers handed out";
    EXPECT_EQ(reclaimer.pending(), 0u);
}

TEST(InboxReclaimTest, AWholeBurstOfTakenSlotsDoesNotEndTheDrain) {
    HeapInbox h(4, 64);
    Inbox& inbox = h.inbox();
    ASSERT_EQ(inbox.enqueue_burst(1, objects(1, 1, 40)), 40u);
    // The dead consumer had taken a full burst of 32 (a drain loop stops at the first 0).
    for (unsigned i = 0; i < 32; ++i) {
        h.slots(1)[i] = 0;
    }
    Inbox reclaimer(h.memory());
    std::array<rte_mbuf*, 32> out{};
    ASSERT_EQ(reclaimer.dequeue_burst(out), 8u);
    EXPECT_EQ(value_of(out[0]), object(1, 33));
    EXPECT_EQ(value_of(out[7]), object(1, 40));
    EXPECT_EQ(reclaimer.dequeue_burst(out), 0u);
    EXPECT_EQ(reclaimer.pending(), 0u);
}

} // namespace
} // namespace gazelle::fabric
