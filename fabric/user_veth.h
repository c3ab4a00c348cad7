// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// user-veth: a software NIC in shared memory; user-vbridge: the L2 switch that is its only wire.
//
// A user-veth port is a registry port of kind user_veth with N hardware queues (queue slots
// first_slot .. first_slot + N - 1). The receive side of every queue slot is an Inbox (lanes =
// the registry's max_queues, one SPSC lane per *sending* queue slot) in the shared region
// "gz_uveth". There is no transmit ring and no switching thread: tx_burst() *is* the wire. The
// sender's own thread switches each frame inline:
//
//   destination MAC -> destination port(s) on the sender's bridge (PortEntry::bridge; unicast to a
//   port MAC, broadcast/multicast to every other port of the bridge, sharing one mbuf by reference
//   count; a frame to the sender's own MAC loops back) -> software RSS with the destination port's
//   key and RETA (fabric/softrss.h) -> destination slot = first_slot + reta queue -> owner tag of the
//   destination slot written -> enqueue on lane `src_slot` of that slot's rx inbox -> doorbell.
//
// Drops (the frame is freed, tx_burst always takes ownership of every frame):
//  - destination queue not owned (registry live mask): QueueStats::drop_owner_gone of the sender;
//  - destination lane full: QueueStats::drop_tx_full of the sender;
//  - shorter than an Ethernet header: QueueStats::drop_malformed of the sender;
//  - unicast to a MAC that is not on the bridge: UserVethStats::drop_unknown_mac of the sender
//    (QueueStats has no field for it).
// The manager keeps RETAs pointing at owned queues only (reta_update()), so in steady state no frame
// is stranded on (or dropped for) a queue nobody polls.
//
// Threading and process model:
//  - the primary creates the region (after adding every port to the registry; ports are fixed
//    from then on) and may destroy it; any process attaches;
//  - tx_burst(src_slot) only by the owner of src_slot (it is the only producer of lane src_slot
//    and the only writer of src_slot's statistics); rx_burst(slot) only by the owner of slot;
//  - one UserVeth object may serve several threads of a process when each uses its own slots;
//  - packet path: no allocation, lock or syscall, except the futex wake of a consumer that
//    announced it sleeps (Inbox::ring_doorbell). Frames are handled in bursts of k_burst_max,
//    grouped by destination slot (one enqueue and one doorbell per destination per burst), and the
//    order of frames between one sender slot and one destination slot is kept (so per flow).
//  - tx_burst() reads the live mask without a grace period: a queue that stops being live while
//    a sender is inside tx_burst may still receive that burst; the manager's reclaim must wait
//    until every sender passed a quiescent state before draining a dead owner's inbox.
//
// Flooded frames (broadcast/multicast): the first destination gets the frame itself, every other
// one an indirect mbuf (rte_pktmbuf_clone) sharing its data. Every receiver holds its own mbuf
// with its own owner tag, so reclaim of a dead receiver returns exactly its reference (indirect
// mbufs are detached, a direct one still referenced by clones only loses one reference).
// Receivers must treat a frame with rte_mbuf_refcnt_read() > 1, or an indirect one, as read-only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "conf/result.h"
#include "fabric/inbox.h"
#include "fabric/registry.h"
#include "fabric/softrss.h"
#include "fabric/types.h"

struct rte_mbuf;

namespace gazelle::fabric {

inline constexpr char k_user_veth_region[] = "gz_uveth";
inline constexpr std::uint32_t k_user_veth_layout = 1;


struct UserVethParams {
    // Slots of each producer lane of every rx inbox (power of two, 2 .. 65536). An inbox takes
    // lanes * lane_capacity * 8 bytes: 8 slots x 1024 = 64 KiB per queue.
    unsigned lane_capacity = 1024;
};

// Counters QueueStats has no field for. One block per sending queue slot, written only by its owner.
struct alignas(k_cache_line) UserVethStats {
    std::uint64_t drop_unknown_mac; // unicast to a MAC that is not on the sender's bridge
    std::uint64_t flood_frames;     // broadcast/multicast frames sent
    std::uint64_t flood_deliveries; // rx queues those reached (one mbuf each, clones after the first)
    std::uint64_t flood_no_peer;    // broadcast/multicast with no other port on the bridge (freed)
    std::uint64_t reserved_[4];
};
static_assert(sizeof(UserVethStats) == k_cache_line);

// Start of region "gz_uveth" (ABI). Written by the primary at creation; then only the stats blocks change.
struct alignas(k_cache_line) UserVethHeader {
    std::uint32_t lanes;         // producer lanes per inbox (= registry max_queues)
    std::uint32_t lane_capacity;
    std::uint32_t nb_inboxes;    // queue slots of user-veth ports
    std::uint32_t reserved_;
    std::uint64_t inbox_bytes;   // bytes per inbox, cache-line multiple
    // Offset of each queue slot's rx inbox from the start of this header; 0: not a user-veth queue.
    std::uint64_t inbox_offset[k_max_queues];
    UserVethStats stats[k_max_queues];
};
static_assert(offsetof(UserVethHeader, inbox_offset) == 24);
static_assert(offsetof(UserVethHeader, stats) == 9 * k_cache_line);
static_assert(sizeof(UserVethHeader) == 73 * k_cache_line);

// A process's view of all user-veth ports and the bridges between them. Cheap to move; owns nothing
// in shared memory (destroy() frees the region, primary only).
class UserVeth {
public:
    UserVeth() = default;

