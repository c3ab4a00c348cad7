// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/softrss.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace gazelle::fabric {
namespace {

// Independent Toeplitz reference, bit by bit as Microsoft's RSS specification describes it: for
// every set bit of the input (most significant bit of the first byte first), XOR the result with
// the 32 key bits that start at that bit position.
std::uint32_t reference_toeplitz(std::span<const std::uint8_t> key, std::span<const std::uint8_t> input) {
    const auto key_bit = [&](std::size_t bit) -> std::uint32_t {
        return (std::uint32_t{key[bit / 8]} >> (7 - bit % 8)) & 1u;
    };
    std::uint32_t result = 0;
    for (std::size_t bit = 0; bit < input.size() * 8; ++bit) {
        if (((std::uint32_t{input[bit / 8]} >> (7 - bit % 8)) & 1u) == 0) {
            continue;
        }
        std::uint32_t window = 0;
        for (std::size_t k = 0; k < 32; ++k) {
            window = (window << 1) | key_bit(bit + k);
        }
        result ^= window;
    }
    return result;
}

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}
void put_be16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

std::uint32_t reference_l4(std::span<const std::uint8_t> key, std::uint32_t src, std::uint32_t dst,
                           std::uint16_t sport, std::uint16_t dport) {
    std::vector<std::uint8_t> in;
    put_be32(in, src);
    put_be32(in, dst);
    put_be16(in, sport);
    put_be16(in, dport);
    return reference_toeplitz(key, in);
}

std::uint32_t reference_l3(std::span<const std::uint8_t> key, std::uint32_t src, std::uint32_t dst) {
    std::vector<std::uint8_t> in;
    put_be32(in, src);
    put_be32(in, dst);
    return reference_toeplitz(key, in);
}

constexpr std::uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d) { return (a << 24) | (b << 16) | (c << 8) | d; }

// Microsoft, "Verifying the RSS hash calculation" (IPv4 table), default key.
struct Vector {
    std::uint32_t dst;
    std::uint16_t dport;
    std::uint32_t src;
    std::uint16_t sport;
    std::uint32_t hash_l3;
    std::uint32_t hash_l4;
};
constexpr Vector k_vectors[] = {
    {ip(161, 142, 100, 80), 1766, ip(66, 9, 149, 187), 2794, 0x323e8fc2, 0x51ccc178},
    {ip(65, 69, 140, 83), 4739, ip(199, 92, 111, 2), 14230, 0xd718262a, 0xc626b0ea},
    {ip(12, 22, 207, 184), 38024, ip(24, 19, 198, 95), 12898, 0xd2d0a5de, 0x5c2b394a},
    {ip(209, 142, 163, 6), 2217, ip(38, 27, 205, 30), 48228, 0x82989176, 0xafc7327f},
    {ip(202, 188, 127, 2), 1303, ip(153, 39, 163, 191), 44251, 0x5d1809c5, 0x10e828a2},
};

TEST(SoftRss, MicrosoftVerificationVectors) {
    const RssKey key = RssKey::from_bytes(k_default_rss_key);
    for (const Vector& v : k_vectors) {
        SCOPED_TRACE(testing::Message() << std::hex << "src " << v.src << " dst " << v.dst);
        EXPECT_EQ(rss_hash(key, rss_input_l4(v.src, v.dst, v.sport, v.dport)), v.hash_l4);
        EXPECT_EQ(rss_hash(key, rss_input_l3(v.src, v.dst)), v.hash_l3);
        // The reference itself is checked against the published values too.
        EXPECT_EQ(reference_l4(k_default_rss_key, v.src, v.dst, v.sport, v.dport), v.hash_l4);
        EXPECT_EQ(reference_l3(k_default_rss_key, v.src, v.dst), v.hash_l3);
    }
}

TEST(SoftRss, AgreesWithReferenceOnRandomTuplesAndKeys) {
    std::mt19937 rng(12345);
    for (int k = 0; k < 20; ++k) {
        std::array<std::uint8_t, k_rss_key_bytes> raw{};
        if (k == 0) {
            raw = k_default_rss_key;
        } else {
            for (auto& b : raw) {
                b = static_cast<std::uint8_t>(rng());
            }
        }
        const RssKey key = RssKey::from_bytes(raw);
        for (int i = 0; i < 2000; ++i) {
            const auto src = static_cast<std::uint32_t>(rng());
            const auto dst = static_cast<std::uint32_t>(rng());
            const auto sport = static_cast<std::uint16_t>(rng());
            const auto dport = static_cast<std::uint16_t>(rng());
            ASSERT_EQ(rss_hash(key, rss_input_l4(src, dst, sport, dport)), reference_l4(raw, src, dst, sport, dport));
            ASSERT_EQ(rss_hash(key, rss_input_l3(src, dst)), reference_l3(raw, src, dst));
        }
    }
    EXPECT_EQ(rss_hash(RssKey::from_bytes(k_default_rss_key), RssInput{}), 0u);
}

