// SPDX-License-Identifier: BSD-3-Clause
// Single-process tests of the flow table: one in-process DPDK primary (EAL can be initialised once
// per process, so every case shares the environment below) on a private hugetlbfs mount.
#include "fabric/flow_table.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include "fabric/eal.h"
#include "tests/support/test_support.h"

namespace gazelle::fabric {
namespace {

using test::EalInstance;
using test::HugeMount;

class EalEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        mount_ = std::make_unique<HugeMount>();
        ASSERT_TRUE(mount_->ok()) << mount_->error();
        eal_ = std::make_unique<EalInstance>(*mount_, "flowut");
        auto r = eal_init("flow_table_test", eal_->primary_args(1));
        ASSERT_TRUE(r.ok()) << r.error().message;
        ready_ = true;
    }
    void TearDown() override {
        if (ready_) {
            (void)rte_eal_cleanup();
        }
        eal_.reset();
        mount_.reset();
    }
    static bool ready() { return ready_; }

private:
    std::unique_ptr<HugeMount> mount_;
    std::unique_ptr<EalInstance> eal_;
    static inline bool ready_ = false;
};

[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);

constexpr std::uint32_t k_local_ip = 0x0a000001; // 10.0.0.1
constexpr QueueSlot k_writer = 1;

FlowKey conn(std::uint32_t id, std::uint8_t proto = IPPROTO_TCP) {
    return FlowKey::connection(proto, htonl(k_local_ip), htons(80), htonl(0x0a010000u + id),
                               htons(static_cast<std::uint16_t>(1024u + id % 60000u)));
}

// A table of its own per test, destroyed at the end (the process is its creator).
class Table {
public:
    explicit Table(FlowTableConfig config) : name_(config.name) {
        auto r = FlowTable::create(config);
        if (r.ok()) {
            table_ = *r;
        } else {
            error_ = r.error().message;
        }
    }
    ~Table() {
        if (table_.valid()) {
            FlowTable::destroy(name_);
        }
    }
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;
    FlowTable& operator*() { return table_; }
    FlowTable* operator->() { return &table_; }
    const std::string& error() const { return error_; }

private:
    std::string name_;
    std::string error_;
    FlowTable table_;
};

FlowTableConfig config(const std::string& name, std::uint32_t rules = 1024, std::uint32_t listeners = 64,
                       std::uint32_t deferred = 1024) {
    FlowTableConfig c;
    c.name = name;
    c.rules = rules;
    c.listeners = listeners;
    c.deferred_per_writer = deferred;
    return c;
}

class FlowTableTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!EalEnvironment::ready()) {
            GTEST_SKIP() << "EAL did not start";
        }
    }
};

#define MAKE_TABLE(var, ...)                                                                                 \
    Table var(__VA_ARGS__);                                                                                  \
    ASSERT_TRUE(var->valid()) << var.error()

TEST(FlowKeyTest, LayoutAndBuilders) {
    const FlowKey k = FlowKey::connection(IPPROTO_UDP, htonl(0x01020304), htons(53), htonl(0x05060708), htons(4000));
    unsigned char raw[sizeof k];
    std::memcpy(raw, &k, sizeof k);
    // Network byte order in memory, exactly as in the packet.
    EXPECT_EQ(raw[0], 1);
    EXPECT_EQ(raw[3], 4);
    EXPECT_EQ(raw[4], 5);
    EXPECT_EQ(raw[8], 0);
    EXPECT_EQ(raw[9], 53);
    EXPECT_EQ(raw[12], IPPROTO_UDP);
    EXPECT_EQ(raw[13], static_cast<unsigned char>(FlowKeyKind::connection));
    EXPECT_EQ(raw[14], 0);
    EXPECT_EQ(raw[15], 0);

    const FlowKey l = k.listener_of();
    EXPECT_TRUE(l.is_listener());
    EXPECT_EQ(l.local_ip, k.local_ip);
    EXPECT_EQ(l.local_port, k.local_port);
    EXPECT_EQ(l.remote_ip, 0u);
    EXPECT_EQ(l.remote_port, 0u);
    EXPECT_EQ(l, FlowKey::listener(IPPROTO_UDP, htonl(0x01020304), htons(53)));
    EXPECT_EQ(k.wildcard_listener_of().local_ip, 0u);
    // A listener key never equals a connection key with zero remote fields.
    EXPECT_NE(FlowKey::connection(IPPROTO_TCP, 1, 2, 0, 0), FlowKey::listener(IPPROTO_TCP, 1, 2));
}

