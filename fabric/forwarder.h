// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The forwarding step: what a stack does with a burst it received on its NIC queue.
//
// Every packet is classified (parse + bulk flow-table lookup); the stack keeps its own, hands the
// mis-steered ones zero-copy to their owner's forwarding inbox (the owner tag moves with them),
// answers ARP requests itself and shares ARP replies with every other live queue of the port (one
// indirect mbuf per queue referencing the same data, so reclaim still sees one tag per holder).
// Packets nobody owns (no rule, no listener) go back to the caller, whose stack answers them
// (TCP RST, ICMP port unreachable) or drops them.
//
// There is no central node: the same code runs in every stack, on the queue the NIC chose.
//
// Threading: one Forwarder per stack thread (it keeps per-queue cursors); it is the flow table's
// QSBR reader for its queue slot. Packet path: no locks, no allocation (except ARP reply clones),
// no syscalls (except a doorbell futex wake when the receiving stack sleeps); counters once per
// burst in the queue's statistics block.

#include <cstdint>
#include <span>

#include "conf/result.h"
#include "fabric/flow_table.h"
#include "fabric/inbox.h"
#include "fabric/mbuf.h"
#include "fabric/registry.h"
#include "fabric/types.h"

struct rte_mbuf;
struct rte_mempool;

namespace gazelle::fabric {

inline constexpr char k_forward_region[] = "gz_fwd";

// The forwarding inboxes, one per queue slot (lanes = producers = every queue slot).
class ForwardInboxes {
public:
    ForwardInboxes() = default;
    static Result<ForwardInboxes> create(const Registry& registry, unsigned lane_capacity); // primary
    static Result<ForwardInboxes> attach(const Registry& registry);                         // secondaries
    static void destroy();

    bool valid() const { return base_ != nullptr; }
    // A fresh view (own round-robin cursor) of slot's inbox.
    Inbox of(QueueSlot slot) const;

    struct Layout; // header of region gz_fwd, then one inbox per slot

private:
    explicit ForwardInboxes(Layout* layout);
    Layout* base_ = nullptr;
};

struct ForwardSplit {
    unsigned local = 0;     // written to local_out
    unsigned no_owner = 0;  // written to no_owner_out
};

class Forwarder {
public:
    // `mbufs`: where this queue allocates (ARP reply clones are sheddable work, fabric/mbuf.h).
    // `self` must be owned by the caller.
    Forwarder(Registry registry, FlowTable flows, ForwardInboxes inboxes, QueueSlot self, MbufSource mbufs);
    // Clones from `pool` only (no L2 pool).
    Forwarder(Registry registry, FlowTable flows, ForwardInboxes inboxes, QueueSlot self, rte_mempool* pool);

    // Takes ownership of every packet of `rx` (at most k_burst_max): each ends up in local_out,
    // in no_owner_out, in another queue's inbox, or freed and counted. Both outputs must have room
    // for rx.size() packets.
    ForwardSplit forward_burst(std::span<rte_mbuf* const> rx, std::span<rte_mbuf*> local_out,
                               std::span<rte_mbuf*> no_owner_out);

    // Packets other stacks forwarded to us (already tagged ours).
    unsigned receive_forwarded(std::span<rte_mbuf*> out);

    // End of one poll-loop iteration: heartbeat, QSBR quiescent state, deferred rule frees, the
    // mbuf source's free counts.
    void end_of_poll();
    // Around sleeping on the doorbell (and before the first / after the last poll): a parked
    // stack holds no routing decision and no flow-table reference, so neither reclaim's grace
    // period nor the table's QSBR waits for it. The constructor leaves the stack parked.
    void park();
    void unpark();

    Inbox& inbox() { return own_inbox_; }
    // The stack's mbuf allocations (tx) go through this too, so one watermark state per queue.
    MbufSource& mbufs() { return mbufs_; }
    QueueSlot slot() const { return self_; }

private:
    // Where each packet of the burst goes.
    enum class Route : std::uint8_t { local, no_owner, forward, drop, arp_fanout };
    void lookup_routes(std::span<rte_mbuf* const> rx, std::span<Route> routes, std::span<QueueSlot> dest);
    void fan_out_arp(rte_mbuf* m);
    void send_forwarded(std::span<rte_mbuf* const> rx, std::span<const Route> routes,
                        std::span<const QueueSlot> dest);
    QueueSlot live_owner(QueueSlot slot, Epoch epoch) const;

    Registry registry_;
    FlowTable flows_;
    ForwardInboxes inboxes_;
    Inbox own_inbox_;
    Inbox peers_[k_max_queues];
    QueueSlot self_;
    std::uint16_t port_;
    QueueStats& stats_;
    MbufSource mbufs_;
};

} // namespace gazelle::fabric
