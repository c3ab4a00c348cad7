// SPDX-License-Identifier: BSD-3-Clause
// user-veth and user-vbridge in one process: an in-process EAL primary (once per process) with
// six user-veth ports: A (4 queues), B (2) and C (1) on bridge 1, D (1) and E (1) on bridge 2,
// F (1) on no bridge.
#include "fabric/user_veth.h"

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <unistd.h>

#include "fabric/eal.h"
#include "fabric/mbuf.h"
#include "fabric/port_io.h"
#include "fabric/registry.h"
#include "fabric/shared_region.h"
#include "fabric/softrss.h"
#include "tests/support/test_support.h"

namespace gazelle::fabric {
namespace {

// --- one EAL per process ---------------------------------------------------------------------

class EalEnvironment : public testing::Environment {
public:
    void SetUp() override {
        mount_ = std::make_unique<test::HugeMount>();
        if (!mount_->ok()) {
            error_ = mount_->error();
            return;
        }
        instance_ = std::make_unique<test::EalInstance>(*mount_, "uveth");
        auto ok = eal_init("user_veth_test", instance_->primary_args(0));
        if (!ok) {
            error_ = ok.error().message;
            return;
        }
        up_ = true;
    }
    void TearDown() override {
        if (up_) {
            (void)rte_eal_cleanup();
        }
        instance_.reset();
        mount_.reset();
    }
    static bool up() { return up_; }
    static const std::string& error() { return error_; }

private:
    std::unique_ptr<test::HugeMount> mount_;
    std::unique_ptr<test::EalInstance> instance_;
    static inline bool up_ = false;
    static inline std::string error_;
};

const auto* const k_env = testing::AddGlobalTestEnvironment(new EalEnvironment);

// --- independent reference: Toeplitz bit by bit -------------------------------------------

std::uint32_t reference_toeplitz(const std::uint8_t* key, const std::uint8_t* in, std::size_t n) {
    std::uint32_t result = 0;
    for (std::size_t bit = 0; bit < n * 8; ++bit) {
        if (((std::uint32_t{in[bit / 8]} >> (7 - bit % 8)) & 1u) == 0) {
            continue;
        }
        std::uint32_t window = 0;
        for (std::size_t k = 0; k < 32; ++k) {
            const std::size_t b = bit + k;
            window = (window << 1) | ((std::uint32_t{key[b / 8]} >> (7 - b % 8)) & 1u);
        }
        result ^= window;
    }
    return result;
}

// --- frames --------------------------------------------------------------------------------

using Mac = std::array<std::uint8_t, 6>;
constexpr Mac k_mac_a = {0x02, 0, 0, 0, 0, 0x0a};
constexpr Mac k_mac_b = {0x02, 0, 0, 0, 0, 0x0b};
constexpr Mac k_mac_c = {0x02, 0, 0, 0, 0, 0x0c};
constexpr Mac k_mac_d = {0x02, 0, 0, 0, 0, 0x0d};
constexpr Mac k_mac_e = {0x02, 0, 0, 0, 0, 0x0e};
constexpr Mac k_mac_f = {0x02, 0, 0, 0, 0, 0x0f};
constexpr Mac k_broadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct Tuple {
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
    std::uint8_t proto = 17; // 6, 17, or 1 (ICMP: hashed on addresses only)
};

void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
    put16(p, static_cast<std::uint16_t>(v >> 16));
    put16(p + 2, static_cast<std::uint16_t>(v));
}
std::uint32_t get32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// Ethernet + IPv4 + 8 bytes of L4 header (ports first) + a 4-byte id.
rte_mbuf* make_ipv4(rte_mempool* pool, OwnerTag tag, const Mac& dst, const Mac& src, const Tuple& t, std::uint32_t id) {
    rte_mbuf* m = nullptr;
    if (alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), tag) != 1) {
        return nullptr;
    }
    auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, 14 + 20 + 8 + 4));
    if (p == nullptr) {
        free_one(m);
        return nullptr;
    }
    std::memset(p, 0, 46);
    std::memcpy(p, dst.data(), 6);
    std::memcpy(p + 6, src.data(), 6);
    put16(p + 12, 0x0800);
    std::uint8_t* ip = p + 14;
    ip[0] = 0x45;
    put16(ip + 2, 32);
    ip[8] = 64;
    ip[9] = t.proto;
    put32(ip + 12, t.src);
    put32(ip + 16, t.dst);
    put16(ip + 20, t.sport);
    put16(ip + 22, t.dport);
    put32(ip + 28, id);
    return m;
}

