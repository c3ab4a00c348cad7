// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The fabric as one object: every shared structure a primary creates, or a secondary attaches
// to, and the manager's two ownership operations on queues — claim and reclaim.
//
//   registry        who owns which queue slot (fabric/registry.h)
//   flow table      rules: connections and listeners -> queue slots (fabric/flow_table.h)
//   forward inboxes one MPSC inbox per slot for mis-steered packets (fabric/forwarder.h)
//   user-veth       software NIC rx queues, when the config has user-veth ports (fabric/user_veth.h)
//   mbuf pools      one per slot, "gz_mbuf_<slot>" (L1), and the fabric's L2 pool "gz_mbuf_l2"
//                   (fabric/mbuf.h MbufSource), named in the registry
//   memp registry   hugepage pools stacks create for lwIP, by owner (fabric/memp_registry.h)
//
// Creators own, attachers borrow: a Fabric made by create() frees everything on destruction; one
// made by attach() frees nothing.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/result.h"
#include "fabric/flow_table.h"
#include "fabric/forwarder.h"
#include "fabric/mbuf.h"
#include "fabric/memp_registry.h"
#include "fabric/registry.h"
#include "fabric/user_veth.h"

struct rte_mempool;

namespace gazelle::fabric {

struct FabricParams {
    unsigned max_queues = 16;
    unsigned forward_lane_capacity = 1024; // per producer lane of each forwarding inbox
    unsigned rx_lane_capacity = 1024;      // per producer lane of each user-veth rx queue
    FlowTableConfig flows;
    MbufPoolParams pool;
    // The L2 pool: one for the whole fabric (0 = none: every stack allocates from its L1 pool
    // only). One pool rather than one per port: it is a reserve for whichever queues run short,
    // and the config sizes it once (fabric.l2_pool_mbufs); per port it would be sized, and sit
    // idle, N times over.
    unsigned l2_pool_mbufs = 0;
    // Below this share of free mbufs a pool is low: L1 -> allocate from L2; L2 -> shed sheddable
    // work (fabric.l2_low_watermark_percent).
    unsigned low_watermark_percent = 10;
    std::vector<PortSpec> ports;
    // How long reclaim waits for every live stack to pass a quiescent point (a stack that is
    // hung does not block reclaim forever: the report says the wait timed out).
    std::chrono::microseconds grace_timeout{200000};
};

// What one reclaim did, for the manager's log line and its D-Bus signal.
struct ReclaimReport {
    QueueSlot slot = k_no_queue;
    std::int32_t pid = 0;
    Epoch epoch = 0;
    bool was_owned = false;        // false: nothing to do (reclaim is idempotent)
    bool grace_timed_out = false;  // a live stack did not pass a quiescent point in time
    unsigned rules = 0;            // connection rules deleted
    unsigned listeners = 0;        // listener sets left
    unsigned memp_pools = 0;
    std::uint64_t memp_bytes = 0;
    unsigned resteered = 0;        // frames for other queues found in its inboxes, handed to their owners
    unsigned inbox_drained = 0;    // forwarded to it, never consumed (its own: freed)
    unsigned rx_drained = 0;       // in its user-veth rx queue (its own: freed)
    unsigned salvaged = 0;         // written by it into other inboxes, never published
    unsigned cache_flushed = 0;    // in its lcore's mempool caches
    unsigned mbufs_returned = 0;   // tagged for it anywhere else (in hand, in flight)
    unsigned adoptions = 0;        // adoption leases it held on free queues, given back
    unsigned l2_returned = 0;      // of cache_flushed + mbufs_returned: the L2 pool's
    double usec = 0;
};

std::string describe(const ReclaimReport& report);

class Fabric {
public:
    static Result<std::unique_ptr<Fabric>> create(const FabricParams& params); // EAL primary
    static Result<std::unique_ptr<Fabric>> attach();                            // EAL secondary
    ~Fabric();
    Fabric(const Fabric&) = delete;
    Fabric& operator=(const Fabric&) = delete;

    Registry& registry() { return registry_; }
    FlowTable& flows() { return flows_; }
    ForwardInboxes& forward_inboxes() { return inboxes_; }
    UserVeth& user_veth() { return user_veth_; }
    MempRegistry& memps() { return memps_; }
    rte_mempool* pool(QueueSlot slot) const { return slot < k_max_queues ? pools_[slot] : nullptr; }
    rte_mempool* l2_pool() const { return l2_pool_; } // nullptr: the fabric has no L2 pool
    // Where the stack of `slot` allocates: its L1 pool, the L2 pool, the registry's reserves.
    MbufSource mbuf_source(QueueSlot slot) const;

    // Manager: gives `slot` to (pid, lcore), re-points the port's RETA at it. EBUSY when owned.
    Result<Epoch> claim_queue(QueueSlot slot, std::int32_t pid, std::uint16_t lcore_id);
    // Manager: the owner left or died. In order: stop traffic to the queue (draining, RETA), wait
    // for every live stack to pass a quiescent point, take its QSBR reader offline, delete its
    // rules and listener memberships, free its memp pools, drain its inboxes and rx queue, salvage
    // what it wrote but never published, flush its lcore caches and return every mbuf tagged for
    // it, give back the adoption leases it held (another live stack adopts those queues), then
    // free the queue. Idempotent. Only for an owner that is dead or has stopped its stack.
    Result<ReclaimReport> reclaim_queue(QueueSlot slot);

    // Manager, leaving while apps still run on the fabric: the destructor then leaves every shared
    // object in place. Freeing them would make EAL unmap their pages in every secondary (memory
    // hot-unplug is synchronous across processes) under stacks that are still polling: they
    // crash. The hugepages return to the system when the last process exits.
    void leave_objects_to_survivors() { owner_ = false; }

private:
    Fabric() = default;
    void wait_grace(QueueSlot leaving, ReclaimReport& report);
    void resteer(QueueSlot dead, ReclaimReport& report);

    bool owner_ = false;
    std::chrono::microseconds grace_timeout_{200000};
    Registry registry_;
    FlowTable flows_;
    ForwardInboxes inboxes_;
    UserVeth user_veth_;
    MempRegistry memps_;
    rte_mempool* pools_[k_max_queues] = {};
    rte_mempool* l2_pool_ = nullptr;
};

} // namespace gazelle::fabric