TEST(FlowKeyTest, HashIsCrcOverSixteenBytes) {
    const FlowKey k = conn(7);
    std::uint64_t bytes[2];
    std::memcpy(bytes, &k, sizeof bytes);
    EXPECT_EQ(flow_hash(k), rte_hash_crc(bytes, 16, 0));
    // Distinct, well-spread hashes (a broken hash once made every key collide).
    std::set<std::uint32_t> distinct;
    std::set<std::uint32_t> low_bits;
    for (std::uint32_t i = 0; i < 4096; ++i) {
        distinct.insert(flow_hash(conn(i)));
        low_bits.insert(flow_hash(conn(i)) & 1023);
    }
    EXPECT_EQ(distinct.size(), 4096u);
    EXPECT_GT(low_bits.size(), 900u);
    EXPECT_EQ(flow_hash(k), flow_hash(conn(7)));
    EXPECT_NE(flow_hash(conn(7)), flow_hash(conn(8)));
    EXPECT_NE(flow_hash(conn(7, IPPROTO_TCP)), flow_hash(conn(7, IPPROTO_UDP)));
    EXPECT_NE(flow_hash(FlowKey::connection(IPPROTO_TCP, 1, 2, 0, 0)), flow_hash(FlowKey::listener(IPPROTO_TCP, 1, 2)));

    std::vector<FlowKey> keys;
    for (std::uint32_t i = 0; i < 100; ++i) {
        keys.push_back(conn(i));
    }
    std::vector<std::uint32_t> hashes(90);
    EXPECT_EQ(flow_hash_burst(keys, hashes), 90u);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
        EXPECT_EQ(hashes[i], flow_hash(keys[i]));
    }
}

TEST_F(FlowTableTest, RejectsBadConfigAndDuplicates) {
    EXPECT_EQ(FlowTable::create(config("")).error().code, EINVAL);
    EXPECT_EQ(FlowTable::create(config("a_name_that_is_much_too_long")).error().code, EINVAL);
    EXPECT_EQ(FlowTable::create(config("ut_bad", 4)).error().code, EINVAL);
    EXPECT_EQ(FlowTable::create(config("ut_bad", 1024, 0)).error().code, EINVAL);
    EXPECT_EQ(FlowTable::create(config("ut_bad", 1024, 70000)).error().code, EINVAL);
    EXPECT_EQ(FlowTable::create(config("ut_bad", 1024, 64, 1000)).error().code, EINVAL);
    EXPECT_EQ(FlowTable::attach("ut_absent").error().code, ENOENT);

    MAKE_TABLE(t, config("ut_dup"));
    auto again = FlowTable::create(config("ut_dup"));
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, EEXIST);
    EXPECT_EQ(t->capacity(), 1024u);
    EXPECT_EQ(t->listener_capacity(), 64u);
    EXPECT_EQ(t->deferred_capacity(), 1024u);
}

TEST_F(FlowTableTest, AddLookupRemove) {
    MAKE_TABLE(t, config("ut_basic"));
    const FlowKey k = conn(1);
    EXPECT_EQ(t->lookup(k, flow_hash(k)).kind, FlowHitKind::none);
    ASSERT_EQ(t->add_connection(k, flow_hash(k), 3, 77), 0);
    const FlowHit hit = t->lookup(k, flow_hash(k));
    EXPECT_EQ(hit.kind, FlowHitKind::connection);
    EXPECT_EQ(hit.slot, 3);
    EXPECT_EQ(hit.epoch, 77u);
    EXPECT_EQ(t->count(), 1u);

    // An attached view sees the same table.
    auto view = FlowTable::attach("ut_basic");
    ASSERT_TRUE(view.ok()) << view.error().message;
    EXPECT_EQ(view->lookup(k, flow_hash(k)), hit);

    EXPECT_EQ(t->remove_connection(k, flow_hash(k), 3), 0);
    EXPECT_EQ(t->lookup(k, flow_hash(k)).kind, FlowHitKind::none);
    EXPECT_EQ(t->count(), 0u);
    EXPECT_EQ(t->deferred_pending(3), 1u);
    EXPECT_EQ(t->reclaim_deferred(3), 1u); // no reader online: the grace period is already over
    EXPECT_EQ(t->deferred_pending(3), 0u);

    const FlowTableStats s = t->stats();
    EXPECT_EQ(s.adds, 1u);
    EXPECT_EQ(s.deletes, 1u);
    EXPECT_EQ(s.freed, 1u);
    EXPECT_EQ(s.keys, 0u);
}

