// SPDX-License-Identifier: BSD-3-Clause
// Two server processes on one user-veth port, clients on a second port behind the user-vbridge.
//
// Port A (veth_a, 198.18.0.1) has 4 queues: server S1 owns slot 0, server S2 slot 1, and a third
// process with two stacks (no server) owns slots 2 and 3, so RSS puts most connections on a queue
// whose stack does not serve them and the fabric must forward. Port B (veth_b, 198.18.1.2) has 2
// queues (slots 4, 5), both stacks of the client process.
//   7000: both servers listen (a shared listener: new connections are spread between them)
//   7001: S1 only, 7002: S2 only (3 in 4 connections land on another queue first)
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <thread>

#include "tests/stack/stack_test_support.h"

namespace gazelle::test {
namespace {

class SharedListenerTest : public StackFabricTest {
protected:
    void SetUp() override {
        StackFabricTest::SetUp();
        if (HasFatalFailure()) {
            return;
        }
        start_primary({"veth", "4", "2"});
        s1_ = start_app({{0, 10}});
        s2_ = start_app({{1, 11}});
        bystander_ = start_app({{2, 12}, {3, 13}});
        client_ = start_app({{4, 20}, {5, 21}});
        ASSERT_TRUE(s1_ && s2_ && bystander_ && client_);
        for (const char* command : {"echo 7000", "echo 7001"}) {
            ASSERT_EQ(field(ask(*s1_, command, "SERVING"), "ok"), 1);
        }
        for (const char* command : {"echo 7000", "echo 7002"}) {
            ASSERT_EQ(field(ask(*s2_, command, "SERVING"), "ok"), 1);
        }
    }

    long long stat(unsigned slot, const std::string& key) {
        return field(ask_primary("stats " + std::to_string(slot), "STATS"), key).value_or(-1);
    }

    std::unique_ptr<Child> s1_;
    std::unique_ptr<Child> s2_;
    std::unique_ptr<Child> bystander_;
    std::unique_ptr<Child> client_;
};

void expect_clean(const std::string& load, long long connections) {
    EXPECT_EQ(field(load, "done"), connections) << load;
    EXPECT_EQ(field(load, "failed"), 0) << load;
    EXPECT_EQ(field(load, "resets"), 0) << load;
    EXPECT_EQ(field(load, "mismatches"), 0) << load;
}

TEST_F(SharedListenerTest, HundredsOfConnectionsPerServerArriveIntactAcrossQueues) {
    constexpr int per_port = 250;
    // Three loads at once, 20 kB each way per connection, checked byte by byte by the client.
    for (const char* port : {"7000", "7001", "7002"}) {
        ASSERT_TRUE(client_->send(std::string("load 198.18.0.1 ") + port + " " + std::to_string(per_port) + " 16 20000 50"));
    }
    for (int i = 0; i < 3; ++i) {
        const auto load = client_->expect("LOAD", 55s);
        ASSERT_TRUE(load) << client_->transcript();
        expect_clean(*load, per_port);
    }
    const auto a = ask(*s1_, "servers", "SERVERS");
    const auto b = ask(*s2_, "servers", "SERVERS");
    // Each server got its own port's connections plus a share of the common one.
    EXPECT_GT(field(a, "accepted"), per_port) << a;
    EXPECT_GT(field(b, "accepted"), per_port) << b;
    EXPECT_EQ(field(a, "accepted").value_or(0) + field(b, "accepted").value_or(0), 3 * per_port);
    EXPECT_EQ(field(a, "errors"), 0) << a;
    EXPECT_EQ(field(b, "errors"), 0) << b;
    // Most connections were forwarded by a stack that does not serve them...
    long long forwarded = 0;
    for (unsigned slot = 0; slot < 4; ++slot) {
        forwarded += stat(slot, "forwarded_out");
    }
    EXPECT_GT(stat(2, "forwarded_out"), 0);
    EXPECT_GT(stat(3, "forwarded_out"), 0);
    EXPECT_GT(forwarded, 0);
    // ...while the clients' local ports were chosen so that replies land on their own queue.
    EXPECT_EQ(stat(4, "forwarded_out"), 0);
    EXPECT_EQ(stat(5, "forwarded_out"), 0);
    std::printf("forwarded by port A stacks: %lld packets\n", forwarded);
}

TEST_F(SharedListenerTest, KilledServerIsReclaimedAndTheOtherKeepsServing) {
    // A long load on S1's own port (must see no failure at all) and one on the shared port.
    constexpr int total = 1500;
    ASSERT_TRUE(client_->send("load 198.18.0.1 7001 " + std::to_string(total) + " 8 20000 50"));
    ASSERT_TRUE(client_->send("load 198.18.0.1 7000 " + std::to_string(total) + " 8 20000 50"));
    // Mid-traffic: S2 has been serving the shared port for a while.
    for (int i = 0; i < 200 && field(ask(*s2_, "servers", "SERVERS"), "accepted").value_or(0) < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(s2_->kill(SIGKILL));
    ASSERT_TRUE(s2_->wait());
    const auto r = ask_primary("reclaim 1", "RECLAIM");
    EXPECT_EQ(field(r, "owned"), 1) << r;
    EXPECT_EQ(field(r, "listeners"), 2) << r; // 7000 and 7002
    EXPECT_GT(field(r, "rules"), 0) << r;     // the connections it served when it died
    EXPECT_GE(field(r, "memps"), 1) << r;      // its lwIP arena
    EXPECT_EQ(field(r, "grace_timeout"), 0) << r;
    std::printf("%s\n", r.c_str());

    std::string own;
    std::string shared;
    for (int i = 0; i < 2; ++i) {
        const auto load = client_->expect("LOAD", 55s);
        ASSERT_TRUE(load) << client_->transcript();
        (own.empty() ? own : shared) = *load; // 7001 was sent first, but either may finish first
    }
    // Tell them apart: the S1-only load must be perfect; the shared one may lose only the
    // connections that S2 held when it died (at most the 8 in flight).
    if (field(own, "failed").value_or(0) > field(shared, "failed").value_or(0)) {
        std::swap(own, shared);
    }
    expect_clean(own, total);
    EXPECT_LE(field(shared, "failed"), 8) << shared;
    EXPECT_EQ(field(shared, "done").value_or(0) + field(shared, "failed").value_or(0), total) << shared;
    EXPECT_EQ(field(shared, "mismatches"), 0) << shared;
    std::printf("S1-only: %s\nshared:  %s\n", own.c_str(), shared.c_str());
    const auto a = ask(*s1_, "servers", "SERVERS");
    EXPECT_EQ(field(a, "errors"), 0) << a;

    // Everything the dead server held is back; once the others leave, nothing is left at all.
    stop_app(*client_);
    stop_app(*s1_);
    stop_app(*bystander_);
    for (unsigned slot : {0u, 2u, 3u, 4u, 5u}) {
        EXPECT_EQ(field(ask_primary("reclaim " + std::to_string(slot), "RECLAIM"), "ok"), 1);
    }
    const auto usage = ask_primary("usage", "USAGE");
    EXPECT_EQ(field(usage, "in_use"), 0) << usage;
    EXPECT_EQ(field(usage, "rules"), 0) << usage;
    EXPECT_EQ(field(usage, "memps"), 0) << usage;
}

} // namespace
} // namespace gazelle::test