// --- frame parsing -----------------------------------------------------------------------------

struct FrameSpec {
    std::uint16_t ether_type = 0x0800;
    bool vlan = false;
    std::uint8_t proto = 17;
    std::uint8_t ihl_words = 5;
    std::uint16_t frag = 0; // flags + offset field
    std::uint32_t src = ip(198, 18, 0, 1);
    std::uint32_t dst = ip(198, 18, 0, 2);
    std::uint16_t sport = 1234;
    std::uint16_t dport = 80;
};

std::vector<std::uint8_t> make_frame(const FrameSpec& s) {
    std::vector<std::uint8_t> f = {0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x0b};
    if (s.vlan) {
        put_be16(f, 0x8100);
        put_be16(f, 42);
    }
    put_be16(f, s.ether_type);
    if (s.ether_type != 0x0800) {
        f.resize(f.size() + 28, 0); // an ARP body
        return f;
    }
    f.push_back(static_cast<std::uint8_t>(0x40 | s.ihl_words));
    f.push_back(0);
    put_be16(f, 40);
    put_be16(f, 1);
    put_be16(f, s.frag);
    f.push_back(64);
    f.push_back(s.proto);
    put_be16(f, 0);
    put_be32(f, s.src);
    put_be32(f, s.dst);
    for (unsigned i = 5; i < s.ihl_words; ++i) {
        put_be32(f, 0x01010101); // NOP options
    }
    put_be16(f, s.sport);
    put_be16(f, s.dport);
    f.resize(f.size() + 16, 0);
    return f;
}

TEST(SoftRss, FrameInputFollowsNicRules) {
    const FrameSpec base;
    const RssInput l4 = rss_input_l4(base.src, base.dst, base.sport, base.dport);
    const RssInput l3 = rss_input_l3(base.src, base.dst);
    const auto input_of = [](const FrameSpec& s) { return rss_input_of_frame(make_frame(s)); };
    const auto same = [](const RssInput& a, const RssInput& b) {
        return a.nb_words == b.nb_words && std::equal(a.words.begin(), a.words.begin() + a.nb_words, b.words.begin());
    };

    EXPECT_TRUE(same(input_of(base), l4)) << "UDP: 4-tuple";
    FrameSpec tcp = base;
    tcp.proto = 6;
    EXPECT_TRUE(same(input_of(tcp), l4)) << "TCP: 4-tuple";
    FrameSpec icmp = base;
    icmp.proto = 1;
    EXPECT_TRUE(same(input_of(icmp), l3)) << "ICMP: addresses only";
    FrameSpec first_fragment = base;
    first_fragment.frag = 0x2000; // MF
    EXPECT_TRUE(same(input_of(first_fragment), l3)) << "fragments: addresses only";
    FrameSpec later_fragment = base;
    later_fragment.frag = 0x0010;
    EXPECT_TRUE(same(input_of(later_fragment), l3));
    FrameSpec dont_fragment = base;
    dont_fragment.frag = 0x4000; // DF is not a fragment
    EXPECT_TRUE(same(input_of(dont_fragment), l4));
    FrameSpec options = base;
    options.ihl_words = 7;
    EXPECT_TRUE(same(input_of(options), l4)) << "ports are found after IP options";
    FrameSpec vlan = base;
    vlan.vlan = true;
    EXPECT_TRUE(same(input_of(vlan), l4)) << "one 802.1Q tag is skipped";
    FrameSpec arp = base;
    arp.ether_type = 0x0806;
    EXPECT_EQ(input_of(arp).nb_words, 0u) << "ARP: not hashed";
    FrameSpec ipv6 = base;
    ipv6.ether_type = 0x86dd;
    EXPECT_EQ(input_of(ipv6).nb_words, 0u);

    // Truncations never read past the end.
    const std::vector<std::uint8_t> full = make_frame(base);
    for (std::size_t len = 0; len < full.size(); ++len) {
        const RssInput in = rss_input_of_frame(std::span(full.data(), len));
        if (len < 14 + 20) {
            EXPECT_EQ(in.nb_words, 0u) << len;
        } else if (len < 14 + 20 + 4) {
            EXPECT_TRUE(same(in, l3)) << len;
        } else {
            EXPECT_TRUE(same(in, l4)) << len;
        }
    }
}

