// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Inbox: a multi-producer, single-consumer queue of mbuf pointers in shared memory, built as one
// single-producer/single-consumer lane per producer queue slot ("logically MPSC, physically a
// lane per producer").
//
// Why not an rte_ring in MP mode: measured on these 2-core machines (doc/fabric.md, and
// ../shared/research/dpdk-probes.md Q3/Q6), a multi-producer rte_ring collapses to < 1 Mobj/s when
// two producers share a CPU (a producer preempted between head move and tail update makes the
// others spin for their whole time slice), and a producer killed mid-enqueue hangs every other
// producer for good (RTS/HTS too). With a lane per producer, a preempted or dead producer only
// stalls its own lane, and the consumer's cost per poll is one load per non-empty lane.
//
// Threading and process model:
//  - lane p is written only by the stack that owns queue slot p (one thread, one process);
//  - the inbox is read only by the owner of the inbox's queue slot, or by the manager's reclaim
//    once that owner is dead and no producer can reach the inbox any more (queue draining and a
//    grace period passed);
//  - the layout is ABI: fixed-size, no pointers (slots hold mbuf addresses, which are the same in
//    every DPDK process because hugepages are mapped at the same virtual addresses).
//
// Nothing here blocks or spins: a full lane rejects the rest of a burst (the producer frees and
// counts), an empty inbox returns 0. The only syscall is the doorbell: a futex wake, made only when
// the consumer announced that it is about to sleep.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fabric/types.h"

struct rte_mbuf;

namespace gazelle::fabric {

// One SPSC lane. Indices are free-running 32-bit counters; capacity is a power of two.
// Consumed slots are cleared to 0 so that, after a producer died between writing slots and
// publishing them, reclaim can find the unpublished mbufs (non-zero slots at or after `tail`).
struct alignas(k_cache_line) InboxLane {
    // Producer's line: `tail` is published with release after the slots are written.
    alignas(k_cache_line) std::atomic<std::uint32_t> tail;
    std::uint32_t producer_pad_[15];
    // Consumer's line.
    alignas(k_cache_line) std::atomic<std::uint32_t> head;
    std::uint32_t consumer_pad_[15];
};
static_assert(sizeof(InboxLane) == 2 * k_cache_line);

struct alignas(k_cache_line) InboxHeader {
    std::uint32_t lanes;         // number of producer lanes (= max queue slots)
    std::uint32_t lane_capacity; // slots per lane, power of two
    std::uint32_t lane_mask;
    std::uint32_t reserved_;
    // Bit p set: lane p may hold entries. Producers set it after publishing; the consumer clears it
    // when it finds the lane empty and then re-checks (see Inbox::dequeue_burst).
    alignas(k_cache_line) std::atomic<std::uint64_t> nonempty;
    // Doorbell: the consumer sets `sleeping` and waits on `doorbell` (a futex word); producers that
    // see `sleeping` bump `doorbell` and wake it.
    alignas(k_cache_line) std::atomic<std::uint32_t> doorbell;
    std::atomic<std::uint32_t> sleeping;
};
static_assert(sizeof(InboxHeader) == 3 * k_cache_line);

// A view over one inbox in shared memory: header, `lanes` InboxLane, then lanes * capacity slots.
// Cheap to copy; owns nothing.
class Inbox {
public:
    Inbox() = default;
    explicit Inbox(void* memory) : header_(static_cast<InboxHeader*>(memory)) {}

    // Bytes needed for an inbox with `lanes` lanes of `lane_capacity` (power of two) slots.
    static std::size_t bytes(unsigned lanes, unsigned lane_capacity);
    // Formats memory (bytes() long, cache-line aligned). Only the creator (primary) calls this.
    // Returns an invalid Inbox (valid() false, memory untouched) unless 1 <= lanes <= 64 (the
    // non-empty mask has 64 bits) and lane_capacity is a power of two.
    static Inbox format(void* memory, unsigned lanes, unsigned lane_capacity);

