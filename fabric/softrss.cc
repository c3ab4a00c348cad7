// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/softrss.h"

#include <bit>
#include <cstring>
#include <string>

#include <rte_mbuf.h>
#include <rte_thash.h>

namespace gazelle::fabric {

namespace {

constexpr std::size_t k_ether_header = 14;
constexpr std::size_t k_vlan_tag = 4;
constexpr std::size_t k_ipv4_min_header = 20;
constexpr std::uint16_t k_ether_type_ipv4 = 0x0800;
constexpr std::uint16_t k_ether_type_vlan = 0x8100;
constexpr std::uint8_t k_proto_tcp = 6;
constexpr std::uint8_t k_proto_udp = 17;
// Fragment offset and More Fragments: a fragment carries no (or only the first) L4 header, so NICs
// hash it as plain IPv4.
constexpr std::uint16_t k_ipv4_fragment_bits = 0x3fff;

std::uint16_t load_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t load_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

} // namespace

RssKey RssKey::from_bytes(std::span<const std::uint8_t, k_rss_key_bytes> key) {
    // rte_convert_rss_key reads the key as 32-bit words: give it an aligned copy.
    std::array<std::uint32_t, k_rss_key_bytes / 4> raw{};
    std::memcpy(raw.data(), key.data(), k_rss_key_bytes);
    RssKey out;
    rte_convert_rss_key(raw.data(), out.words.data(), static_cast<int>(k_rss_key_bytes));
    return out;
}

RssInput rss_input_of_frame(std::span<const std::uint8_t> frame) {
    const std::uint8_t* p = frame.data();
    const std::size_t len = frame.size();
    if (len < k_ether_header) {
        return {};
    }
    std::size_t l3 = k_ether_header;
    std::uint16_t ether_type = load_be16(p + 12);
    if (ether_type == k_ether_type_vlan) {
        if (len < k_ether_header + k_vlan_tag) {
            return {};
        }
        ether_type = load_be16(p + 16);
        l3 += k_vlan_tag;
    }
    if (ether_type != k_ether_type_ipv4 || len < l3 + k_ipv4_min_header) {
        return {};
    }
    const std::uint8_t version_ihl = p[l3];
    const std::size_t ihl = std::size_t{version_ihl & 0x0fu} * 4;
    if ((version_ihl >> 4) != 4 || ihl < k_ipv4_min_header || len < l3 + ihl) {
        return {};
    }
    const std::uint32_t src = load_be32(p + l3 + 12);
    const std::uint32_t dst = load_be32(p + l3 + 16);
    const std::uint8_t proto = p[l3 + 9];
    const bool fragment = (load_be16(p + l3 + 6) & k_ipv4_fragment_bits) != 0;
    const std::size_t l4 = l3 + ihl;
    if (!fragment && (proto == k_proto_tcp || proto == k_proto_udp) && len >= l4 + 4) {
        return rss_input_l4(src, dst, load_be16(p + l4), load_be16(p + l4 + 2));
    }
    return rss_input_l3(src, dst);
}

RssInput rss_input_of_mbuf(const rte_mbuf* m) {
    return rss_input_of_frame({rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_data_len(m)});
}

std::uint32_t rss_hash(const RssKey& key, const RssInput& input) {
    if (input.nb_words == 0) {
        return 0;
    }
    std::array<std::uint32_t, 3> words = input.words; // rte_softrss_be takes a non-const pointer
    return rte_softrss_be(words.data(), input.nb_words, reinterpret_cast<const std::uint8_t*>(key.words.data()));
}

Result<std::uint16_t> pick_local_port(const PortEntry& port, const ConnectTuple& flow, std::uint16_t wanted_queue,
                                      PortRange range, std::uint16_t start) {
    return pick_local_port_if(port, flow, wanted_queue, range, start, [](std::uint16_t) { return true; });
}

namespace detail {

Error pick_local_port_error(const PortEntry& port, std::uint16_t wanted_queue, PortRange range, bool searched) {
    const std::string name(port.name, strnlen(port.name, sizeof port.name));
    const std::string range_text = std::to_string(range.first) + ".." + std::to_string(range.last);
    if (!searched) {
        if (range.first > range.last) {
            return make_error(EINVAL, "local port range " + range_text + " is empty");
        }
        return make_error(EINVAL, "port '" + name + "' has no queue " + std::to_string(wanted_queue) + " (it has " +
                                      std::to_string(port.nb_queues) + ")");
    }
    return make_error(EADDRNOTAVAIL, "no usable local port in " + range_text + " whose replies land on queue " +
                                         std::to_string(wanted_queue) + " of port '" + name + "'");
}

} // namespace detail

int rebalance_reta(std::span<std::uint16_t, k_reta_size> reta, unsigned nb_queues, std::uint64_t owned) {
    if (nb_queues < k_max_queues) {
        owned &= (std::uint64_t{1} << nb_queues) - 1;
    }
    const auto n = static_cast<unsigned>(std::popcount(owned));
    if (n == 0) {
        return -ENOENT;
    }
    const auto is_owned = [owned](unsigned q) { return q < k_max_queues && ((owned >> q) & 1u) != 0; };
    const unsigned base = k_reta_size / n;
    unsigned extra_left = k_reta_size % n; // this many owned queues get base + 1 entries
    std::array<unsigned, k_max_queues> kept{};
    std::array<bool, k_reta_size> pending{};

    // 1. Keep entries on owned queues up to the base share.
    for (unsigned i = 0; i < k_reta_size; ++i) {
        const unsigned q = reta[i];
        if (is_owned(q) && kept[q] < base) {
            ++kept[q];
        } else {
            pending[i] = true;
        }
    }
    // 2. Keep one more where the queue is still owned, while the remainder allows it.
    for (unsigned i = 0; i < k_reta_size && extra_left > 0; ++i) {
        const unsigned q = reta[i];
        if (pending[i] && is_owned(q) && kept[q] == base) {
            ++kept[q];
            --extra_left;
            pending[i] = false;
        }
    }
    // 3. Give the rest to the least loaded owned queues.
    int changed = 0;
    for (unsigned i = 0; i < k_reta_size; ++i) {
        if (!pending[i]) {
            continue;
        }
        unsigned best = k_max_queues;
        for (std::uint64_t todo = owned; todo != 0; todo &= todo - 1) {
            const auto q = static_cast<unsigned>(std::countr_zero(todo));
            if (best == k_max_queues || kept[q] < kept[best]) {
                best = q;
            }
        }
        if (kept[best] == base) {
            --extra_left; // counts guarantee one is left: n * base + remainder == k_reta_size
        }
        ++kept[best];
        if (reta[i] != best) {
            reta[i] = static_cast<std::uint16_t>(best);
            ++changed;
        }
    }
    return changed;
}

} // namespace gazelle::fabric