rte_mbuf* make_arp(rte_mempool* pool, OwnerTag tag, const Mac& dst, const Mac& src) {
    rte_mbuf* m = nullptr;
    if (alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), tag) != 1) {
        return nullptr;
    }
    auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, 42));
    if (p == nullptr) {
        free_one(m);
        return nullptr;
    }
    std::memset(p, 0, 42);
    std::memcpy(p, dst.data(), 6);
    std::memcpy(p + 6, src.data(), 6);
    put16(p + 12, 0x0806);
    return m;
}

std::uint32_t frame_id(rte_mbuf* m) { return get32(rte_pktmbuf_mtod(m, const std::uint8_t*) + 42); }

// --- fixture -------------------------------------------------------------------------------

struct PortSpec {
    const char* name;
    std::uint16_t nb_queues;
    Mac mac;
    std::uint8_t bridge;
};
constexpr PortSpec k_ports[] = {
    {"A", 4, k_mac_a, 1},
    {"B", 2, k_mac_b, 1},
    {"C", 1, k_mac_c, 1},
    {"D", 1, k_mac_d, 2},
    {"E", 1, k_mac_e, 2},
    {"F", 1, k_mac_f, 0},
};
constexpr unsigned k_a = 0, k_b = 1, k_c = 2, k_d = 3, k_e = 4, k_f = 5;
constexpr unsigned k_slots = 10;
constexpr unsigned k_lane_capacity = 64;

class UserVethTest : public testing::Test {
protected:
    void SetUp() override {
        if (!EalEnvironment::up()) {
            GTEST_SKIP() << "no EAL: " << EalEnvironment::error();
        }
        auto reg = Registry::create(k_slots);
        ASSERT_TRUE(reg) << reg.error().message;
        registry_ = *reg;
        for (const PortSpec& s : k_ports) {
            auto entry = std::make_unique<PortEntry>();
            std::strncpy(entry->name, s.name, sizeof entry->name - 1);
            entry->kind = PortKind::user_veth;
            std::memcpy(entry->mac, s.mac.data(), 6);
            entry->bridge = s.bridge;
            entry->nb_queues = s.nb_queues;
            entry->mtu = 1500;
            std::memcpy(entry->rss_key, k_default_rss_key.data(), k_rss_key_bytes);
            auto added = registry_.add_port(*entry);
            ASSERT_TRUE(added) << added.error().message;
        }
        ASSERT_EQ(registry_.nb_slots(), k_slots);
        for (QueueSlot s = 0; s < k_slots; ++s) {
            auto pool = create_mbuf_pool(s, MbufPoolParams{511, 32, RTE_MBUF_DEFAULT_BUF_SIZE});
            ASSERT_TRUE(pool) << pool.error().message;
            pools_[s] = *pool;
        }
        auto veth = UserVeth::create(registry_, UserVethParams{k_lane_capacity});
        ASSERT_TRUE(veth) << veth.error().message;
        veth_ = *veth;
        for (QueueSlot s = 0; s < k_slots; ++s) {
            auto epoch = registry_.claim(s, getpid(), 0);
            ASSERT_TRUE(epoch) << epoch.error().message;
        }
    }

    void TearDown() override {
        if (!EalEnvironment::up()) {
            return;
        }
        if (veth_.valid()) {
            for (QueueSlot s = 0; s < k_slots; ++s) {
                (void)drain(s);
            }
            UserVeth::destroy();
        }
        for (auto*& pool : pools_) {
            if (pool != nullptr) {
                EXPECT_EQ(pool_usage(pool).in_use, 0u) << pool->name << " leaked";
                rte_mempool_free(pool);
                pool = nullptr;
            }
        }
        free_region(k_registry_name);
    }

