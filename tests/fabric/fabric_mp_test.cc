// SPDX-License-Identifier: BSD-3-Clause
// The fabric end to end with real processes: mis-steered packets reach their owner exactly once
// and in order, a killed stack's mbufs, rules, listener, memp pool and queue all come back, and a
// stack whose queue pool (L1) runs low allocates from the fabric's L2 pool, whose mbufs reclaim
// returns too.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/support/test_support.h"

namespace gazelle::test {
namespace {

// Port A (veth_a) has slots 0..3, port B (veth_b) slots 4..5; see fabric_actor.cc.
constexpr unsigned k_slots_a = 4;
constexpr unsigned k_inject_slot = 4;

class FabricMpTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(mount_.ok()) << mount_.error();
        eal_ = std::make_unique<EalInstance>(mount_, "fab");
        primary_ = spawn(eal_->primary_args(0), {"primary"});
        ASSERT_TRUE(primary_->expect("READY")) << primary_->transcript();
    }

    std::unique_ptr<Child> spawn(std::vector<std::string> eal, std::vector<std::string> role) {
        std::vector<std::string> argv{bin_path("fabric_actor")};
        argv.insert(argv.end(), eal.begin(), eal.end());
        argv.emplace_back("--");
        argv.insert(argv.end(), role.begin(), role.end());
        return std::make_unique<Child>(argv);
    }

    std::string ask(const std::string& command, const std::string& reply) {
        EXPECT_TRUE(primary_->send(command));
        auto line = primary_->expect(reply);
        EXPECT_TRUE(line) << command << " -> no " << reply << "\n" << primary_->transcript();
        return line.value_or("");
    }

    void claim(unsigned slot, pid_t pid, unsigned lcore) {
        const auto line = ask("claim " + std::to_string(slot) + " " + std::to_string(pid) + " " + std::to_string(lcore),
                              "CLAIM");
        ASSERT_EQ(field(line, "ok"), 1) << line;
    }

    HugeMount mount_;
    std::unique_ptr<EalInstance> eal_;
    std::unique_ptr<Child> primary_;
};

TEST_F(FabricMpTest, MisSteeredFlowsReachTheirOwnerExactlyOnceInOrder) {
    constexpr unsigned flows = 64;
    constexpr unsigned per_flow = 40;
    // Claims happen before the stacks attach: a stack's owner tag carries the epoch it was given.
    std::vector<std::unique_ptr<Child>> stacks;
    for (unsigned s = 0; s < k_slots_a; ++s) {
        claim(s, getpid(), 10 + s);
    }
    claim(k_inject_slot, getpid(), 20);
    for (unsigned s = 0; s < k_slots_a; ++s) {
        stacks.push_back(spawn(eal_->secondary_args(10 + s), {"stack", std::to_string(s)}));
        ASSERT_TRUE(stacks.back()->expect("READY")) << stacks.back()->transcript();
    }
    // Flow f belongs to queue f % 4 whatever RSS says: about 3 in 4 frames land on a wrong queue.
    for (unsigned f = 0; f < flows; ++f) {
        Child& owner = *stacks[f % k_slots_a];
        ASSERT_TRUE(owner.send("own " + std::to_string(f)));
        const auto rc = owner.expect("OWN");
        ASSERT_TRUE(rc);
        ASSERT_EQ(field(*rc, "rc"), 0) << *rc;
    }
    auto injector = spawn(eal_->secondary_args(20), {"inject", std::to_string(k_inject_slot), std::to_string(flows),
                                                     std::to_string(per_flow)});
    const auto injected = injector->expect("INJECTED", 60s);
    ASSERT_TRUE(injected) << injector->transcript();
    ASSERT_TRUE(injector->wait_success());
    EXPECT_EQ(field(*injected, "sent"), flows * per_flow) << *injected;

    long long total = 0;
    long long forwarded_out = 0;
    long long forwarded_in = 0;
    for (unsigned s = 0; s < k_slots_a; ++s) {
        Child& stack = *stacks[s];
        std::optional<std::string> report;
        // Wait until this stack has seen all frames of all its flows (bounded).
        for (int attempt = 0; attempt < 100; ++attempt) {
            ASSERT_TRUE(stack.send("report"));
            report = stack.expect("REPORT");
            ASSERT_TRUE(report) << stack.transcript();
            bool complete = true;
            for (unsigned f = s; f < flows; f += k_slots_a) {
                complete = complete && field(*report, "f" + std::to_string(f)) == per_flow;
            }
            if (complete) {
                break;
            }
            usleep(20000);
        }
        for (unsigned f = s; f < flows; f += k_slots_a) {
            EXPECT_EQ(field(*report, "f" + std::to_string(f)), per_flow) << "flow " << f << ": " << *report;
        }
        EXPECT_EQ(field(*report, "out_of_order"), 0) << *report;
        EXPECT_EQ(field(*report, "not_mine"), 0) << *report;
        total += field(*report, "received").value_or(0);
        forwarded_out += field(*report, "forwarded_out").value_or(0);
        forwarded_in += field(*report, "forwarded_in").value_or(0);
    }
    EXPECT_EQ(total, flows * per_flow); // exactly once: nothing duplicated
    EXPECT_GT(forwarded_out, 0);
    EXPECT_EQ(forwarded_out, forwarded_in);
    for (auto& stack : stacks) {
        ASSERT_TRUE(stack->send("quit"));
        EXPECT_TRUE(stack->wait_success());
    }
    const auto usage = ask("usage", "USAGE");
    EXPECT_EQ(field(usage, "in_use"), 0) << usage;
}