    bool valid() const { return header_ != nullptr; }
    unsigned lanes() const { return header_->lanes; }
    unsigned lane_capacity() const { return header_->lane_capacity; }

    // Producer side (the owner of queue slot `lane` only). Enqueues as many of `pkts` as fit and
    // returns that count; the caller keeps ownership of the rest (frees and counts them). A lane
    // outside the inbox accepts nothing. pkts must not contain nullptr (0 marks a free slot).
    unsigned enqueue_burst(unsigned lane, std::span<rte_mbuf* const> pkts);

    // Consumer side. Dequeues up to out.size() mbufs, visiting non-empty lanes round-robin
    // (starting after the lane served last), and returns the count.
    // The first call on a view made from memory (not a copy of a view that has polled) also
    // re-derives the non-empty mask from the lanes, once, O(lanes): a consumer taking over from a
    // dead one (the manager's reclaim) thereby finds lanes whose bit the dead consumer cleared
    // without getting to its re-check. Slots a consumer killed inside this call had already taken
    // hold 0 and are skipped (the count may be less than the entries passed over; 0 still means
    // nothing is left).
    unsigned dequeue_burst(std::span<rte_mbuf*> out);

    // Entries published and not yet consumed, over all lanes (monitoring; racy by nature).
    std::uint64_t pending() const;
    std::uint32_t lane_pending(unsigned lane) const;

    // Doorbell, for an idle consumer. prepare_sleep() announces the sleep and returns the doorbell
    // value to wait on; the consumer must then re-check the inbox (and anything else it polls)
    // before calling wait(), which returns when a producer rang, the timeout expired or a signal
    // arrived. finish_sleep() withdraws the announcement.
    std::uint32_t prepare_sleep();
    void wait(std::uint32_t seen, unsigned timeout_usec);
    void finish_sleep();
    // Producer side, after enqueue_burst(): wakes a sleeping consumer (a syscall only then).
    void ring_doorbell();
    // The doorbell's futex word, for a consumer that sleeps on several inboxes at once
    // (futex_waitv): call prepare_sleep() on each, wait on their words with the values it
    // returned, then finish_sleep() on each.
    std::atomic<std::uint32_t>* doorbell_word() const { return header_ != nullptr ? &header_->doorbell : nullptr; }

    // --- reclaim, manager only ---------------------------------------------------------------
    // Producer `lane` is dead: returns (through out, up to out.size()) the mbufs it wrote but never
    // published, clearing their slots. Call repeatedly until it returns 0. Safe while the consumer
    // keeps polling (it only touches published slots). Also sets the lane's non-empty bit when it
    // holds published entries: the producer may have died between publishing and flagging, which
    // would leave them invisible until the lane's next enqueue.
    unsigned salvage_unpublished(unsigned lane, std::span<rte_mbuf*> out);
    // A new owner of the dead producer's slot simply continues at `tail`: salvaged slots are 0
    // again and published entries stay readable by the consumer.
    // The consumer (owner of the inbox) is dead and unreachable: the caller acts as consumer with
    // a fresh view (Inbox(memory)) and dequeue_burst() until it returns 0. The dead consumer may
    // have left `sleeping` set; producers then make a futex syscall per ring_doorbell() until the
    // next consumer's finish_sleep().

    // --- tests only ---------------------------------------------------------------------------
    // Writes pkts into the lane's free slots exactly as enqueue_burst() does but publishes nothing
    // (no tail store, no flag): the state a producer leaves when it dies inside enqueue_burst().
    // Returns the count written. Lets tests exercise salvage_unpublished() deterministically.
    unsigned enqueue_unpublished_for_test(unsigned lane, std::span<rte_mbuf* const> pkts);

private:
    InboxLane* lane_at(unsigned lane) const;
    std::uint64_t* slots_of(unsigned lane) const;

    void resync_nonempty();

    InboxHeader* header_ = nullptr;
    unsigned next_lane_ = 0; // consumer-private round-robin cursor
    bool synced_ = false;    // consumer-private: the mask was re-derived by this view
};

} // namespace gazelle::fabric