TEST_F(FlowTableTest, ExistsSemantics) {
    MAKE_TABLE(t, config("ut_exists"));
    const FlowKey k = conn(5);
    const std::uint32_t h = flow_hash(k);
    ASSERT_EQ(t->add_connection(k, h, 2, 10), 0);
    EXPECT_EQ(t->add_connection(k, h, 2, 10), 0) << "same owner: idempotent";
    EXPECT_EQ(t->add_connection(k, h, 4, 10), -EEXIST) << "another slot";
    EXPECT_EQ(t->add_connection(k, h, 2, 11), -EEXIST) << "another epoch of the same slot is another owner";
    EXPECT_EQ(t->lookup(k, h).epoch, 10u) << "failed adds change nothing";
    EXPECT_EQ(t->remove_connection(k, h, 4), -EPERM);
    EXPECT_EQ(t->remove_connection(k, h, k_manager_slot), 0) << "the manager may delete any rule";
    EXPECT_EQ(t->remove_connection(k, h, 2), -ENOENT);

    const FlowKey l = FlowKey::listener(IPPROTO_TCP, htonl(k_local_ip), htons(80));
    EXPECT_EQ(t->add_connection(l, flow_hash(l), 2, 1), -EINVAL);
    EXPECT_EQ(t->remove_connection(l, flow_hash(l), 2), -EINVAL);
    EXPECT_EQ(t->add_connection(k, h, k_manager_slot, 1), -EINVAL);
    EXPECT_EQ(t->remove_connection(k, h, k_manager_slot + 1), -EINVAL);

    const FlowTableStats s = t->stats();
    EXPECT_EQ(s.adds, 1u);
    EXPECT_EQ(s.add_existing, 1u);
    EXPECT_EQ(s.add_failed_exists, 2u);
}

TEST_F(FlowTableTest, FullTableFailsWithEnospcAndCounts) {
    MAKE_TABLE(t, config("ut_full", 64));
    std::vector<std::uint32_t> added;
    int last = 0;
    std::uint32_t id = 0;
    for (; id < 1000 && last == 0; ++id) {
        last = t->add_connection(conn(id), flow_hash(conn(id)), k_writer, 1);
        if (last == 0) {
            added.push_back(id);
        }
    }
    ASSERT_EQ(last, -ENOSPC);
    EXPECT_GE(added.size(), 32u) << "a 64-entry table holds at least half its entries";
    EXPECT_LE(added.size(), 64u);
    EXPECT_EQ(t->count(), added.size());
    // More failures are counted, and never fatal.
    EXPECT_EQ(t->add_connection(conn(id), flow_hash(conn(id)), k_writer, 1), -ENOSPC);
    EXPECT_EQ(t->stats().add_failed_full, 2u);
    for (std::uint32_t a : added) {
        EXPECT_EQ(t->lookup(conn(a), flow_hash(conn(a))).kind, FlowHitKind::connection);
    }
    // Deleting every rule makes room again.
    for (std::uint32_t a : added) {
        ASSERT_EQ(t->remove_connection(conn(a), flow_hash(conn(a)), k_writer), 0);
    }
    (void)t->reclaim_deferred(k_writer);
    EXPECT_EQ(t->add_connection(conn(id), flow_hash(conn(id)), k_writer, 1), 0);
}

// With RW_CONCURRENCY_LF deleted key slots are only reused once freed: without the deferred frees
// a 1024-entry table fails after ~9025 add/delete cycles (measured in the probes).
TEST_F(FlowTableTest, AddDeleteCyclesFarBeyondCapacity) {
    MAKE_TABLE(t, config("ut_cycles", 1024, 64, 256));
    constexpr std::uint32_t k_resident = 500; // keep the table half full meanwhile
    for (std::uint32_t i = 0; i < k_resident; ++i) {
        ASSERT_EQ(t->add_connection(conn(1000000 + i), flow_hash(conn(1000000 + i)), k_writer, 1), 0);
    }
    constexpr std::uint32_t k_cycles = 60000;
    for (std::uint32_t i = 0; i < k_cycles; ++i) {
        const FlowKey k = conn(i);
        ASSERT_EQ(t->add_connection(k, flow_hash(k), k_writer, i), 0) << "cycle " << i;
        ASSERT_EQ(t->remove_connection(k, flow_hash(k), k_writer), 0) << "cycle " << i;
        if (i % 64 == 0) {
            (void)t->reclaim_deferred(k_writer);
        }
    }
    (void)t->reclaim_deferred(k_writer);
    EXPECT_EQ(t->deferred_pending(k_writer), 0u);
    EXPECT_EQ(t->count(), k_resident);
    const FlowTableStats s = t->stats();
    EXPECT_EQ(s.deletes, k_cycles);
    EXPECT_EQ(s.freed, k_cycles);
    EXPECT_EQ(s.add_failed_full, 0u);
}