    const PortEntry& port(unsigned i) const { return registry_.port(i); }
    QueueSlot slot(unsigned p, unsigned q) const { return static_cast<QueueSlot>(port(p).first_slot + q); }
    OwnerTag tag(QueueSlot s) const { return registry_.owner_tag(s); }

    // Receives everything queued on `s` and frees it; returns the count.
    unsigned drain(QueueSlot s) {
        unsigned total = 0;
        std::array<rte_mbuf*, k_burst_max> rx;
        while (unsigned n = veth_.rx_burst(s, rx)) {
            free_burst({rx.data(), n});
            total += n;
        }
        return total;
    }

    // Hardware queue of port p that the bit-by-bit reference predicts for a frame with tuple t.
    std::uint16_t predicted_queue(unsigned p, const Tuple& t) const {
        std::uint8_t in[12];
        put32(in, t.src);
        put32(in + 4, t.dst);
        put16(in + 8, t.sport);
        put16(in + 10, t.dport);
        const bool l4 = t.proto == 6 || t.proto == 17;
        const std::uint32_t hash = reference_toeplitz(port(p).rss_key, in, l4 ? 12 : 8);
        return port(p).reta[hash % k_reta_size].load();
    }

    unsigned send(QueueSlot from, std::vector<rte_mbuf*>& frames) {
        unsigned sent = 0;
        for (std::size_t i = 0; i < frames.size(); i += k_burst_max) {
            const std::size_t n = std::min<std::size_t>(k_burst_max, frames.size() - i);
            sent += veth_.tx_burst(from, std::span<rte_mbuf* const>(frames.data() + i, n));
        }
        frames.clear();
        return sent;
    }

    Registry registry_;
    UserVeth veth_;
    std::array<rte_mempool*, k_slots> pools_{};
};

// --- tests ---------------------------------------------------------------------------------

TEST_F(UserVethTest, UnicastLandsOnTheQueueRssPredictsWithTheReceiversTag) {
    // A shuffled RETA, so that the test does not pass by accident with i % nb_queues.
    std::mt19937 rng(4242);
    for (unsigned i = 0; i < k_reta_size; ++i) {
        registry_.port(k_a).reta[i].store(static_cast<std::uint16_t>(rng() % 4));
    }
    const QueueSlot from = slot(k_b, 1);
    std::vector<Tuple> tuples;
    std::vector<rte_mbuf*> frames;
    std::array<unsigned, 4> expected_per_queue{};
    std::array<unsigned, 4> got_per_queue{};
    constexpr unsigned k_frames = 3000;
    for (std::uint32_t id = 0; id < k_frames; ++id) {
        Tuple t{static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng()),
                static_cast<std::uint16_t>(rng()), static_cast<std::uint16_t>(rng()),
                static_cast<std::uint8_t>(id % 5 == 0 ? 1 : (id % 2 == 0 ? 6 : 17))};
        tuples.push_back(t);
        ++expected_per_queue[predicted_queue(k_a, t)];
        rte_mbuf* m = make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, id);
        ASSERT_NE(m, nullptr);
        frames.push_back(m);
        if (frames.size() == k_burst_max || id + 1 == k_frames) {
            const auto n = static_cast<unsigned>(frames.size());
            ASSERT_EQ(send(from, frames), n);
            for (std::uint16_t q = 0; q < 4; ++q) {
                std::array<rte_mbuf*, k_burst_max> rx;
                while (unsigned got = veth_.rx_burst(slot(k_a, q), rx)) {
                    for (unsigned k = 0; k < got; ++k) {
                        const std::uint32_t fid = frame_id(rx[k]);
                        ASSERT_LT(fid, tuples.size());
                        EXPECT_EQ(predicted_queue(k_a, tuples[fid]), q) << "frame " << fid;
                        EXPECT_EQ(mbuf_owner(rx[k]), tag(slot(k_a, q)));
                        EXPECT_EQ(rte_mbuf_refcnt_read(rx[k]), 1);
                    }
                    got_per_queue[q] += got;
                    free_burst({rx.data(), got});
                }
            }
        }
    }
    EXPECT_EQ(got_per_queue, expected_per_queue);
    for (std::uint16_t q = 0; q < 4; ++q) {
        EXPECT_GT(got_per_queue[q], 0u) << "queue " << q;
        EXPECT_EQ(registry_.stats(slot(k_a, q)).rx_packets, expected_per_queue[q]);
    }
    EXPECT_EQ(registry_.stats(from).tx_packets, k_frames);
    EXPECT_EQ(registry_.stats(from).tx_bytes, std::uint64_t{k_frames} * 46);
    for (QueueSlot s : {slot(k_b, 0), slot(k_b, 1), slot(k_c, 0), slot(k_d, 0)}) {
        EXPECT_EQ(drain(s), 0u) << "slot " << s;
    }
}

