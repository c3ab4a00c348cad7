// SPDX-License-Identifier: BSD-3-Clause
// user-veth across processes: a primary makes the registry, the pools and two user-veth ports on
// one bridge (A: 2 queues, B: 1 queue); two secondaries each own one queue of A, a third owns B's
// queue and sends thousands of UDP frames over many flows to A's MAC. Every frame must arrive
// exactly once, on the queue software RSS predicts, in order per flow, with the receiver's owner
// tag, and every pool must be full again at the end.
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "fabric/softrss.h"
#include "tests/support/test_support.h"

namespace gazelle::fabric {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::field;

constexpr unsigned k_flows = 96;
constexpr unsigned k_per_flow = 48; // 4608 frames

std::vector<std::string> actor_args(const std::vector<std::string>& eal, const std::vector<std::string>& mode) {
    std::vector<std::string> argv{test::bin_path("user_veth_actor")};
    argv.insert(argv.end(), eal.begin(), eal.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), mode.begin(), mode.end());
    return argv;
}

// Hardware queue of port A (2 queues, default key, RETA i % 2 as Registry::add_port leaves it)
// for flow f of the actor: 198.18.1.(f % 250):(10000 + f) -> 198.18.0.1:9000 UDP.
std::uint16_t predicted_queue(unsigned f) {
    auto port = std::make_unique<PortEntry>();
    port->nb_queues = 2;
    for (unsigned i = 0; i < k_reta_size; ++i) {
        port->reta[i].store(static_cast<std::uint16_t>(i % 2));
    }
    const RssKey key = RssKey::from_bytes(k_default_rss_key);
    const RssInput in = rss_input_l4(0xc6120100u + f % 250, 0xc6120001u, static_cast<std::uint16_t>(10000 + f), 9000);
    return reta_queue(*port, rss_hash(key, in));
}

TEST(UserVethMp, FramesArriveOnceOnTheirRssQueueInOrderAndPoolsRefill) {
    test::HugeMount mount;
    if (!mount.ok()) {
        GTEST_SKIP() << mount.error();
    }
    if (test::free_hugepages() < 64) {
        GTEST_SKIP() << "fewer than 64 free hugepages";
    }
    test::EalInstance eal(mount, "uvmp");

    Child primary(actor_args(eal.primary_args(0), {"primary"}));
    auto ready = primary.expect("READY", 30s);
    ASSERT_TRUE(ready) << primary.transcript();
    ASSERT_EQ(field(*ready, "slots"), 3);
    ASSERT_EQ(field(*ready, "a_first"), 0);
    ASSERT_EQ(field(*ready, "b_first"), 2);

    // Slots 0 and 1: port A's queues; slot 2: port B's. Distinct lcore ids in every process.
    Child rx0(actor_args(eal.secondary_args(1), {"rx", "0"}));
    Child rx1(actor_args(eal.secondary_args(2), {"rx", "1"}));
    Child tx(actor_args(eal.secondary_args(3), {"tx", "2", std::to_string(k_flows), std::to_string(k_per_flow)}));
    for (Child* c : {&rx0, &rx1, &tx}) {
        ASSERT_TRUE(c->expect("READY", 30s)) << c->transcript();
    }
    const struct {
        Child* child;
        unsigned slot;
        unsigned lcore;
    } owners[] = {{&rx0, 0, 1}, {&rx1, 1, 2}, {&tx, 2, 3}};
    for (const auto& o : owners) {
        ASSERT_TRUE(primary.send("claim " + std::to_string(o.slot) + " " + std::to_string(o.child->pid()) + " " +
                                 std::to_string(o.lcore)));
        auto claimed = primary.expect("CLAIMED", 10s);
        ASSERT_TRUE(claimed) << primary.transcript();
    }

    ASSERT_TRUE(tx.send("go"));
    auto sent = tx.expect("SENT", 30s);
    ASSERT_TRUE(sent) << tx.transcript();
    std::printf("%s\n", sent->c_str());
    EXPECT_EQ(field(*sent, "n"), k_flows * k_per_flow);
    EXPECT_EQ(field(*sent, "sent"), k_flows * k_per_flow);

    // flow -> (slot, count, out of order)
    std::map<unsigned, std::tuple<unsigned, long long, long long>> seen;
    long long total = 0;
    for (const auto& o : {owners[0], owners[1]}) {
        ASSERT_TRUE(o.child->send("report"));
        for (;;) {
            auto line = o.child->read_line(30s);
            ASSERT_TRUE(line) << o.child->transcript();
            if (line->rfind("FLOW", 0) == 0) {
                const auto id = static_cast<unsigned>(*field(*line, "id"));
                EXPECT_FALSE(seen.count(id)) << "flow " << id << " reached two queues";
                seen[id] = {o.slot, *field(*line, "n"), *field(*line, "ooo")};
                continue;
            }
            ASSERT_EQ(line->rfind("REPORT", 0), 0u) << *line;
            std::printf("%s\n", line->c_str());
            EXPECT_EQ(field(*line, "bad_tag"), 0) << *line;
            EXPECT_EQ(field(*line, "misrouted"), 0) << *line;
            EXPECT_EQ(field(*line, "foreign"), 0) << *line;
            EXPECT_GT(field(*line, "total").value_or(0), 0) << "both queues receive some flows: " << *line;
            total += field(*line, "total").value_or(0);
            break;
        }
    }
    EXPECT_EQ(total, k_flows * k_per_flow);
    ASSERT_EQ(seen.size(), k_flows);
    for (const auto& [id, st] : seen) {
        const auto& [slot, count, ooo] = st;
        EXPECT_EQ(slot, predicted_queue(id)) << "flow " << id;
        EXPECT_EQ(count, k_per_flow) << "flow " << id;
        EXPECT_EQ(ooo, 0) << "flow " << id;
    }

    // No drops anywhere, and every mbuf back in its pool (the receivers' lcore caches count).
    ASSERT_TRUE(primary.send("stats 2"));
    auto stats = primary.expect("STATS", 10s);
    ASSERT_TRUE(stats);
    EXPECT_EQ(field(*stats, "tx"), k_flows * k_per_flow) << *stats;
    EXPECT_EQ(field(*stats, "drop_owner_gone"), 0) << *stats;
    EXPECT_EQ(field(*stats, "drop_tx_full"), 0) << *stats;
    EXPECT_EQ(field(*stats, "drop_unknown_mac"), 0) << *stats;
    ASSERT_TRUE(primary.send("usage"));
    auto usage = primary.expect("USAGE", 10s);
    ASSERT_TRUE(usage);
    EXPECT_EQ(field(*usage, "total"), 0) << *usage;

    for (Child* c : {&rx0, &rx1, &tx}) {
        ASSERT_TRUE(c->send("quit"));
        EXPECT_TRUE(c->wait_success(20s)) << c->transcript();
    }
    ASSERT_TRUE(primary.send("quit"));
    EXPECT_TRUE(primary.expect("BYE", 10s));
    EXPECT_TRUE(primary.wait_success(20s)) << primary.transcript();
}

} // namespace
} // namespace gazelle::fabric