// The other half of the proof: without the frees the same table runs out of key slots (entries +
// the slots rte_hash adds for 127 other lcores' caches, 1024 + 127 * 63 + 1 = 9026) although it
// never holds more than one rule.
TEST_F(FlowTableTest, DeletedSlotsAreNotReusedUntilFreed) {
    MAKE_TABLE(t, config("ut_leak", 1024, 64, 16384));
    std::uint32_t i = 0;
    int rc = 0;
    for (; i < 12000; ++i) {
        rc = t->add_connection(conn(i), flow_hash(conn(i)), k_writer, 1);
        if (rc != 0) {
            break;
        }
        ASSERT_EQ(t->remove_connection(conn(i), flow_hash(conn(i)), k_writer), 0);
    }
    EXPECT_EQ(rc, -ENOSPC);
    std::printf("without frees, add failed after %u add/delete cycles\n", i);
    EXPECT_GE(i, 9000u);
    EXPECT_LE(i, 9026u);
    EXPECT_EQ(t->count(), 0u);
    EXPECT_EQ(t->reclaim_deferred(k_writer), i);
    EXPECT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), k_writer, 1), 0);
}

TEST_F(FlowTableTest, LookupBurstChunksAndMixes) {
    MAKE_TABLE(t, config("ut_burst"));
    std::vector<FlowKey> keys;
    for (std::uint32_t i = 0; i < 200; ++i) {
        keys.push_back(conn(i));
        if (i % 2 == 0) {
            ASSERT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), static_cast<QueueSlot>(i % 7), i), 0);
        }
    }
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, htonl(k_local_ip), htons(80), 6, 1), 0);
    keys.push_back(FlowKey::listener(IPPROTO_TCP, htonl(k_local_ip), htons(80)));
    std::vector<std::uint32_t> hashes(keys.size());
    flow_hash_burst(keys, hashes);
    std::vector<FlowHit> out(keys.size());
    EXPECT_EQ(t->lookup_burst(keys, hashes, out), 101u);
    for (std::uint32_t i = 0; i < 200; ++i) {
        if (i % 2 == 0) {
            EXPECT_EQ(out[i].kind, FlowHitKind::connection) << i;
            EXPECT_EQ(out[i].slot, i % 7) << i;
            EXPECT_EQ(out[i].epoch, i) << i;
        } else {
            EXPECT_EQ(out[i].kind, FlowHitKind::none) << i;
        }
    }
    EXPECT_EQ(out[200].kind, FlowHitKind::listener);
    EXPECT_EQ(out[200].mask, std::uint64_t{1} << 6);
    // Only min(keys, hashes, out) entries are looked up.
    std::vector<FlowHit> small(3);
    EXPECT_EQ(t->lookup_burst(keys, hashes, small), 2u);
}

TEST(PickListener, LocalityAndDeterminism) {
    EXPECT_EQ(FlowTable::pick_listener(0, 3, 12345), k_no_queue);
    const std::uint64_t mask = (1ull << 2) | (1ull << 5) | (1ull << 9) | (1ull << 63);
    EXPECT_EQ(FlowTable::pick_listener(mask, 5, 1), 5) << "local member keeps the packet";
    EXPECT_EQ(FlowTable::pick_listener(mask, 63, 0xffffffffu), 63);
    std::map<QueueSlot, unsigned> spread;
    for (std::uint32_t i = 0; i < 40000; ++i) {
        const std::uint32_t h = flow_hash(conn(i));
        const QueueSlot q = FlowTable::pick_listener(mask, 7, h);
        ASSERT_TRUE((mask >> q) & 1u) << q;
        ASSERT_EQ(FlowTable::pick_listener(mask, 7, h), q) << "same flow, same queue (SYN retransmits)";
        ASSERT_EQ(FlowTable::pick_listener(mask, k_no_queue, h), q) << "independent of which non-member asks";
        ++spread[q];
    }
    ASSERT_EQ(spread.size(), 4u);
    for (const auto& [q, n] : spread) {
        EXPECT_GT(n, 40000u / 4 * 8 / 10) << "queue " << q << " gets its share";
    }
    EXPECT_EQ(FlowTable::pick_listener(1ull << 17, 3, 99), 17);
}