TEST_F(UserVethTest, LoopbackGoesToTheOwnPortsRssQueue) {
    const QueueSlot from = slot(k_a, 2);
    std::vector<rte_mbuf*> frames;
    std::vector<Tuple> tuples;
    for (std::uint32_t id = 0; id < 64; ++id) {
        const Tuple t{0xc6120000u + id, 0xc6120100u, static_cast<std::uint16_t>(1000 + id), 80, 6};
        tuples.push_back(t);
        frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_a, t, id));
    }
    ASSERT_EQ(send(from, frames), 64u);
    unsigned total = 0;
    for (std::uint16_t q = 0; q < 4; ++q) {
        std::array<rte_mbuf*, k_burst_max> rx;
        while (unsigned n = veth_.rx_burst(slot(k_a, q), rx)) {
            for (unsigned k = 0; k < n; ++k) {
                EXPECT_EQ(predicted_queue(k_a, tuples[frame_id(rx[k])]), q);
            }
            free_burst({rx.data(), n});
            total += n;
        }
    }
    EXPECT_EQ(total, 64u);
}

TEST_F(UserVethTest, BroadcastReachesEveryOtherPortOnceSharingTheData) {
    const QueueSlot from = slot(k_b, 0);
    const auto baseline = pool_usage(pools_[from]);
    registry_.port(k_a).reta[0].store(3); // non-IP frames go to reta[0]
    std::vector<rte_mbuf*> frames;
    std::set<rte_mbuf*> sent_ptrs;
    for (int i = 0; i < 10; ++i) {
        frames.push_back(make_arp(pools_[from], tag(from), k_broadcast, k_mac_b));
        sent_ptrs.insert(frames.back());
    }
    ASSERT_EQ(send(from, frames), 10u);

    std::array<rte_mbuf*, k_burst_max> on_a;
    std::array<rte_mbuf*, k_burst_max> on_c;
    const unsigned n_a = veth_.rx_burst(slot(k_a, 3), on_a);
    const unsigned n_c = veth_.rx_burst(slot(k_c, 0), on_c);
    ASSERT_EQ(n_a, 10u);
    ASSERT_EQ(n_c, 10u);
    for (unsigned i = 0; i < 10; ++i) {
        // One mbuf per receiver, each tagged for it: the sent frame to one, a clone of it (same
        // data, no copy) to the other, in order.
        rte_mbuf* direct = sent_ptrs.count(on_a[i]) ? on_a[i] : on_c[i];
        rte_mbuf* clone = direct == on_a[i] ? on_c[i] : on_a[i];
        EXPECT_TRUE(sent_ptrs.count(direct));
        EXPECT_TRUE(RTE_MBUF_CLONED(clone));
        EXPECT_EQ(rte_mbuf_from_indirect(clone), direct);
        EXPECT_EQ(rte_pktmbuf_mtod(clone, void*), rte_pktmbuf_mtod(direct, void*));
        EXPECT_EQ(rte_mbuf_refcnt_read(direct), 2);
        EXPECT_EQ(mbuf_owner(on_a[i]), tag(slot(k_a, 3)));
        EXPECT_EQ(mbuf_owner(on_c[i]), tag(slot(k_c, 0)));
    }
    // Nobody else got it: not the sender's port, not the other queues of A, not D on bridge 2.
    for (QueueSlot s : {slot(k_a, 0), slot(k_a, 1), slot(k_a, 2), slot(k_b, 0), slot(k_b, 1), slot(k_d, 0), slot(k_e, 0),
                        slot(k_f, 0)}) {
        EXPECT_EQ(drain(s), 0u) << "slot " << s;
    }
    EXPECT_EQ(veth_.stats(from).flood_frames, 10u);
    EXPECT_EQ(veth_.stats(from).flood_deliveries, 20u);
    EXPECT_EQ(registry_.stats(from).tx_packets, 10u);

    free_burst({on_a.data(), n_a});
    // The clones still reference the data: every frame and its clone stay out of the pool.
    EXPECT_EQ(pool_usage(pools_[from]).in_use, baseline.in_use + 20);
    free_burst({on_c.data(), n_c});
    EXPECT_EQ(pool_usage(pools_[from]).in_use, baseline.in_use);
}

