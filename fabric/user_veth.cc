// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/user_veth.h"

#include <bit>
#include <cstring>
#include <string>

#include <rte_mbuf.h>

#include "fabric/mbuf.h"
#include "fabric/shared_region.h"

namespace gazelle::fabric {

namespace {

constexpr std::uint64_t k_user_veth_magic = make_magic("GZUVETH1");
constexpr unsigned k_max_lane_capacity = 1u << 16;
constexpr std::size_t k_ether_header = 14;
// A flood reaches at most every other port of a bridge.
constexpr unsigned k_max_deliveries = k_burst_max * (k_max_ports - 1);
static_assert(k_burst_max <= 32, "tx_chunk keeps a 32-bit mask of delivered frames");

std::string port_name(const PortEntry& p) { return std::string(p.name, strnlen(p.name, sizeof p.name)); }

std::uint64_t mac_value(const std::uint8_t* mac) {
    std::uint64_t v = 0;
    std::memcpy(&v, mac, 6);
    return v;
}

bool mac_is_group(std::uint64_t mac) { return (mac & 1u) != 0; } // I/G bit of the first byte

std::string mac_text(const std::uint8_t* mac) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 6; ++i) {
        if (i != 0) {
            out += ':';
        }
        out += hex[mac[i] >> 4];
        out += hex[mac[i] & 0x0f];
    }
    return out;
}

// Ports of kind user_veth must have unicast MACs, unique on their bridge (the switch forwards by MAC).
Result<void> check_ports(const Registry& registry) {
    const unsigned nb = registry.layout().nb_ports;
    for (unsigned i = 0; i < nb; ++i) {
        const PortEntry& p = registry.port(i);
        if (p.kind != PortKind::user_veth) {
            continue;
        }
        const std::uint64_t mac = mac_value(p.mac);
        if (mac == 0 || mac_is_group(mac)) {
            return make_error(EINVAL, "user-veth port '" + port_name(p) + "' has MAC " + mac_text(p.mac) +
                                          ", which is not a unicast address");
        }
        for (unsigned j = 0; j < i; ++j) {
            const PortEntry& o = registry.port(j);
            if (o.kind == PortKind::user_veth && p.bridge != 0 && o.bridge == p.bridge && mac_value(o.mac) == mac) {
                return make_error(EINVAL, "user-veth ports '" + port_name(o) + "' and '" + port_name(p) +
                                              "' have the same MAC " + mac_text(p.mac) + " on bridge " +
                                              std::to_string(p.bridge));
            }
        }
    }
    return {};
}

std::uint64_t inbox_bytes_for(unsigned lanes, unsigned lane_capacity) {
    const std::uint64_t raw = Inbox::bytes(lanes, lane_capacity);
    return (raw + k_cache_line - 1) / k_cache_line * k_cache_line;
}

} // namespace

Result<UserVeth> UserVeth::create(const Registry& registry, const UserVethParams& params) {
    if (!registry.valid()) {
        return make_error(EINVAL, "user-veth: the registry is not attached");
    }
    const unsigned cap = params.lane_capacity;
    if (cap < 2 || cap > k_max_lane_capacity || !std::has_single_bit(cap)) {
        return make_error(EINVAL, "user-veth: lane capacity " + std::to_string(cap) +
                                      " is not a power of two in 2.." + std::to_string(k_max_lane_capacity));
    }
    if (auto checked = check_ports(registry); !checked) {
        return checked.error();
    }
    const unsigned lanes = registry.layout().max_queues;
    const std::uint64_t per_inbox = inbox_bytes_for(lanes, cap);
    unsigned nb_inboxes = 0;
    for (unsigned i = 0; i < registry.layout().nb_ports; ++i) {
        if (registry.port(i).kind == PortKind::user_veth) {
            nb_inboxes += registry.port(i).nb_queues;
        }
    }
    auto region = create_region(k_user_veth_region, sizeof(UserVethHeader) + nb_inboxes * per_inbox,
                                k_user_veth_magic, k_user_veth_layout);
    if (!region) {
        return region.error();
    }
    auto* header = static_cast<UserVethHeader*>(*region);
    header->lanes = lanes;
    header->lane_capacity = cap;
    header->nb_inboxes = nb_inboxes;
    header->inbox_bytes = per_inbox;
    std::uint64_t offset = sizeof(UserVethHeader);
    for (unsigned i = 0; i < registry.layout().nb_ports; ++i) {
        const PortEntry& p = registry.port(i);
        if (p.kind != PortKind::user_veth) {
            continue;
        }
        for (unsigned q = 0; q < p.nb_queues; ++q) {
            header->inbox_offset[p.first_slot + q] = offset;
            (void)Inbox::format(reinterpret_cast<char*>(header) + offset, lanes, cap);
            offset += per_inbox;
        }
    }
    return make_view(registry, header);
}