TEST_F(FlowTableTest, ListenerSetsJoinLeave) {
    MAKE_TABLE(t, config("ut_listen"));
    const std::uint32_t ip = htonl(k_local_ip);
    const std::uint16_t port = htons(8080);
    const FlowKey l = FlowKey::listener(IPPROTO_TCP, ip, port);
    const std::uint32_t h = flow_hash(l);

    ASSERT_EQ(t->add_listener(IPPROTO_TCP, ip, port, 1, 5), 0);
    EXPECT_EQ(t->lookup(l, h).kind, FlowHitKind::listener);
    EXPECT_EQ(t->lookup(l, h).mask, 0b10u);
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, ip, port, 2, 6), 0);
    EXPECT_EQ(t->lookup(l, h).mask, 0b110u);
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, ip, port, 1, 5), 0) << "already a member";
    EXPECT_EQ(t->lookup(l, h).mask, 0b110u);
    EXPECT_EQ(t->count(), 1u) << "one key per listener set";
    // UDP on the same port is another listener.
    ASSERT_EQ(t->add_listener(IPPROTO_UDP, ip, port, 3, 1), 0);
    EXPECT_EQ(t->lookup(FlowKey::listener(IPPROTO_UDP, ip, port), flow_hash(FlowKey::listener(IPPROTO_UDP, ip, port))).mask,
              0b1000u);

    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, ip, port, 1), 0);
    EXPECT_EQ(t->lookup(l, h).mask, 0b100u);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, ip, port, 1), -ENOENT);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, ip, port + 1, 2), -ENOENT);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, ip, port, 2), 0);
    EXPECT_EQ(t->lookup(l, h).kind, FlowHitKind::none);
    EXPECT_EQ(t->count(), 1u);

    // The listener entry comes back after the grace period and is reused.
    EXPECT_EQ(t->reclaim_deferred(2), 1u);
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, ip, port, 4, 1), 0);
    EXPECT_EQ(t->lookup(l, h).mask, 0b10000u);

    const FlowTableStats s = t->stats();
    EXPECT_EQ(s.listener_creates, 3u);
    EXPECT_EQ(s.listener_joins, 4u);
    EXPECT_EQ(s.listener_leaves, 2u);

    auto rules = t->rules();
    ASSERT_TRUE(rules.ok());
    ASSERT_EQ(rules->size(), 2u);
}

TEST_F(FlowTableTest, ListenerTableFull) {
    MAKE_TABLE(t, config("ut_lfull", 1024, 2));
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(1), 1, 1), 0);
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(2), 1, 1), 0);
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(3), 1, 1), -ENOSPC);
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(1), 2, 1), 0) << "joining an existing set needs no entry";
    EXPECT_EQ(t->stats().add_failed_full, 1u);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, 0, htons(2), 1), 0);
    (void)t->reclaim_deferred(1);
    EXPECT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(3), 1, 1), 0);
}

TEST_F(FlowTableTest, GracePeriodWaitsForOnlineReaders) {
    MAKE_TABLE(t, config("ut_grace"));
    constexpr QueueSlot reader = 9;
    ASSERT_EQ(t->reader_online(reader), 0);
    ASSERT_EQ(t->add_connection(conn(1), flow_hash(conn(1)), k_writer, 1), 0);
    ASSERT_EQ(t->remove_connection(conn(1), flow_hash(conn(1)), k_writer), 0);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 0u) << "reader 9 may still be reading the slot";
    t->reader_quiescent(reader);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 1u);

    ASSERT_EQ(t->add_connection(conn(2), flow_hash(conn(2)), k_writer, 1), 0);
    ASSERT_EQ(t->remove_connection(conn(2), flow_hash(conn(2)), k_writer), 0);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 0u);
    EXPECT_EQ(t->take_reader_offline(reader), 0) << "as the manager does for a dead reader";
    EXPECT_EQ(t->reclaim_deferred(k_writer), 1u);
    EXPECT_EQ(t->reader_online(k_manager_slot + 1), -EINVAL);
}