TEST_F(UserVethTest, BroadcastToOnePeerIsAHandOverAndAloneIsFreed) {
    // D and E are alone on bridge 2: a broadcast from D is simply handed over to E, with E's tag.
    const QueueSlot d = slot(k_d, 0);
    const QueueSlot e = slot(k_e, 0);
    std::vector<rte_mbuf*> frames{make_arp(pools_[d], tag(d), k_broadcast, k_mac_d)};
    EXPECT_EQ(send(d, frames), 1u);
    std::array<rte_mbuf*, k_burst_max> rx;
    ASSERT_EQ(veth_.rx_burst(e, rx), 1u);
    EXPECT_EQ(rte_mbuf_refcnt_read(rx[0]), 1);
    EXPECT_EQ(mbuf_owner(rx[0]), tag(e));
    free_burst({rx.data(), 1});
    EXPECT_EQ(veth_.stats(d).flood_deliveries, 1u);

    // F is on no bridge: nobody to flood to; it only reaches itself.
    const QueueSlot f = slot(k_f, 0);
    frames.push_back(make_arp(pools_[f], tag(f), k_broadcast, k_mac_f));
    frames.push_back(make_arp(pools_[f], tag(f), k_mac_d, k_mac_f));
    frames.push_back(make_arp(pools_[f], tag(f), k_mac_f, k_mac_f));
    EXPECT_EQ(send(f, frames), 1u);
    EXPECT_EQ(veth_.stats(f).flood_no_peer, 1u);
    EXPECT_EQ(veth_.stats(f).drop_unknown_mac, 1u);
    EXPECT_EQ(drain(f), 1u);
    EXPECT_EQ(drain(d), 0u);
    EXPECT_EQ(pool_usage(pools_[f]).in_use, 0u);

    // A flood whose other destination is not owned: that reference is dropped and counted, the
    // live receiver keeps the last one.
    registry_.begin_drain(slot(k_c, 0));
    const QueueSlot from = slot(k_b, 1);
    frames.push_back(make_arp(pools_[from], tag(from), k_broadcast, k_mac_b));
    EXPECT_EQ(send(from, frames), 1u);
    EXPECT_EQ(registry_.stats(from).drop_owner_gone, 1u);
    const QueueSlot a_q = slot(k_a, port(k_a).reta[0].load());
    ASSERT_EQ(veth_.rx_burst(a_q, rx), 1u);
    EXPECT_EQ(rte_mbuf_refcnt_read(rx[0]), 1);
    free_burst({rx.data(), 1});
    EXPECT_EQ(pool_usage(pools_[from]).in_use, 0u);
}