// --- RETA ------------------------------------------------------------------------------------

std::unique_ptr<PortEntry> make_port(std::uint16_t nb_queues) {
    auto port = std::make_unique<PortEntry>();
    std::memcpy(port->name, "p0", 3);
    port->kind = PortKind::user_veth;
    port->nb_queues = nb_queues;
    std::memcpy(port->rss_key, k_default_rss_key.data(), k_rss_key_bytes);
    for (unsigned i = 0; i < k_reta_size; ++i) {
        port->reta[i].store(static_cast<std::uint16_t>(i % nb_queues));
    }
    return port;
}

TEST(SoftRss, RetaMapsLowHashBitsToQueues) {
    auto port = make_port(4);
    std::mt19937 rng(7);
    for (unsigned i = 0; i < k_reta_size; ++i) {
        port->reta[i].store(static_cast<std::uint16_t>(rng() % 4));
    }
    for (int i = 0; i < 10000; ++i) {
        const auto hash = static_cast<std::uint32_t>(rng());
        ASSERT_EQ(reta_queue(*port, hash), port->reta[hash % k_reta_size].load());
    }
    // Non-IP frames (hash 0) use entry 0.
    port->reta[0].store(3);
    const std::vector<std::uint8_t> arp = make_frame(FrameSpec{.ether_type = 0x0806});
    EXPECT_EQ(rss_queue_of_frame(*port, RssKey::of_port(*port), arp), 3);
    // A frame's queue is the reference hash through the table.
    const FrameSpec udp;
    const std::uint32_t expected = reference_l4(k_default_rss_key, udp.src, udp.dst, udp.sport, udp.dport);
    EXPECT_EQ(rss_queue_of_frame(*port, RssKey::of_port(*port), make_frame(udp)),
              port->reta[expected % k_reta_size].load());
}

TEST(SoftRss, PickLocalPortLandsRepliesOnEveryQueue) {
    auto port = make_port(4);
    const ConnectTuple flow{ip(198, 18, 0, 2), ip(198, 18, 0, 1), 80};
    for (std::uint16_t q = 0; q < 4; ++q) {
        for (std::uint16_t start : {std::uint16_t{0}, std::uint16_t{50000}, std::uint16_t{65535}}) {
            auto picked = pick_local_port(*port, flow, q, PortRange{}, start);
            ASSERT_TRUE(picked) << picked.error().message;
            EXPECT_GE(*picked, 49152);
            // Reply direction: remote -> local, the picked port is the destination port.
            const std::uint32_t hash = reference_l4(k_default_rss_key, flow.remote_ip, flow.local_ip,
                                                    flow.remote_port, *picked);
            EXPECT_EQ(port->reta[hash % k_reta_size].load(), q) << "port " << *picked;
        }
        // Skipping ports in use still lands on the queue.
        auto first = pick_local_port(*port, flow, q);
        ASSERT_TRUE(first);
        const std::uint16_t taken = *first;
        auto second = pick_local_port_if(*port, flow, q, PortRange{}, 0,
                                         [taken](std::uint16_t p) { return p != taken; });
        ASSERT_TRUE(second);
        EXPECT_NE(*second, taken);
        const std::uint32_t hash =
            reference_l4(k_default_rss_key, flow.remote_ip, flow.local_ip, flow.remote_port, *second);
        EXPECT_EQ(port->reta[hash % k_reta_size].load(), q);
    }
}

