// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/forwarder.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <rte_mbuf.h>

#include "fabric/flow_key.h"
#include "fabric/mbuf.h"
#include "fabric/packet_parser.h"
#include "fabric/shared_region.h"

namespace gazelle::fabric {

namespace {
constexpr std::uint64_t k_forward_magic = make_magic("GZFWDINB");
constexpr std::uint32_t k_forward_layout = 1;
} // namespace

struct ForwardInboxes::Layout {
    std::uint32_t lanes;
    std::uint32_t lane_capacity;
    std::uint64_t inbox_bytes; // cache-line multiple
    std::uint32_t nb_slots;
    std::uint32_t reserved_[11];
    // followed by nb_slots inboxes of inbox_bytes each
};
static_assert(sizeof(ForwardInboxes::Layout) == k_cache_line);

ForwardInboxes::ForwardInboxes(Layout* layout) : base_(layout) {}

Result<ForwardInboxes> ForwardInboxes::create(const Registry& registry, unsigned lane_capacity) {
    if (lane_capacity < 2 || (lane_capacity & (lane_capacity - 1)) != 0) {
        return make_error(EINVAL, "forwarding inbox lane capacity " + std::to_string(lane_capacity) +
                                      " is not a power of two >= 2");
    }
    const unsigned lanes = registry.layout().max_queues;
    const unsigned slots = registry.nb_slots();
    const std::size_t bytes = (Inbox::bytes(lanes, lane_capacity) + k_cache_line - 1) / k_cache_line * k_cache_line;
    auto region = create_region(k_forward_region, sizeof(Layout) + bytes * slots, k_forward_magic, k_forward_layout);
    if (!region) {
        return region.error();
    }
    auto* layout = static_cast<Layout*>(*region);
    layout->lanes = lanes;
    layout->lane_capacity = lane_capacity;
    layout->inbox_bytes = bytes;
    layout->nb_slots = slots;
    for (unsigned s = 0; s < slots; ++s) {
        (void)Inbox::format(reinterpret_cast<char*>(layout + 1) + bytes * s, lanes, lane_capacity);
    }
    return ForwardInboxes(layout);
}

Result<ForwardInboxes> ForwardInboxes::attach(const Registry& registry) {
    auto region = attach_region(k_forward_region, k_forward_magic, k_forward_layout);
    if (!region) {
        return region.error();
    }
    auto* layout = static_cast<Layout*>(*region);
    if (layout->nb_slots != registry.nb_slots()) {
        return make_error(EPROTO, "forwarding inboxes cover " + std::to_string(layout->nb_slots) +
                                      " queue slots, the registry has " + std::to_string(registry.nb_slots()));
    }
    return ForwardInboxes(layout);
}

void ForwardInboxes::destroy() { free_region(k_forward_region); }

Inbox ForwardInboxes::of(QueueSlot slot) const {
    if (base_ == nullptr || slot >= base_->nb_slots) {
        return Inbox{};
    }
    return Inbox(reinterpret_cast<char*>(base_ + 1) + base_->inbox_bytes * slot);
}

Forwarder::Forwarder(Registry registry, FlowTable flows, ForwardInboxes inboxes, QueueSlot self, MbufSource mbufs)
    : registry_(registry), flows_(flows), inboxes_(inboxes), own_inbox_(inboxes.of(self)), self_(self),
      port_(registry.queue(self).port), stats_(registry.stats(self)), mbufs_(mbufs) {
    for (QueueSlot s = 0; s < registry.nb_slots(); ++s) {
        peers_[s] = inboxes.of(s);
    }
}

Forwarder::Forwarder(Registry registry, FlowTable flows, ForwardInboxes inboxes, QueueSlot self, rte_mempool* pool)
    : Forwarder(registry, flows, inboxes, self, MbufSource(pool, nullptr, 0, 0, &registry.stats(self))) {}

QueueSlot Forwarder::live_owner(QueueSlot slot, Epoch epoch) const {
    if (slot >= registry_.nb_slots() || !registry_.is_live(slot)) {
        return k_no_queue;
    }
    return registry_.queue(slot).epoch.load(std::memory_order_acquire) == epoch ? slot : k_no_queue;
}

void Forwarder::lookup_routes(std::span<rte_mbuf* const> rx, std::span<Route> routes, std::span<QueueSlot> dest) {
    const std::size_t n = rx.size();
    std::array<PacketInfo, k_burst_max> info;
    std::array<FlowKey, k_burst_max> keys;
    std::array<std::uint32_t, k_burst_max> hashes;
    std::array<FlowHit, k_burst_max> hits;
    std::array<std::uint8_t, k_burst_max> pending; // packet indexes still to resolve
    unsigned nb_pending = 0;

    for (std::size_t i = 0; i < n; ++i) {
        info[i] = parse_packet(rx[i]);
        switch (info[i].kind) {
        case PacketKind::ipv4_flow:
            pending[nb_pending++] = static_cast<std::uint8_t>(i);
            routes[i] = Route::no_owner;
            break;
        case PacketKind::arp_reply:
            routes[i] = Route::arp_fanout;
            break;
        case PacketKind::malformed:
            routes[i] = Route::drop;
            break;
        default: // ARP requests, ICMP, fragments, other ethertypes: the receiving stack's business
            routes[i] = Route::local;
            break;
        }
    }

    // Three rounds, each a bulk lookup over what the previous left unresolved: the connection's
    // own rule, then a listener on its local address, then a wildcard (INADDR_ANY) listener.
    for (int round = 0; round < 3 && nb_pending != 0; ++round) {
        for (unsigned j = 0; j < nb_pending; ++j) {
            const PacketInfo& p = info[pending[j]];
            const FlowKey conn = FlowKey::connection(p.proto, p.dst_ip, p.dst_port, p.src_ip, p.src_port);
            keys[j] = round == 0 ? conn : round == 1 ? conn.listener_of() : conn.wildcard_listener_of();
            hashes[j] = flow_hash(keys[j]);
        }
        flows_.lookup_burst(std::span<const FlowKey>(keys.data(), nb_pending),
                            std::span<const std::uint32_t>(hashes.data(), nb_pending),
                            std::span<FlowHit>(hits.data(), nb_pending));
        unsigned still = 0;
        for (unsigned j = 0; j < nb_pending; ++j) {
            const unsigned i = pending[j];
            const FlowHit& hit = hits[j];
            if (hit.kind == FlowHitKind::none) {
                pending[still++] = static_cast<std::uint8_t>(i);
                continue;
            }
            QueueSlot owner = k_no_queue;
            if (hit.kind == FlowHitKind::connection) {
                owner = live_owner(hit.slot, hit.epoch);
                if (owner == k_no_queue) {
                    stats_.drop_owner_gone += 1; // stale rule of a dead owner: the local stack resets it
                }
            } else if (info[i].proto != 6 || info[i].is_tcp_syn()) {
                // A listener takes new connections only (a non-SYN without a connection rule is
                // stale: answered with RST by the local stack); UDP datagrams spread the same way.
                const std::uint64_t members = hit.mask & registry_.live_mask();
                if (members != 0) {
                    owner = FlowTable::pick_listener(members, self_, flow_hash(FlowKey::connection(
                                                                    info[i].proto, info[i].dst_ip, info[i].dst_port,
                                                                    info[i].src_ip, info[i].src_port)));
                }
            }
            if (owner == self_) {
                routes[i] = Route::local;
            } else if (owner != k_no_queue) {
                routes[i] = Route::forward;
                dest[i] = owner;
            }
        }
        nb_pending = still;
    }
}

void Forwarder::fan_out_arp(rte_mbuf* m) {
    // Every other live queue of our port learns the reply too (each stack keeps its own ARP
    // table). One indirect mbuf per receiver, tagged for it: reclaim sees one holder per mbuf.
    const PortEntry& port = registry_.port(port_);
    const std::uint64_t live = registry_.live_mask();
    for (unsigned q = 0; q < port.nb_queues; ++q) {
        const auto slot = static_cast<QueueSlot>(port.first_slot + q);
        if (slot == self_ || ((live >> slot) & 1u) == 0) {
            continue;
        }
        // Sheddable: a stack that misses this reply asks again (from L2 only above its reserve).
        rte_mbuf* clone = mbufs_.clone_sheddable(m, registry_.owner_tag(slot));
        if (clone == nullptr) {
            stats_.drop_alloc_failed += 1;
            continue;
        }
        if (peers_[slot].enqueue_burst(self_, std::span<rte_mbuf* const>(&clone, 1)) == 1) {
            peers_[slot].ring_doorbell();
            stats_.arp_fanout += 1;
        } else {
            free_one(clone);
            stats_.drop_inbox_full += 1;
        }
    }
}

void Forwarder::send_forwarded(std::span<rte_mbuf* const> rx, std::span<const Route> routes,
                               std::span<const QueueSlot> dest) {
    // Group by destination, keeping arrival order within each group (per-flow order holds).
    std::array<bool, k_burst_max> done{};
    std::array<rte_mbuf*, k_burst_max> group;
    for (std::size_t i = 0; i < rx.size(); ++i) {
        if (routes[i] != Route::forward || done[i]) {
            continue;
        }
        const QueueSlot to = dest[i];
        unsigned n = 0;
        for (std::size_t j = i; j < rx.size(); ++j) {
            if (routes[j] == Route::forward && !done[j] && dest[j] == to) {
                group[n++] = rx[j];
                done[j] = true;
            }
        }
        const std::span<rte_mbuf* const> burst(group.data(), n);
        set_owner_burst(burst, registry_.owner_tag(to));
        const unsigned sent = peers_[to].enqueue_burst(self_, burst);
        if (sent != 0) {
            peers_[to].ring_doorbell();
        }
        if (sent < n) {
            free_burst(burst.subspan(sent));
            stats_.drop_inbox_full += n - sent;
        }
        stats_.forwarded_out += sent;
    }
}

ForwardSplit Forwarder::forward_burst(std::span<rte_mbuf* const> rx, std::span<rte_mbuf*> local_out,
                                      std::span<rte_mbuf*> no_owner_out) {
    ForwardSplit split;
    std::array<Route, k_burst_max> routes;
    std::array<QueueSlot, k_burst_max> dest;
    while (!rx.empty()) {
        bool any_forward = false;
        const auto chunk = rx.first(std::min<std::size_t>(rx.size(), k_burst_max));
        rx = rx.subspan(chunk.size());
        lookup_routes(chunk, routes, dest);
        for (std::size_t i = 0; i < chunk.size(); ++i) {
            switch (routes[i]) {
            case Route::local:
                local_out[split.local++] = chunk[i];
                break;
            case Route::no_owner:
                no_owner_out[split.no_owner++] = chunk[i];
                break;
            case Route::drop:
                free_one(chunk[i]);
                stats_.drop_malformed += 1;
                break;
            case Route::arp_fanout:
                fan_out_arp(chunk[i]);
                local_out[split.local++] = chunk[i];
                break;
            case Route::forward:
                any_forward = true;
                break;
            }
        }
        if (any_forward) {
            send_forwarded(chunk, routes, dest);
        }
    }
    stats_.local += split.local;
    return split;
}

void Forwarder::park() {
    flows_.reader_offline(self_);
    registry_.queue(self_).parked.store(1, std::memory_order_seq_cst);
}

void Forwarder::unpark() {
    registry_.queue(self_).parked.store(0, std::memory_order_seq_cst);
    (void)flows_.reader_online(self_);
    mbufs_.refresh(); // the free counts are stale after a sleep
}

unsigned Forwarder::receive_forwarded(std::span<rte_mbuf*> out) {
    const unsigned n = own_inbox_.dequeue_burst(out);
    stats_.forwarded_in += n;
    return n;
}

void Forwarder::end_of_poll() {
    // The heartbeat is the manager's liveness check and reclaim's grace-period marker: once it
    // moved, this stack no longer holds a route decision made before a queue started draining.
    registry_.queue(self_).heartbeat.fetch_add(1, std::memory_order_release);
    flows_.reader_quiescent(self_);
    if (flows_.deferred_pending(self_) != 0) {
        (void)flows_.reclaim_deferred(self_);
    }
    mbufs_.refresh();
}

} // namespace gazelle::fabric