Result<UserVeth> UserVeth::attach(const Registry& registry) {
    if (!registry.valid()) {
        return make_error(EINVAL, "user-veth: the registry is not attached");
    }
    auto region = attach_region(k_user_veth_region, k_user_veth_magic, k_user_veth_layout);
    if (!region) {
        return region.error();
    }
    auto* header = static_cast<UserVethHeader*>(*region);
    if (header->lanes != registry.layout().max_queues) {
        return make_error(EPROTO, std::string("Shared region '") + k_user_veth_region + "' has " +
                                      std::to_string(header->lanes) + " lanes per inbox, the registry " +
                                      std::to_string(registry.layout().max_queues) + " queue slots");
    }
    if (auto checked = check_ports(registry); !checked) {
        return checked.error();
    }
    return make_view(registry, header);
}

void UserVeth::destroy() { free_region(k_user_veth_region); }

Result<UserVeth> UserVeth::make_view(const Registry& registry, UserVethHeader* header) {
    UserVeth v;
    v.registry_ = registry;
    v.header_ = header;
    v.nb_ports_ = registry.layout().nb_ports;
    for (unsigned i = 0; i < v.nb_ports_; ++i) {
        const PortEntry& p = registry.port(i);
        PortView& view = v.ports_[i];
        view.mac = mac_value(p.mac);
        view.key = RssKey::of_port(p);
        view.first_slot = p.first_slot;
        view.nb_queues = p.nb_queues;
        view.bridge = p.bridge;
        view.user_veth = p.kind == PortKind::user_veth;
        if (!view.user_veth) {
            continue;
        }
        for (unsigned q = 0; q < p.nb_queues; ++q) {
            const unsigned slot = p.first_slot + q;
            const std::uint64_t offset = header->inbox_offset[slot];
            if (offset == 0) {
                return make_error(EPROTO, "user-veth port '" + port_name(p) + "' queue " + std::to_string(q) +
                                              " has no rx inbox in '" + k_user_veth_region +
                                              "': the port was added after the region was created");
            }
            v.inboxes_[slot] = Inbox(reinterpret_cast<char*>(header) + offset);
        }
    }
    return v;
}

unsigned UserVeth::rx_burst(QueueSlot slot, std::span<rte_mbuf*> out) {
    if (!has_queue(slot)) {
        return 0;
    }
    const unsigned n = inboxes_[slot].dequeue_burst(out);
    if (n != 0) {
        std::uint64_t bytes = 0;
        for (unsigned i = 0; i < n; ++i) {
            bytes += rte_pktmbuf_pkt_len(out[i]);
        }
        QueueStats& st = registry_.stats(slot);
        st.rx_packets += n;
        st.rx_bytes += bytes;
    }
    return n;
}

unsigned UserVeth::tx_burst(QueueSlot src_slot, std::span<rte_mbuf* const> pkts) {
    if (!has_queue(src_slot)) {
        if (src_slot < k_max_queues) {
            registry_.stats(src_slot).drop_owner_gone += pkts.size();
        }
        free_burst(pkts);
        return 0;
    }
    unsigned sent = 0;
    for (std::size_t done = 0; done < pkts.size(); done += k_burst_max) {
        sent += tx_chunk(src_slot, pkts.subspan(done, std::min<std::size_t>(k_burst_max, pkts.size() - done)));
    }
    return sent;
}

QueueSlot UserVeth::rss_slot(unsigned port, const RssInput& input) const {
    const PortView& view = ports_[port];
    const std::uint16_t hwq = reta_queue(registry_.port(port), rss_hash(view.key, input));
    if (hwq >= view.nb_queues) {
        return k_no_queue; // a corrupt RETA entry: treat as "nobody polls it"
    }
    return static_cast<QueueSlot>(view.first_slot + hwq);
}