TEST(SoftRss, PickLocalPortFailsCleanly) {
    auto port = make_port(4);
    const ConnectTuple flow{ip(10, 0, 0, 2), ip(10, 0, 0, 1), 443};
    // The RETA does not point at queue 3 at all.
    for (unsigned i = 0; i < k_reta_size; ++i) {
        port->reta[i].store(static_cast<std::uint16_t>(i % 3));
    }
    auto none = pick_local_port(*port, flow, 3);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, EADDRNOTAVAIL);
    EXPECT_NE(none.error().message.find("queue 3"), std::string::npos) << none.error().message;

    // A one-port range whose only port lands elsewhere.
    auto any = pick_local_port(*port, flow, 0, PortRange{40000, 40000});
    const std::uint32_t hash = reference_l4(k_default_rss_key, flow.remote_ip, flow.local_ip, flow.remote_port, 40000);
    const std::uint16_t lands_on = port->reta[hash % k_reta_size].load();
    auto elsewhere = pick_local_port(*port, flow, static_cast<std::uint16_t>((lands_on + 1) % 3), PortRange{40000, 40000});
    EXPECT_TRUE(any.ok() == (lands_on == 0));
    ASSERT_FALSE(elsewhere);
    EXPECT_EQ(elsewhere.error().code, EADDRNOTAVAIL);

    // Every usable port refused.
    auto refused = pick_local_port_if(*port, flow, 0, PortRange{}, 0, [](std::uint16_t) { return false; });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, EADDRNOTAVAIL);

    auto bad_queue = pick_local_port(*port, flow, 4);
    ASSERT_FALSE(bad_queue);
    EXPECT_EQ(bad_queue.error().code, EINVAL);
    auto empty = pick_local_port(*port, flow, 0, PortRange{2000, 1000});
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, EINVAL);
}

// --- RETA rebalancing ------------------------------------------------------------------------

TEST(SoftRss, RebalanceRetaPointsOnlyAtOwnedQueuesAndSpreads) {
    std::mt19937_64 rng(99);
    for (int iter = 0; iter < 5000; ++iter) {
        const unsigned nb_queues = (iter % 10 == 0) ? 64u : 1u + static_cast<unsigned>(rng() % 16);
        std::uint64_t owned = rng() & rng(); // sparse and dense masks
        if (iter % 7 == 0) {
            owned = rng();
        }
        std::array<std::uint16_t, k_reta_size> reta{};
        for (auto& e : reta) {
            e = static_cast<std::uint16_t>(rng() % nb_queues);
        }
        const auto before = reta;
        const std::uint64_t mask = nb_queues == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << nb_queues) - 1;
        const std::uint64_t effective = owned & mask;
        const int changed = rebalance_reta(reta, nb_queues, owned);
        if (effective == 0) {
            EXPECT_EQ(changed, -ENOENT);
            EXPECT_EQ(reta, before) << "untouched when nothing is owned";
            continue;
        }
        const auto n = static_cast<unsigned>(std::popcount(effective));
        std::array<unsigned, 64> count{};
        for (auto e : reta) {
            ASSERT_LT(e, nb_queues);
            ASSERT_TRUE((effective >> e) & 1u) << "entry points at unowned queue " << e;
            ++count[e];
        }
        for (unsigned q = 0; q < nb_queues; ++q) {
            if ((effective >> q) & 1u) {
                EXPECT_GE(count[q], k_reta_size / n);
                EXPECT_LE(count[q], k_reta_size / n + 1);
            }
        }
        int diff = 0;
        for (unsigned i = 0; i < k_reta_size; ++i) {
            diff += reta[i] != before[i];
        }
        EXPECT_EQ(diff, changed);
        // Already balanced: nothing moves.
        EXPECT_EQ(rebalance_reta(reta, nb_queues, owned), 0);
    }
}

TEST(SoftRss, RebalanceRetaMovesFewEntries) {
    // 4 queues evenly spread, queue 2 goes away: only its 32 entries move, and the others stay.
    std::array<std::uint16_t, k_reta_size> reta{};
    for (unsigned i = 0; i < k_reta_size; ++i) {
        reta[i] = static_cast<std::uint16_t>(i % 4);
    }
    const auto before = reta;
    EXPECT_EQ(rebalance_reta(reta, 4, 0b1011), 32);
    for (unsigned i = 0; i < k_reta_size; ++i) {
        if (before[i] != 2) {
            EXPECT_EQ(reta[i], before[i]);
        }
    }
    // It comes back: it gets its share (32) and only entries for it move.
    EXPECT_EQ(rebalance_reta(reta, 4, 0b1111), 32);
    std::array<unsigned, 4> count{};
    for (auto e : reta) {
        ++count[e];
    }
    EXPECT_EQ(count, (std::array<unsigned, 4>{32, 32, 32, 32}));
}

} // namespace
} // namespace gazelle::fabric