TEST_F(UserVethTest, MulticastIsFloodedAndSteeredByRssOnEachPort) {
    const QueueSlot from = slot(k_c, 0);
    const Mac mcast = {0x01, 0x00, 0x5e, 0x01, 0x02, 0x03};
    const Tuple t{0xc6120005, 0xe0010203, 5353, 5353, 17};
    std::vector<rte_mbuf*> frames{make_ipv4(pools_[from], tag(from), mcast, k_mac_c, t, 7)};
    ASSERT_EQ(send(from, frames), 1u);
    std::array<rte_mbuf*, k_burst_max> rx;
    ASSERT_EQ(veth_.rx_burst(slot(k_a, predicted_queue(k_a, t)), rx), 1u);
    EXPECT_EQ(frame_id(rx[0]), 7u);
    free_burst({rx.data(), 1});
    ASSERT_EQ(veth_.rx_burst(slot(k_b, predicted_queue(k_b, t)), rx), 1u);
    free_burst({rx.data(), 1});
    EXPECT_EQ(pool_usage(pools_[from]).in_use, 0u);
}

TEST_F(UserVethTest, UnknownMacAndRuntsAreDroppedAndCounted) {
    const QueueSlot from = slot(k_b, 0);
    const Tuple t{1, 2, 3, 4, 17};
    std::vector<rte_mbuf*> frames;
    frames.push_back(make_ipv4(pools_[from], tag(from), Mac{0x02, 0, 0, 0, 0, 0xee}, k_mac_b, t, 0));
    frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_d, k_mac_b, t, 1)); // D is on bridge 2
    rte_mbuf* runt = make_arp(pools_[from], tag(from), k_mac_a, k_mac_b);
    rte_pktmbuf_trim(runt, 42 - 10);
    frames.push_back(runt);
    frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, 2));
    EXPECT_EQ(send(from, frames), 1u);
    EXPECT_EQ(veth_.stats(from).drop_unknown_mac, 2u);
    EXPECT_EQ(registry_.stats(from).drop_malformed, 1u);
    EXPECT_EQ(registry_.stats(from).tx_packets, 1u);
    EXPECT_EQ(drain(slot(k_d, 0)), 0u);
    EXPECT_EQ(drain(slot(k_a, predicted_queue(k_a, t))), 1u);
    EXPECT_EQ(pool_usage(pools_[from]).in_use, 0u);
}

TEST_F(UserVethTest, UnownedDestinationQueueIsDroppedUntilTheRetaIsUpdated) {
    const QueueSlot from = slot(k_b, 0);
    const QueueSlot gone = slot(k_a, 1);
    registry_.begin_drain(gone);
    std::vector<Tuple> tuples;
    unsigned to_gone = 0;
    for (std::uint32_t i = 0; i < 256; ++i) {
        tuples.push_back(Tuple{0x0a000001, 0x0a000002, static_cast<std::uint16_t>(20000 + i), 443, 6});
        to_gone += predicted_queue(k_a, tuples.back()) == 1;
    }
    ASSERT_GT(to_gone, 0u);
    const auto send_all = [&] {
        std::vector<rte_mbuf*> frames;
        unsigned sent = 0;
        for (std::uint32_t i = 0; i < tuples.size(); ++i) {
            frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, tuples[i], i));
            if (frames.size() == k_burst_max) {
                sent += send(from, frames);
                for (std::uint16_t q = 0; q < 4; ++q) {
                    (void)drain(slot(k_a, q));
                }
            }
        }
        return sent;
    };
    EXPECT_EQ(send_all(), 256u - to_gone);
    EXPECT_EQ(registry_.stats(from).drop_owner_gone, to_gone);
    EXPECT_EQ(pool_usage(pools_[from]).in_use, 0u);
    EXPECT_EQ(veth_.rx_inbox(gone).pending(), 0u) << "nothing stranded on the unowned queue";

    auto changed = reta_update(registry_, k_a, registry_.live_mask());
    ASSERT_TRUE(changed) << changed.error().message;
    EXPECT_EQ(*changed, 32u) << "only queue 1's entries move";
    EXPECT_EQ(send_all(), 256u);
    EXPECT_EQ(registry_.stats(from).drop_owner_gone, to_gone) << "no new drops";
}