unsigned UserVeth::tx_chunk(QueueSlot src_slot, std::span<rte_mbuf* const> pkts) {
    struct Delivery {
        rte_mbuf* m;
        QueueSlot slot;
        std::uint8_t frame; // index in pkts
    };
    std::array<Delivery, k_max_deliveries> deliveries;
    std::array<std::uint32_t, k_burst_max> frame_bytes; // read before any hand-off: afterwards it is not ours
    std::array<rte_mbuf*, k_burst_max> dropped;
    unsigned nb_deliveries = 0;
    unsigned nb_dropped = 0;
    unsigned nb_malformed = 0;
    unsigned nb_unknown = 0;
    unsigned nb_flood = 0;
    unsigned nb_flood_deliveries = 0;
    unsigned nb_no_peer = 0;
    unsigned nb_clone_failed = 0;

    const unsigned src_port = registry_.queue(src_slot).port;
    const std::uint8_t bridge = ports_[src_port].bridge;
    // Bridge 0 means "no bridge": the port only reaches itself (loopback).
    const auto on_bridge = [&](unsigned p) {
        return ports_[p].user_veth && (p == src_port || (bridge != 0 && ports_[p].bridge == bridge));
    };

    // 1. Switch and steer every frame: (mbuf, destination slot) pairs, in frame order.
    for (unsigned i = 0; i < pkts.size(); ++i) {
        rte_mbuf* m = pkts[i];
        frame_bytes[i] = rte_pktmbuf_pkt_len(m);
        const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
        const std::size_t len = rte_pktmbuf_data_len(m);
        if (len < k_ether_header) {
            ++nb_malformed;
            dropped[nb_dropped++] = m;
            continue;
        }
        const std::uint64_t dst_mac = mac_value(data);
        const RssInput input = rss_input_of_frame({data, len});
        if (!mac_is_group(dst_mac)) {
            unsigned dst = k_max_ports;
            for (unsigned p = 0; p < nb_ports_; ++p) {
                if (on_bridge(p) && ports_[p].mac == dst_mac) {
                    dst = p;
                    break;
                }
            }
            if (dst == k_max_ports) {
                ++nb_unknown;
                dropped[nb_dropped++] = m;
                continue;
            }
            deliveries[nb_deliveries++] = {m, rss_slot(dst, input), static_cast<std::uint8_t>(i)};
            continue;
        }
        // Broadcast / multicast: every other port of the bridge.
        std::array<std::uint8_t, k_max_ports> peers;
        unsigned nb_peers = 0;
        for (unsigned p = 0; p < nb_ports_; ++p) {
            if (p != src_port && on_bridge(p)) {
                peers[nb_peers++] = static_cast<std::uint8_t>(p);
            }
        }
        ++nb_flood;
        nb_flood_deliveries += nb_peers;
        if (nb_peers == 0) {
            ++nb_no_peer;
            dropped[nb_dropped++] = m;
            continue;
        }
        // The first peer gets the frame itself, every other peer an indirect mbuf (a clone sharing
        // its data by reference count): each receiver holds its own mbuf with its own owner tag,
        // so reclaim of a dead receiver returns exactly its reference. Clones come from the
        // frame's own pool (our lcore's cache): broadcasts are rare (ARP), unicast never clones.
        for (unsigned k = 0; k < nb_peers; ++k) {
            rte_mbuf* copy = k == 0 ? m : rte_pktmbuf_clone(m, m->pool);
            if (copy == nullptr) {
                ++nb_clone_failed;
                continue;
            }
            deliveries[nb_deliveries++] = {copy, rss_slot(peers[k], input), static_cast<std::uint8_t>(i)};
        }
    }

    // 2. Group by destination slot, keeping frame order inside each group (counting sort).
    std::array<std::uint16_t, k_max_queues + 1> start{};
    std::uint64_t touched = 0;
    unsigned nb_gone = 0;
    std::array<rte_mbuf*, k_max_deliveries> sorted_mbufs;
    std::array<std::uint8_t, k_max_deliveries> sorted_frame;
    for (unsigned d = 0; d < nb_deliveries; ++d) {
        const QueueSlot s = deliveries[d].slot;
        if (s >= k_max_queues || !inboxes_[s].valid()) {
            deliveries[d].slot = k_no_queue;
            continue;
        }
        ++start[s + 1];
        touched |= std::uint64_t{1} << s;
    }
    for (unsigned s = 0; s < k_max_queues; ++s) {
        start[s + 1] = static_cast<std::uint16_t>(start[s + 1] + start[s]);
    }
    std::array<std::uint16_t, k_max_queues + 1> fill = start;
    unsigned nb_bad = 0;
    std::array<rte_mbuf*, k_max_deliveries> bad; // deliveries to no valid slot (corrupt RETA)
    for (unsigned d = 0; d < nb_deliveries; ++d) {
        const QueueSlot s = deliveries[d].slot;
        if (s == k_no_queue) {
            bad[nb_bad++] = deliveries[d].m;
            continue;
        }
        sorted_mbufs[fill[s]] = deliveries[d].m;
        sorted_frame[fill[s]] = deliveries[d].frame;
        ++fill[s];
    }
    if (nb_bad != 0) {
        free_burst({bad.data(), nb_bad});
        nb_gone += nb_bad;
    }

    // 3. Hand each group over: tag, one enqueue on our lane, one doorbell.
    QueueStats& st = registry_.stats(src_slot);
    const std::uint64_t live = registry_.live_mask();
    std::uint32_t delivered = 0; // bit i: frame i reached at least one rx queue
    unsigned nb_full = 0;
    for (std::uint64_t todo = touched; todo != 0; todo &= todo - 1) {
        const auto s = static_cast<QueueSlot>(std::countr_zero(todo));
        const unsigned first = start[s];
        const unsigned count = start[s + 1u] - first;
        const std::span<rte_mbuf* const> group(sorted_mbufs.data() + first, count);
        if (((live >> s) & 1u) == 0) {
            free_burst(group);
            nb_gone += count;
            continue;
        }
        const OwnerTag tag = registry_.owner_tag(s);
        set_owner_burst(group, tag);
        Inbox& inbox = inboxes_[s];
        const unsigned accepted = inbox.enqueue_burst(src_slot, group);
        if (accepted != 0) {
            inbox.ring_doorbell();
        }
        for (unsigned k = first; k < first + accepted; ++k) {
            delivered |= std::uint32_t{1} << sorted_frame[k];
        }
        if (accepted < count) {
            free_burst(group.subspan(accepted));
            nb_full += count - accepted;
        }
    }
    if (nb_dropped != 0) {
        free_burst({dropped.data(), nb_dropped});
    }

    // 4. Account once per burst.
    std::uint64_t bytes = 0;
    for (std::uint32_t bits = delivered; bits != 0; bits &= bits - 1) {
        bytes += frame_bytes[static_cast<unsigned>(std::countr_zero(bits))];
    }
    const auto sent = static_cast<unsigned>(std::popcount(delivered));
    st.tx_packets += sent;
    st.tx_bytes += bytes;
    st.drop_owner_gone += nb_gone;
    st.drop_tx_full += nb_full;
    st.drop_malformed += nb_malformed;
    st.drop_alloc_failed += nb_clone_failed;
    UserVethStats& ust = header_->stats[src_slot];
    ust.drop_unknown_mac += nb_unknown;
    ust.flood_frames += nb_flood;
    ust.flood_deliveries += nb_flood_deliveries;
    ust.flood_no_peer += nb_no_peer;
    return sent;
}