    // Primary: creates region "gz_uveth" with one rx inbox per queue slot of every user-veth port
    // of `registry`. Errors: EINVAL (lane_capacity not a power of two in range; a user-veth port
    // with a zero or multicast MAC, or two ports of one bridge with the same MAC), EEXIST, ENOMEM.
    static Result<UserVeth> create(const Registry& registry, const UserVethParams& params = {});
    // Any process: attaches. Errors: ENOENT (not created), EPROTO (other build, or a user-veth port
    // was added to the registry after the region was created), EINVAL (as create).
    static Result<UserVeth> attach(const Registry& registry);
    // Primary: frees the region (tests, manager shutdown). Nobody may use it any more.
    static void destroy();

    bool valid() const { return header_ != nullptr; }
    // True if `slot` is a queue of a user-veth port (has an rx inbox).
    bool has_queue(QueueSlot slot) const { return slot < k_max_queues && inboxes_[slot].valid(); }

    // Owner of `slot`: dequeues up to out.size() received frames (tagged for `slot` by their
    // sender) and counts them in QueueStats rx_packets/rx_bytes. 0 if slot is
    // not a user-veth queue.
    unsigned rx_burst(QueueSlot slot, std::span<rte_mbuf*> out);

    // Owner of `src_slot`: puts every frame on the wire (see the file comment) and returns how many
    // reached at least one rx queue (counted in QueueStats tx_packets/tx_bytes). Always takes
    // ownership of every frame: the others are freed and counted. src_slot must be a user-veth queue
    // (else everything is freed and counted as drop_owner_gone).
    unsigned tx_burst(QueueSlot src_slot, std::span<rte_mbuf* const> pkts);

    // The rx inbox of `slot`, for its owner's doorbell (prepare_sleep/wait/finish_sleep) and for
    // monitoring. Precondition: has_queue(slot).
    Inbox& rx_inbox(QueueSlot slot) { return inboxes_[slot]; }
    const UserVethStats& stats(QueueSlot slot) const { return header_->stats[slot]; }
    const UserVethHeader& header() const { return *header_; }

private:
    // Process-local copy of what the packet path needs per port (ports are fixed once created).
    struct PortView {
        std::uint64_t mac = 0; // 6 bytes, in wire order from the lowest byte
        RssKey key;
        std::uint16_t first_slot = 0;
        std::uint16_t nb_queues = 0;
        std::uint8_t bridge = 0;
        bool user_veth = false;
    };

    static Result<UserVeth> make_view(const Registry& registry, UserVethHeader* header);
    unsigned tx_chunk(QueueSlot src_slot, std::span<rte_mbuf* const> pkts);
    QueueSlot rss_slot(unsigned port, const RssInput& input) const;

    Registry registry_;
    UserVethHeader* header_ = nullptr;
    std::array<Inbox, k_max_queues> inboxes_{};
    std::array<PortView, k_max_ports> ports_{};
    unsigned nb_ports_ = 0;
};

// Manager: re-points the RETA of user-veth port `port` at the queues that are live in `live_mask`
// (a registry slot mask, e.g. Registry::live_mask() after claim(), or without a leaving queue
// before begin_drain() so that no frame is dropped for it), spreading entries evenly and moving as
// few as possible (rebalance_reta()). Returns the number of entries changed (0: already fine).
// Errors: EINVAL (no such port, or not a user-veth port: an ethdev's RETA is the NIC's), ENOENT
// (no queue of the port is live: the RETA is left as it is, frames keep going to the old queues
// and are dropped as drop_owner_gone until one is claimed).
Result<unsigned> reta_update(const Registry& registry, unsigned port, std::uint64_t live_mask);

} // namespace gazelle::fabric