TEST_F(UserVethTest, FullLaneIsACountedDropAndLeaksNothing) {
    const QueueSlot from = slot(k_b, 1);
    const Tuple t{0x0a000001, 0x0a000002, 1111, 2222, 17};
    const QueueSlot to = slot(k_a, predicted_queue(k_a, t));
    std::vector<rte_mbuf*> frames;
    for (std::uint32_t i = 0; i < 200; ++i) {
        frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, i));
    }
    EXPECT_EQ(send(from, frames), k_lane_capacity);
    EXPECT_EQ(registry_.stats(from).drop_tx_full, 200u - k_lane_capacity);
    EXPECT_EQ(pool_usage(pools_[from]).in_use, k_lane_capacity);
    // The lane keeps order: the first k_lane_capacity frames, in order.
    std::array<rte_mbuf*, k_burst_max> rx;
    std::uint32_t next = 0;
    while (unsigned n = veth_.rx_burst(to, rx)) {
        for (unsigned k = 0; k < n; ++k) {
            EXPECT_EQ(frame_id(rx[k]), next++);
        }
        free_burst({rx.data(), n});
    }
    EXPECT_EQ(next, k_lane_capacity);
    EXPECT_EQ(pool_usage(pools_[from]).in_use, 0u);
}

TEST_F(UserVethTest, DoorbellRingsForASleepingConsumer) {
    const QueueSlot from = slot(k_b, 0);
    const Tuple t{5, 6, 7, 8, 17};
    const QueueSlot to = slot(k_a, predicted_queue(k_a, t));
    Inbox& inbox = veth_.rx_inbox(to);
    const std::uint32_t seen = inbox.prepare_sleep();
    std::vector<rte_mbuf*> frames{make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, 0)};
    ASSERT_EQ(send(from, frames), 1u);
    inbox.wait(seen, 1000000); // returns at once: the doorbell moved
    EXPECT_NE(inbox.prepare_sleep(), seen);
    inbox.finish_sleep();
    EXPECT_EQ(drain(to), 1u);
}

TEST_F(UserVethTest, RetaUpdateNeverPointsAtAnUnownedQueue) {
    std::mt19937_64 rng(2024);
    const QueueSlot from = slot(k_b, 0);
    std::uint64_t drops_before = 0;
    for (int iter = 0; iter < 40; ++iter) {
        // Random ownership of A's queues, applied to the registry like the manager would.
        const std::uint64_t want = rng() & 0xf;
        for (unsigned q = 0; q < 4; ++q) {
            const QueueSlot s = slot(k_a, q);
            const bool live = registry_.is_live(s);
            if (live && ((want >> q) & 1u) == 0) {
                registry_.begin_drain(s);
                (void)drain(s);
                registry_.release(s);
            } else if (!live && ((want >> q) & 1u) != 0) {
                ASSERT_TRUE(registry_.claim(s, getpid(), 0));
            }
        }
        std::array<std::uint16_t, k_reta_size> before{};
        for (unsigned i = 0; i < k_reta_size; ++i) {
            before[i] = port(k_a).reta[i].load();
        }
        auto changed = reta_update(registry_, k_a, registry_.live_mask());
        if (want == 0) {
            ASSERT_FALSE(changed);
            EXPECT_EQ(changed.error().code, ENOENT);
            for (unsigned i = 0; i < k_reta_size; ++i) {
                EXPECT_EQ(port(k_a).reta[i].load(), before[i]) << "left as it is";
            }
            continue;
        }
        ASSERT_TRUE(changed) << changed.error().message;
        std::array<unsigned, 4> count{};
        for (unsigned i = 0; i < k_reta_size; ++i) {
            const std::uint16_t q = port(k_a).reta[i].load();
            ASSERT_LT(q, 4);
            ASSERT_TRUE((want >> q) & 1u) << "entry " << i << " -> unowned queue " << q;
            ++count[q];
        }
        const auto n = static_cast<unsigned>(std::popcount(want));
        for (unsigned q = 0; q < 4; ++q) {
            if ((want >> q) & 1u) {
                EXPECT_GE(count[q], k_reta_size / n);
                EXPECT_LE(count[q], k_reta_size / n + 1);
            }
        }
        // End to end: nothing sent to A is dropped for an unowned queue.
        std::vector<rte_mbuf*> frames;
        for (std::uint32_t i = 0; i < 32; ++i) { // <= lane capacity even when one queue takes all
            const Tuple t{static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng()),
                          static_cast<std::uint16_t>(rng()), 80, 6};
            frames.push_back(make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, i));
        }
        frames.push_back(make_arp(pools_[from], tag(from), k_mac_a, k_mac_b)); // reta[0]
        EXPECT_EQ(send(from, frames), 33u);
        EXPECT_EQ(registry_.stats(from).drop_owner_gone, drops_before);
        drops_before = registry_.stats(from).drop_owner_gone;
        for (unsigned q = 0; q < 4; ++q) {
            (void)drain(slot(k_a, q));
        }
    }
    // Not a user-veth port / no such port.
    EXPECT_EQ(reta_update(registry_, 7, registry_.live_mask()).error().code, EINVAL);
}

