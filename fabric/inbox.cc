// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/inbox.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gazelle::fabric {

namespace {

std::size_t header_bytes(unsigned lanes) { return sizeof(InboxHeader) + std::size_t{lanes} * sizeof(InboxLane); }

// FUTEX_WAIT/WAKE without FUTEX_PRIVATE_FLAG: the word lives in a shared (hugepage file) mapping
// and the waiter and waker are different processes.
long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) {
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}

} // namespace

std::size_t Inbox::bytes(unsigned lanes, unsigned lane_capacity) {
    return header_bytes(lanes) + std::size_t{lanes} * lane_capacity * sizeof(std::uint64_t);
}

Inbox Inbox::format(void* memory, unsigned lanes, unsigned lane_capacity) {
    // 1 << lane must fit the 64-bit mask; index & lane_mask needs a power of two.
    if (lanes == 0 || lanes > 64 || !std::has_single_bit(lane_capacity)) {
        return Inbox{};
    }
    std::memset(memory, 0, bytes(lanes, lane_capacity));
    auto* header = static_cast<InboxHeader*>(memory);
    header->lanes = lanes;
    header->lane_capacity = lane_capacity;
    header->lane_mask = lane_capacity - 1;
    return Inbox(memory);
}

InboxLane* Inbox::lane_at(unsigned lane) const {
    return reinterpret_cast<InboxLane*>(reinterpret_cast<char*>(header_) + sizeof(InboxHeader)) + lane;
}

std::uint64_t* Inbox::slots_of(unsigned lane) const {
    auto* base = reinterpret_cast<std::uint64_t*>(reinterpret_cast<char*>(header_) + header_bytes(header_->lanes));
    return base + std::size_t{lane} * header_->lane_capacity;
}

unsigned Inbox::enqueue_burst(unsigned lane, std::span<rte_mbuf* const> pkts) {
    if (lane >= header_->lanes) { // the line is loaded anyway (capacity, mask)
        return 0;
    }
    InboxLane* l = lane_at(lane);
    std::uint64_t* slots = slots_of(lane);
    const std::uint32_t mask = header_->lane_mask;
    const std::uint32_t tail = l->tail.load(std::memory_order_relaxed); // only we write it
    const std::uint32_t head = l->head.load(std::memory_order_acquire);  // slots before head are free
    const std::uint32_t room = header_->lane_capacity - (tail - head);
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(room, pkts.size()));
    if (n == 0) {
        return 0;
    }
    for (std::uint32_t i = 0; i < n; ++i) {
        slots[(tail + i) & mask] = reinterpret_cast<std::uintptr_t>(pkts[i]);
    }
    l->tail.store(tail + n, std::memory_order_release);
    // Publish-then-flag pairs with the consumer's clear-then-recheck: with the fence, either the
    // consumer's re-check sees the new tail or we see its cleared bit and set it again.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint64_t bit = std::uint64_t{1} << lane;
    if ((header_->nonempty.load(std::memory_order_relaxed) & bit) == 0) {
        header_->nonempty.fetch_or(bit, std::memory_order_seq_cst);
    }
    return n;
}

void Inbox::resync_nonempty() {
    synced_ = true;
    std::uint64_t bits = 0;
    for (unsigned lane = 0; lane < header_->lanes; ++lane) {
        if (lane_pending(lane) != 0) {
            bits |= std::uint64_t{1} << lane;
        }
    }
    if (bits != 0) {
        header_->nonempty.fetch_or(bits, std::memory_order_seq_cst);
    }
}

unsigned Inbox::dequeue_burst(std::span<rte_mbuf*> out) {
    if (!synced_) [[unlikely]] {
        resync_nonempty();
    }
    unsigned got = 0;
    std::uint64_t todo = header_->nonempty.load(std::memory_order_acquire);
    if (todo == 0) {
        return 0;
    }
    // Rotate so that the lane after the one served last comes first (fairness between producers).
    const unsigned start = next_lane_ & 63u;
    todo = std::rotr(todo, static_cast<int>(start));
    const std::uint32_t mask = header_->lane_mask;
    while (todo != 0 && got < out.size()) {
        const unsigned lane = (static_cast<unsigned>(std::countr_zero(todo)) + start) & 63u;
        todo &= todo - 1;
        InboxLane* l = lane_at(lane);
        std::uint64_t* slots = slots_of(lane);
        const std::uint32_t head = l->head.load(std::memory_order_relaxed);
        const std::uint32_t tail = l->tail.load(std::memory_order_acquire);
        std::uint32_t pos = head;
        // A slot holds 0 only where a consumer died between taking it and storing head: skip it
        // (branch-free, never the case in normal operation) and go on until `out` is full, so a
        // reclaimer never gets 0 back while entries remain.
        while (pos != tail && got < out.size()) {
            const std::uint32_t idx = pos & mask;
            const std::uint64_t v = slots[idx];
            slots[idx] = 0;
            out[got] = reinterpret_cast<rte_mbuf*>(v);
            got += v != 0 ? 1u : 0u;
            ++pos;
        }
        l->head.store(pos, std::memory_order_release);
        next_lane_ = lane + 1;
        if (pos == tail) {
            // Looks empty: clear the flag, then re-check so a concurrent publish is never lost.
            const std::uint64_t bit = std::uint64_t{1} << lane;
            header_->nonempty.fetch_and(~bit, std::memory_order_seq_cst);
            if (l->tail.load(std::memory_order_seq_cst) != pos) {
                header_->nonempty.fetch_or(bit, std::memory_order_seq_cst);
            }
        }
    }
    return got;
}