TEST_F(FabricMpTest, KilledStackIsReclaimedAndItsQueueReused) {
    constexpr unsigned victim_slot = 1;
    constexpr unsigned peer_slot = 2;     // claimed, never polled: holds what the victim forwarded
    constexpr unsigned victim_lcore = 11;
    claim(peer_slot, getpid(), 12);
    const auto baseline = ask("usage", "USAGE");
    ASSERT_EQ(field(baseline, "in_use"), 0) << baseline;

    for (int round = 0; round < 2; ++round) { // the second round reuses the reclaimed queue
        auto victim = spawn(eal_->secondary_args(victim_lcore), {"victim", std::to_string(victim_slot),
                                                                 std::to_string(peer_slot)});
        claim(victim_slot, victim->pid(), victim_lcore);
        const auto ready = victim->expect("READY");
        ASSERT_TRUE(ready) << victim->transcript();
        EXPECT_EQ(field(*ready, "rules"), 20);
        EXPECT_EQ(field(*ready, "listener"), 0);
        EXPECT_EQ(field(*ready, "memp"), 1);
        EXPECT_EQ(field(*ready, "in_hand"), 300);
        EXPECT_EQ(field(*ready, "in_flight"), 64);
        EXPECT_EQ(field(*ready, "cached"), 100);
        const auto held = ask("usage", "USAGE");
        EXPECT_EQ(field(held, "in_use"), 300 + 64) << held;
        EXPECT_EQ(field(held, "rules"), 20 + 1) << held; // 20 connections + 1 listener key
        EXPECT_EQ(field(held, "memps"), 1) << held;

        ASSERT_TRUE(victim->kill(SIGKILL));
        ASSERT_TRUE(victim->wait());

        const auto r = ask("reclaim " + std::to_string(victim_slot), "RECLAIM");
        EXPECT_EQ(field(r, "ok"), 1) << r;
        EXPECT_EQ(field(r, "owned"), 1) << r;
        EXPECT_EQ(field(r, "rules"), 20) << r;
        EXPECT_EQ(field(r, "listeners"), 1) << r;
        EXPECT_EQ(field(r, "memps"), 1) << r;
        EXPECT_EQ(field(r, "returned"), 300) << r;
        EXPECT_GE(field(r, "cached"), 100) << r;
        EXPECT_EQ(field(r, "grace_timeout"), 0) << r;
        const auto after = ask("usage", "USAGE");
        // The 64 forwarded mbufs now belong to the (live) peer, nothing else is held.
        EXPECT_EQ(field(after, "in_use"), 64) << after;
        EXPECT_EQ(field(after, "rules"), 0) << after;
        EXPECT_EQ(field(after, "memps"), 0) << after;
        EXPECT_EQ(field(ask("cache " + std::to_string(victim_lcore), "CACHE"), "len"), 0);
        const auto state = ask("state " + std::to_string(victim_slot), "STATE");
        EXPECT_EQ(field(state, "state"), 0) << state; // free
        // Reclaim is idempotent.
        EXPECT_EQ(field(ask("reclaim " + std::to_string(victim_slot), "RECLAIM"), "owned"), 0);
        // The peer gives back what it was handed: the pools are full again.
        const auto peer = ask("reclaim " + std::to_string(peer_slot), "RECLAIM");
        EXPECT_EQ(field(peer, "inbox"), 64) << peer;
        EXPECT_EQ(field(ask("usage", "USAGE"), "in_use"), 0);
        claim(peer_slot, getpid(), 12);
    }
}