TEST_F(FlowTableTest, FullDeferredListReturnsEagain) {
    MAKE_TABLE(t, config("ut_eagain", 1024, 64, 4));
    constexpr QueueSlot reader = 5;
    ASSERT_EQ(t->reader_online(reader), 0);
    for (std::uint32_t i = 0; i < 6; ++i) {
        ASSERT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), k_writer, 1), 0);
    }
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(99), k_writer, 1), 0);
    for (std::uint32_t i = 0; i < 4; ++i) {
        ASSERT_EQ(t->remove_connection(conn(i), flow_hash(conn(i)), k_writer), 0);
    }
    EXPECT_EQ(t->remove_connection(conn(4), flow_hash(conn(4)), k_writer), -EAGAIN);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, 0, htons(99), k_writer), -EAGAIN);
    EXPECT_EQ(t->lookup(conn(4), flow_hash(conn(4))).kind, FlowHitKind::connection) << "nothing changed";
    EXPECT_EQ(t->stats().delete_failed_busy, 2u);
    EXPECT_EQ(t->deferred_pending(k_writer), 4u);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 0u);
    t->reader_quiescent(reader);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 4u);
    EXPECT_EQ(t->remove_connection(conn(4), flow_hash(conn(4)), k_writer), 0);
    EXPECT_EQ(t->remove_listener(IPPROTO_TCP, 0, htons(99), k_writer), 0);
    t->reader_offline(reader);
    EXPECT_EQ(t->reclaim_deferred(k_writer), 2u);
}

TEST_F(FlowTableTest, RemoveOwnedByTakesOnlyThatOwner) {
    MAKE_TABLE(t, config("ut_owned"));
    constexpr QueueSlot dead = 3;
    constexpr QueueSlot alive = 4;
    for (std::uint32_t i = 0; i < 10; ++i) {
        ASSERT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), dead, 9), 0);
    }
    for (std::uint32_t i = 10; i < 15; ++i) {
        ASSERT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), alive, 2), 0);
    }
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(80), dead, 9), 0);
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(80), alive, 2), 0);
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(81), dead, 9), 0);

    auto other_epoch = t->remove_owned_by(dead, 8);
    ASSERT_TRUE(other_epoch.ok());
    EXPECT_EQ(other_epoch->connections, 0u);
    EXPECT_EQ(other_epoch->listeners, 0u);

    auto sweep = t->remove_owned_by(dead, 9);
    ASSERT_TRUE(sweep.ok()) << sweep.error().message;
    EXPECT_EQ(sweep->connections, 10u);
    EXPECT_EQ(sweep->listeners, 2u);
    EXPECT_TRUE(sweep->complete);
    EXPECT_EQ(sweep->locks_broken, 0u);
    EXPECT_FALSE(sweep->intent_finished);

    const FlowKey l80 = FlowKey::listener(IPPROTO_TCP, 0, htons(80));
    EXPECT_EQ(t->lookup(l80, flow_hash(l80)).mask, std::uint64_t{1} << alive);
    const FlowKey l81 = FlowKey::listener(IPPROTO_TCP, 0, htons(81));
    EXPECT_EQ(t->lookup(l81, flow_hash(l81)).kind, FlowHitKind::none);
    EXPECT_EQ(t->count(), 6u);
    std::set<std::uint32_t> epochs;
    auto visited = t->for_each_rule([&](const FlowRule& r) {
        if (r.hit.kind == FlowHitKind::connection) {
            EXPECT_EQ(r.hit.slot, alive);
            epochs.insert(r.hit.epoch);
        } else {
            EXPECT_EQ(r.key, l80);
        }
    });
    ASSERT_TRUE(visited.ok());
    EXPECT_EQ(*visited, 6u);
    EXPECT_EQ(epochs, std::set<std::uint32_t>{2});
    EXPECT_GT(t->deferred_pending(k_manager_slot), 0u);
    EXPECT_EQ(t->reclaim_deferred(k_manager_slot), 11u);
    EXPECT_EQ(t->remove_owned_by(k_manager_slot, 1).error().code, EINVAL);
}

