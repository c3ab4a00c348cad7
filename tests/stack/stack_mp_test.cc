// SPDX-License-Identifier: BSD-3-Clause
// Stacks on the fabric with real processes: a test primary (stack_primary_actor) owns two
// user-veth ports on one bridge, app processes (stack_app_actor) run stacks on claimed queues.
#include <gtest/gtest.h>

#include <memory>
#include <string>
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

} // namespace
} // namespace gazelle::test