// The primary's pools (fabric_actor.cc): L1 2047 mbufs per queue, L2 1023, watermarks 10%.
constexpr long long k_l1_reserve = 2047 * 10 / 100;
constexpr long long k_l2_mbufs = 1023;
constexpr long long k_l2_reserve = 1023 * 10 / 100;

TEST_F(FabricMpTest, LowQueuePoolFallsBackToTheL2PoolThenFailsCleanly) {
    constexpr unsigned slot = 3;
    constexpr unsigned lcore = 13;
    const auto baseline = ask("usage", "USAGE");
    ASSERT_EQ(field(baseline, "l2_size"), k_l2_mbufs) << baseline;
    ASSERT_EQ(field(baseline, "l2_in_use"), 0) << baseline;
    auto stack = spawn(eal_->secondary_args(lcore), {"tiered", std::to_string(slot)});
    claim(slot, stack->pid(), lcore);
    ASSERT_TRUE(stack->expect("READY")) << stack->transcript();
    auto step = [&](const std::string& command, const std::string& reply) {
        EXPECT_TRUE(stack->send(command));
        const auto line = stack->expect(reply);
        EXPECT_TRUE(line) << command << "\n" << stack->transcript();
        return line.value_or("");
    };

    // What the two-level choice costs on the fast path (printed, not asserted: a shared machine).
    std::printf("%s\n", step("bench 2000", "BENCH").c_str());

    // L1 well above its watermark: L1 only.
    auto r = step("alloc 10", "ALLOC");
    EXPECT_EQ(field(r, "l1"), 10) << r;
    EXPECT_EQ(field(r, "l2_allocs"), 0) << r;

    // Another holder drains L1 below the watermark: the same allocations come from L2, L1 keeps
    // its reserve (for the NIC's rx refills).
    r = step("hold l1 " + std::to_string(2047 - 10 - k_l1_reserve + 20), "HELD");
    r = step("free_estimate", "ESTIMATE");
    const long long l1_free = field(r, "l1").value_or(-1);
    ASSERT_LT(l1_free, k_l1_reserve) << r;
    r = step("alloc 10", "ALLOC");
    EXPECT_EQ(field(r, "l1"), 0) << r;
    EXPECT_EQ(field(r, "l2"), 10) << r;
    EXPECT_EQ(field(r, "l2_allocs"), 10) << r;
    EXPECT_EQ(field(step("free_estimate", "ESTIMATE"), "l1"), l1_free); // the reserve is untouched
    // Sheddable work (ARP) may use L2 while L2 is above its own watermark.
    r = step("shed 5", "SHED");
    EXPECT_EQ(field(r, "l2"), 5) << r;
    EXPECT_EQ(field(r, "l2_allocs"), 15) << r;

    // L2 below its watermark: sheddable work is shed (counted); frames that must go out still
    // take L2, down to empty.
    r = step("hold l2 " + std::to_string(k_l2_mbufs - 15 - k_l2_reserve + 10), "HELD");
    r = step("shed 5", "SHED");
    EXPECT_EQ(field(r, "l1"), 0) << r;
    EXPECT_EQ(field(r, "l2"), 0) << r;
    EXPECT_EQ(field(r, "shed"), 5) << r;
    EXPECT_EQ(field(r, "l2_shed"), 5) << r;
    r = step("alloc 10", "ALLOC");
    EXPECT_EQ(field(r, "l2"), 10) << r;
    EXPECT_EQ(field(r, "l2_allocs"), 25) << r;

    // Both exhausted: the allocation fails and is counted, nothing crashes, L1's reserve stays.
    r = step("hold l2 " + std::to_string(k_l2_mbufs), "HELD");
    r = step("alloc 7", "ALLOC");
    EXPECT_EQ(field(r, "l1"), 0) << r;
    EXPECT_EQ(field(r, "l2"), 0) << r;
    EXPECT_EQ(field(r, "failed"), 7) << r;
    EXPECT_EQ(field(r, "l2_alloc_failed"), 7) << r;
    EXPECT_EQ(field(step("free_estimate", "ESTIMATE"), "l1"), l1_free);
    auto held = ask("usage", "USAGE");
    EXPECT_EQ(field(held, "l2_in_use"), k_l2_mbufs) << held;
    // The manager sees the counters in the queue's shared statistics block.
    const auto stats = ask("stats " + std::to_string(slot), "STATS");
    EXPECT_EQ(field(stats, "l2_allocs"), 25) << stats;
    EXPECT_EQ(field(stats, "l2_alloc_failed"), 7) << stats;
    EXPECT_EQ(field(stats, "l2_shed"), 5) << stats;

    // The holders free: L1 is used again, L2 is not touched.
    r = step("free", "FREED");
    r = step("alloc 10", "ALLOC");
    EXPECT_EQ(field(r, "l1"), 10) << r;
    EXPECT_EQ(field(r, "l2"), 0) << r;
    EXPECT_EQ(field(r, "l2_allocs"), 25) << r;
    r = step("free", "FREED");
    ASSERT_TRUE(stack->send("quit"));
    EXPECT_TRUE(stack->wait_success());
    const auto after = ask("usage", "USAGE");
    EXPECT_EQ(field(after, "in_use"), 0) << after;
    EXPECT_EQ(field(after, "l2_in_use"), 0) << after;
    EXPECT_EQ(field(ask("reclaim " + std::to_string(slot), "RECLAIM"), "returned"), 0);
}