// A writer that dies in the middle of a delete leaves its stripe lock held and an intent behind;
// remove_owned_by() must break the lock and finish the delete without leaking the key slot.
TEST_F(FlowTableTest, ReclaimRepairsWriterKilledInsideDelete) {
    using CrashPoint = FlowTable::CrashPoint;
    constexpr QueueSlot dead = 6;
    constexpr QueueSlot other = 7;
    for (const CrashPoint where : {CrashPoint::before_delete, CrashPoint::after_delete}) {
        MAKE_TABLE(t, config("ut_crash"));
        SCOPED_TRACE(static_cast<int>(where));
        for (std::uint32_t i = 0; i < 20; ++i) {
            ASSERT_EQ(t->add_connection(conn(i), flow_hash(conn(i)), dead, 4), 0);
        }
        ASSERT_EQ(t->add_connection(conn(100), flow_hash(conn(100)), other, 1), 0);
        ASSERT_EQ(t->crash_in_delete_for_test(conn(3), dead, where), 0);
        EXPECT_EQ(t->lookup(conn(3), flow_hash(conn(3))).kind,
                  where == CrashPoint::before_delete ? FlowHitKind::connection : FlowHitKind::none);

        auto sweep = t->remove_owned_by(dead, 4);
        ASSERT_TRUE(sweep.ok()) << sweep.error().message;
        EXPECT_EQ(sweep->locks_broken, 1u);
        EXPECT_TRUE(sweep->intent_finished);
        EXPECT_EQ(sweep->connections, where == CrashPoint::before_delete ? 20u : 19u);
        EXPECT_EQ(t->deferred_pending(dead), where == CrashPoint::after_delete ? 1u : 0u)
            << "the deleted key's slot was queued on the dead writer's list";
        EXPECT_EQ(t->reclaim_deferred(dead), where == CrashPoint::after_delete ? 1u : 0u);
        EXPECT_EQ(t->reclaim_deferred(k_manager_slot), sweep->connections);
        // Nothing leaked: every slot used was freed, the stripe works again, one rule is left.
        const FlowTableStats s = t->stats();
        EXPECT_EQ(s.freed, 20u);
        EXPECT_EQ(t->count(), 1u);
        EXPECT_EQ(t->add_connection(conn(3), flow_hash(conn(3)), other, 1), 0) << "stripe lock released";
        EXPECT_EQ(t->remove_connection(conn(3), flow_hash(conn(3)), other), 0);
    }

    // The last member died after moving its listener set to closing: joiners would wait forever.
    MAKE_TABLE(t, config("ut_crash_l"));
    const FlowKey l = FlowKey::listener(IPPROTO_TCP, 0, htons(443));
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(443), dead, 4), 0);
    ASSERT_EQ(t->crash_in_delete_for_test(l, dead, CrashPoint::listener_closing), 0);
    EXPECT_EQ(t->lookup(l, flow_hash(l)).kind, FlowHitKind::none) << "empty set: a miss";
    EXPECT_EQ(t->count(), 1u) << "key still there";
    auto sweep = t->remove_owned_by(dead, 4);
    ASSERT_TRUE(sweep.ok());
    EXPECT_EQ(sweep->locks_broken, 1u);
    EXPECT_TRUE(sweep->intent_finished);
    EXPECT_EQ(t->count(), 0u) << "the half-closed set was deleted";
    EXPECT_EQ(t->reclaim_deferred(dead), 1u);
    ASSERT_EQ(t->add_listener(IPPROTO_TCP, 0, htons(443), other, 1), 0);
    EXPECT_EQ(t->lookup(l, flow_hash(l)).mask, std::uint64_t{1} << other);
}

TEST_F(FlowTableTest, WritersMustBeEalThreads) {
    MAKE_TABLE(t, config("ut_noneal"));
    ASSERT_EQ(t->add_connection(conn(1), flow_hash(conn(1)), k_writer, 1), 0);
    int add = 0;
    int del = 0;
    int join = 0;
    std::thread([&] {
        add = t->add_connection(conn(2), flow_hash(conn(2)), k_writer, 1);
        del = t->remove_connection(conn(1), flow_hash(conn(1)), k_writer);
        join = t->add_listener(IPPROTO_TCP, 0, htons(1), k_writer, 1);
        EXPECT_EQ(t->lookup(conn(1), flow_hash(conn(1))).kind, FlowHitKind::connection) << "reads are fine";
    }).join();
    EXPECT_EQ(add, -EINVAL);
    EXPECT_EQ(del, -EINVAL);
    EXPECT_EQ(join, -EINVAL);
}

} // namespace
} // namespace gazelle::fabric