TEST_F(UserVethTest, AttachedViewAndPortIoShareTheWire) {
    auto attached = UserVeth::attach(registry_);
    ASSERT_TRUE(attached) << attached.error().message;
    auto io_b = make_port_io(registry_, slot(k_b, 1));
    ASSERT_TRUE(io_b) << io_b.error().message;
    EXPECT_EQ((*io_b)->kind(), PortKind::user_veth);
    EXPECT_TRUE((*io_b)->supports_reta());
    EXPECT_EQ((*io_b)->port(), k_b);
    auto io_a = make_port_io(registry_, slot(k_a, 3));
    ASSERT_TRUE(io_a);
    EXPECT_EQ((*io_a)->port(), k_a);

    const QueueSlot from = slot(k_b, 1);
    const Tuple t{9, 10, 11, 12, 17};
    const QueueSlot to = slot(k_a, predicted_queue(k_a, t));
    rte_mbuf* m = make_ipv4(pools_[from], tag(from), k_mac_a, k_mac_b, t, 99);
    EXPECT_EQ((*io_b)->tx_burst(from, std::span<rte_mbuf* const>(&m, 1)), 1u);
    std::array<rte_mbuf*, k_burst_max> rx;
    ASSERT_EQ((*io_a)->rx_burst(to, rx), 1u);
    EXPECT_EQ(frame_id(rx[0]), 99u);
    EXPECT_EQ(mbuf_owner(rx[0]), tag(to));
    free_burst({rx.data(), 1});

    EXPECT_EQ(make_port_io(registry_, 40).error().code, EINVAL);
    auto io_f = make_port_io(registry_, slot(k_f, 0));
    ASSERT_TRUE(io_f);
    EXPECT_EQ((*io_f)->port(), k_f);
}

TEST_F(UserVethTest, CreateRejectsBadParameters) {
    auto bad = UserVeth::create(registry_, UserVethParams{100});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, EINVAL);
    auto again = UserVeth::create(registry_, UserVethParams{64});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, EEXIST);
}

TEST(UserVethRegistry, DuplicateMacOnABridgeIsRejected) {
    if (!EalEnvironment::up()) {
        GTEST_SKIP() << "no EAL: " << EalEnvironment::error();
    }
    auto reg = Registry::create(4);
    ASSERT_TRUE(reg) << reg.error().message;
    for (int i = 0; i < 2; ++i) {
        auto entry = std::make_unique<PortEntry>();
        std::strncpy(entry->name, i == 0 ? "X" : "Y", sizeof entry->name - 1);
        entry->kind = PortKind::user_veth;
        std::memcpy(entry->mac, k_mac_a.data(), 6);
        entry->bridge = 1;
        entry->nb_queues = 1;
        ASSERT_TRUE(reg->add_port(*entry));
    }
    auto veth = UserVeth::create(*reg, {});
    ASSERT_FALSE(veth);
    EXPECT_EQ(veth.error().code, EINVAL);
    EXPECT_NE(veth.error().message.find("same MAC"), std::string::npos) << veth.error().message;
    free_region(k_registry_name);
}

} // namespace
} // namespace gazelle::fabric