TEST_F(FabricMpTest, KilledStackHoldingL2MbufsIsReclaimedIdempotently) {
    constexpr unsigned victim_slot = 0;
    constexpr unsigned peer_slot = 2; // claimed, never polled: holds what the victim forwarded
    constexpr unsigned victim_lcore = 14;
    claim(peer_slot, getpid(), 12);
    for (int round = 0; round < 2; ++round) { // the second round reuses the reclaimed queue
        auto victim = spawn(eal_->secondary_args(victim_lcore), {"l2victim", std::to_string(victim_slot),
                                                                 std::to_string(peer_slot)});
        claim(victim_slot, victim->pid(), victim_lcore);
        const auto ready = victim->expect("READY");
        ASSERT_TRUE(ready) << victim->transcript();
        EXPECT_EQ(field(*ready, "l2_in_hand"), 200) << *ready;
        EXPECT_EQ(field(*ready, "l2_in_flight"), 64) << *ready;
        EXPECT_EQ(field(*ready, "in_flight"), 64) << *ready;
        EXPECT_EQ(field(*ready, "l2_freed"), 40) << *ready;
        const long long l2_cached = field(*ready, "l2_cached").value_or(0);
        EXPECT_GE(l2_cached, 40) << *ready;
        EXPECT_EQ(field(*ready, "l2_allocs"), 200 + 64 + 40) << *ready;
        const long long l1_held = field(*ready, "l1_held").value_or(0);
        const auto held = ask("usage", "USAGE");
        EXPECT_EQ(field(held, "l2_in_use"), 200 + 64) << held;
        EXPECT_EQ(field(ask("cache " + std::to_string(victim_lcore), "CACHE"), "l2_len"), l2_cached);

        ASSERT_TRUE(victim->kill(SIGKILL));
        ASSERT_TRUE(victim->wait());

        const auto r = ask("reclaim " + std::to_string(victim_slot), "RECLAIM");
        EXPECT_EQ(field(r, "ok"), 1) << r;
        EXPECT_EQ(field(r, "owned"), 1) << r;
        // L2: its 200 in hand and its lcore's cache; L1: everything it held.
        EXPECT_EQ(field(r, "l2"), 200 + l2_cached) << r;
        EXPECT_EQ(field(r, "returned"), 200 + l1_held) << r;
        const auto after = ask("usage", "USAGE");
        EXPECT_EQ(field(after, "l2_in_use"), 64) << after; // the peer's now, in its inbox
        EXPECT_EQ(field(after, "in_use"), 0) << after;
        EXPECT_EQ(field(ask("cache " + std::to_string(victim_lcore), "CACHE"), "len"), 0);
        // Twice: same result.
        const auto again = ask("reclaim " + std::to_string(victim_slot), "RECLAIM");
        EXPECT_EQ(field(again, "owned"), 0) << again;
        EXPECT_EQ(field(ask("usage", "USAGE"), "l2_in_use"), 64);
        // The peer goes too: what it was handed returns, the L2 pool is full again.
        const auto peer = ask("reclaim " + std::to_string(peer_slot), "RECLAIM");
        EXPECT_EQ(field(peer, "inbox"), 64) << peer;
        const auto empty = ask("usage", "USAGE");
        EXPECT_EQ(field(empty, "l2_in_use"), 0) << empty;
        EXPECT_EQ(field(empty, "in_use"), 0) << empty;
        claim(peer_slot, getpid(), 12);
    }
}

} // namespace
} // namespace gazelle::test