std::uint32_t Inbox::lane_pending(unsigned lane) const {
    if (lane >= header_->lanes) {
        return 0;
    }
    const InboxLane* l = lane_at(lane);
    return l->tail.load(std::memory_order_acquire) - l->head.load(std::memory_order_acquire);
}

std::uint64_t Inbox::pending() const {
    std::uint64_t total = 0;
    for (unsigned lane = 0; lane < header_->lanes; ++lane) {
        total += lane_pending(lane);
    }
    return total;
}

std::uint32_t Inbox::prepare_sleep() {
    const std::uint32_t seen = header_->doorbell.load(std::memory_order_acquire);
    header_->sleeping.store(1, std::memory_order_seq_cst);
    // Orders the announcement before the caller's re-check, which reads the mask and tails with
    // acquire only: either the re-check sees a producer's publish or that producer's seq_cst
    // load of `sleeping` (after its own fence) sees 1 and rings.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return seen;
}

void Inbox::wait(std::uint32_t seen, unsigned timeout_usec) {
    const timespec timeout{static_cast<time_t>(timeout_usec / 1000000u),
                           static_cast<long>(timeout_usec % 1000000u) * 1000L};
    (void)futex(&header_->doorbell, FUTEX_WAIT, seen, &timeout); // EAGAIN/ETIMEDOUT/EINTR all mean "poll again"
}

void Inbox::finish_sleep() { header_->sleeping.store(0, std::memory_order_relaxed); }

void Inbox::ring_doorbell() {
    if (header_->sleeping.load(std::memory_order_seq_cst) != 0) {
        header_->doorbell.fetch_add(1, std::memory_order_seq_cst);
        (void)futex(&header_->doorbell, FUTEX_WAKE, INT_MAX, nullptr);
    }
}

unsigned Inbox::enqueue_unpublished_for_test(unsigned lane, std::span<rte_mbuf* const> pkts) {
    if (lane >= header_->lanes) {
        return 0;
    }
    InboxLane* l = lane_at(lane);
    std::uint64_t* slots = slots_of(lane);
    const std::uint32_t tail = l->tail.load(std::memory_order_relaxed);
    const std::uint32_t head = l->head.load(std::memory_order_acquire);
    const std::uint32_t room = header_->lane_capacity - (tail - head);
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(room, pkts.size()));
    for (std::uint32_t i = 0; i < n; ++i) {
        slots[(tail + i) & header_->lane_mask] = reinterpret_cast<std::uintptr_t>(pkts[i]);
    }
    return n;
}

unsigned Inbox::salvage_unpublished(unsigned lane, std::span<rte_mbuf*> out) {
    if (lane >= header_->lanes) {
        return 0;
    }
    InboxLane* l = lane_at(lane);
    std::uint64_t* slots = slots_of(lane);
    const std::uint32_t mask = header_->lane_mask;
    const std::uint32_t tail = l->tail.load(std::memory_order_acquire);
    const std::uint32_t head = l->head.load(std::memory_order_acquire);
    // Slots from tail up to head + capacity were free when the producer last looked; any non-zero
    // one was written and never published.
    if (tail != head) {
        header_->nonempty.fetch_or(std::uint64_t{1} << lane, std::memory_order_seq_cst);
    }
    unsigned got = 0;
    for (std::uint32_t i = tail; i != head + header_->lane_capacity && got < out.size(); ++i) {
        const std::uint32_t idx = i & mask;
        if (slots[idx] != 0) {
            out[got++] = reinterpret_cast<rte_mbuf*>(slots[idx]);
            slots[idx] = 0;
        }
    }
    return got;
}

} // namespace gazelle::fabric
