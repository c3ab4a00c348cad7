// SPDX-License-Identifier: BSD-3-Clause
// Stacks on the fabric with real processes: a test primary (stack_primary_actor) owns two
// user-veth ports on one bridge, app processes (stack_app_actor) run stacks on claimed queues.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "tests/stack/stack_test_support.h"

namespace gazelle::test {
namespace {

class StackMpTest : public StackFabricTest {};

// Port A = veth_a 198.18.0.1 (slots 0, 1), port B = veth_b 198.18.1.2 (slot 2).
TEST_F(StackMpTest, TwoStacksInOneProcessTalkThroughTheFabric) {
    start_primary({"veth", "2", "1"});
    auto app = start_app({{0, 10}, {1, 11}});
    ASSERT_TRUE(app);
    // Server on stack 0 only; the client on stack 1 connects to its own port's address: every
    // packet crosses between the two lwIP instances through the fabric (loopback to our own MAC,
    // forwarding step, inboxes).
    ask(*app, "echo 7000 0", "SERVING");
    const auto load = ask(*app, "load 198.18.0.1 7000 40 8 20000 30 1", "LOAD", 40s);
    std::printf("%s\n", load.c_str());
    EXPECT_EQ(field(load, "done"), 40) << load;
    EXPECT_EQ(field(load, "failed"), 0) << load;
    EXPECT_EQ(field(load, "mismatches"), 0) << load;
    const auto s0 = ask_primary("stats 0", "STATS");
    const auto s1 = ask_primary("stats 1", "STATS");
    EXPECT_GT(field(s0, "forwarded_in").value_or(0) + field(s1, "forwarded_in").value_or(0), 0) << s0 << "\n" << s1;
    stop_app(*app);
}

TEST_F(StackMpTest, EchoAcrossProcesses) {
    start_primary({"veth", "2", "1"});
    auto server = start_app({{0, 10}, {1, 11}});
    auto client = start_app({{2, 20}});
    ASSERT_TRUE(server && client);
    ask(*server, "echo 7000 0", "SERVING"); // stack 0 only: connections RSS puts on queue 1 are forwarded
    const auto load = ask(*client, "load 198.18.0.1 7000 100 16 50000", "LOAD", 45s);
    std::printf("%s\n%s\n", load.c_str(), ask_primary("stats 1", "STATS").c_str());
    EXPECT_EQ(field(load, "done"), 100) << load;
    EXPECT_EQ(field(load, "failed"), 0) << load;
    EXPECT_EQ(field(load, "mismatches"), 0) << load;
    const auto s1 = ask_primary("stats 1", "STATS");
    EXPECT_GT(field(s1, "forwarded_out"), 0) << s1;
    stop_app(*client);
    stop_app(*server);
}

TEST_F(StackMpTest, IdleStacksUseAlmostNoCpu) {
    start_primary({"veth", "2", "1"});
    auto server = start_app({{0, 10}, {1, 11}});
    auto client = start_app({{2, 20}});
    ASSERT_TRUE(server && client);
    ask(*server, "echo 7000", "SERVING");
    const auto load = ask(*client, "load 198.18.0.1 7000 50 8 10000", "LOAD", 30s);
    EXPECT_EQ(field(load, "done"), 50) << load;
    std::this_thread::sleep_for(std::chrono::milliseconds(500)); // past the idle spin and TIME_WAIT timers' start
    const auto server0 = sched_snapshot(server->pid());
    const auto client0 = sched_snapshot(client->pid());
    constexpr double seconds = 3;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const IdleUse s = idle_use(server0, sched_snapshot(server->pid()), seconds);
    const IdleUse c = idle_use(client0, sched_snapshot(client->pid()), seconds);
    std::printf("idle over %.0f s: server (2 stacks) %.3f%% CPU, client (1 stack) %.3f%% CPU; stack wake-ups %.1f/s and "
                "%.1f/s at most, %.0f and %.0f us of CPU each\n  server: %s\n  client: %s\n",
                seconds, s.cpu_pct, c.cpu_pct, s.stack_wakeups_max, c.stack_wakeups_max, s.stack_wakeup_cpu_us,
                c.stack_wakeup_cpu_us, s.text.c_str(), c.text.c_str());
    EXPECT_EQ(s.stack_threads, 2u);
    EXPECT_EQ(c.stack_threads, 1u);
    // On doorbells a stack wakes for its lwIP timers (every 250 ms while it has TCP connections,
    // here TIME_WAIT; every 1 s for ARP and reassembly) and at most every max_sleep_us (100 ms).
    EXPECT_LE(s.stack_wakeups_max, 16.0);
    EXPECT_LE(c.stack_wakeups_max, 16.0);
    EXPECT_LT(s.cpu_pct, 2.0);
    EXPECT_LT(c.cpu_pct, 2.0);
    // And they still answer at once after the idle period.
    const auto rtt = ask(*client, "rtt 198.18.0.1 7000 200 64", "RTT", 30s);
    EXPECT_EQ(field(rtt, "ok"), 1) << rtt;
    std::printf("%s\n", rtt.c_str());
    stop_app(*client);
    stop_app(*server);
}

TEST_F(StackMpTest, RequestResponseLatencyAndUdp) {
    start_primary({"veth", "2", "1"});
    auto server = start_app({{0, 10}, {1, 11}});
    auto client = start_app({{2, 20}});
    ASSERT_TRUE(server && client);
    ask(*server, "echo 7000", "SERVING");
    ask(*server, "udpecho 7100", "SERVING");
    const auto rtt = ask(*client, "rtt 198.18.0.1 7000 2000 64", "RTT", 40s);
    EXPECT_EQ(field(rtt, "ok"), 1) << rtt;
    EXPECT_EQ(field(rtt, "rounds"), 2000) << rtt;
    std::printf("TCP 64 B request/response: %s\n", rtt.c_str());
    const auto big = ask(*client, "rtt 198.18.0.1 7000 200 60000", "RTT", 40s);
    EXPECT_EQ(field(big, "ok"), 1) << big;
    std::printf("TCP 60 kB request/response: %s\n", big.c_str());
    const auto udp = ask(*client, "udprtt 198.18.0.1 7100 500", "UDPRTT", 40s);
    EXPECT_EQ(field(udp, "ok"), 500) << udp;
    std::printf("UDP request/response: %s\n", udp.c_str());
    stop_app(*client);
    stop_app(*server);
}

// The primary holds every queue pool (L1) of both ends nearly empty, below the low watermark:
// the stacks' transmissions come from the fabric's L2 pool and TCP keeps working; once the
// holder lets go, the stacks use their own pools again.
TEST_F(StackMpTest, TcpKeepsWorkingWhileTheQueuePoolsAreHeldNearlyEmpty) {
    start_primary({"veth", "2", "1"});
    for (const char* slot : {"0", "1", "2"}) {
        const auto held = ask_primary(std::string("hold ") + slot + " 16", "HELD");
        ASSERT_LE(field(held, "free"), 16) << held;
        ASSERT_GT(field(held, "n"), 4000) << held;
    }
    auto server = start_app({{0, 10}, {1, 11}});
    auto client = start_app({{2, 20}});
    ASSERT_TRUE(server && client);
    ask(*server, "echo 7000", "SERVING");
    const auto load = ask(*client, "load 198.18.0.1 7000 40 8 20000", "LOAD", 45s);
    std::printf("L1 held: %s\n", load.c_str());
    EXPECT_EQ(field(load, "done"), 40) << load;
    EXPECT_EQ(field(load, "failed"), 0) << load;
    EXPECT_EQ(field(load, "mismatches"), 0) << load;
    const auto client_stats = ask_primary("stats 2", "STATS");
    const long long server_l2 = field(ask_primary("stats 0", "STATS"), "l2_allocs").value_or(0) +
                                field(ask_primary("stats 1", "STATS"), "l2_allocs").value_or(0);
    const long long client_l2 = field(client_stats, "l2_allocs").value_or(0);
    std::printf("l2_allocs: client %lld, server %lld\n", client_l2, server_l2);
    EXPECT_GT(client_l2, 40 * 20000 / 1460) << client_stats; // at least the data segments
    EXPECT_GT(server_l2, 40 * 20000 / 1460);
    EXPECT_EQ(field(client_stats, "l2_alloc_failed"), 0) << client_stats;

    // The holder frees: the same load runs on the queues' own pools again.
    ask_primary("release", "RELEASED");
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // the last closes' frames
    const auto before = field(ask_primary("stats 2", "STATS"), "l2_allocs");
    const auto again = ask(*client, "load 198.18.0.1 7000 40 8 20000", "LOAD", 45s);
    EXPECT_EQ(field(again, "done"), 40) << again;
    EXPECT_EQ(field(again, "failed"), 0) << again;
    const auto after = ask_primary("stats 2", "STATS");
    EXPECT_EQ(field(after, "l2_allocs"), before) << after;
    stop_app(*client);
    stop_app(*server);
    for (const char* slot : {"0", "1", "2"}) { // what the manager does after the exits (frames still in inboxes)
        EXPECT_EQ(field(ask_primary(std::string("reclaim ") + slot, "RECLAIM"), "ok"), 1);
    }
    const auto usage = ask_primary("usage", "USAGE");
    EXPECT_EQ(field(usage, "in_use"), 0) << usage;
    EXPECT_EQ(field(usage, "l2_in_use"), 0) << usage;
}

} // namespace
} // namespace gazelle::test