Result<unsigned> reta_update(const Registry& registry, unsigned port, std::uint64_t live_mask) {
    if (port >= registry.layout().nb_ports) {
        return make_error(EINVAL, "reta_update: no port " + std::to_string(port));
    }
    PortEntry& p = registry.port(port);
    if (p.kind != PortKind::user_veth) {
        return make_error(EINVAL, "reta_update: port '" + port_name(p) +
                                      "' is not a user-veth port (an ethdev's RETA belongs to its NIC)");
    }
    const std::uint64_t queue_mask = p.nb_queues >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << p.nb_queues) - 1;
    const std::uint64_t owned = (live_mask >> p.first_slot) & queue_mask;
    std::array<std::uint16_t, k_reta_size> reta;
    for (unsigned i = 0; i < k_reta_size; ++i) {
        reta[i] = p.reta[i].load(std::memory_order_relaxed);
    }
    const int changed = rebalance_reta(reta, p.nb_queues, owned);
    if (changed < 0) {
        return make_error(ENOENT, "reta_update: no queue of port '" + port_name(p) +
                                      "' is owned; its RETA is left as it is");
    }
    // Entry by entry: a concurrent sender sees each entry either old or new, both valid queues.
    for (unsigned i = 0; i < k_reta_size; ++i) {
        if (p.reta[i].load(std::memory_order_relaxed) != reta[i]) {
            p.reta[i].store(reta[i], std::memory_order_relaxed);
        }
    }
    return static_cast<unsigned>(changed);
}

} // namespace gazelle::fabric
