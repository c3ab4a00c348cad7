// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Mbuf ownership: per-queue pools and the owner tag in every mbuf's private area.
//
// The rule (doc/fabric.md "Ownership"): whoever holds an rte_mbuf* is responsible for it, and the
// tag says who that is, so the manager can return a dead owner's mbufs to their pools.
//  - set on alloc (tag = the allocating queue slot and its epoch);
//  - rewritten *before* every hand-off: enqueue to another queue's inbox or user-veth rx queue ->
//    the receiver's tag; rte_eth_tx_burst to a PMD -> empty (the PMD frees it);
//  - cleared before free.
// A stale tag on a free mbuf would make reclaim put it back twice, so every free on the packet
// path goes through free_burst()/free_one() here.
//
// Pools are created by the primary ("gz_mbuf_<slot>", one per queue slot: the L1 pools; and
// "gz_mbuf_l2", one for the fabric: the L2 pool, see MbufSource) and looked up by secondaries.
// Frees from any EAL lcore go to that lcore's cache of the mbuf's own pool; lcore ids are unique
// fabric-wide (two processes with one lcore id would share, and corrupt, a cache).

#include <cstdint>
#include <span>
#include <string>

#include <rte_mbuf.h>

#include "conf/result.h"
#include "fabric/registry.h"
#include "fabric/types.h"

struct rte_mempool;

namespace gazelle::fabric {

// Private area of every fabric mbuf. The stack layer places its lwIP pbuf_custom after the tag
// (zero-copy rx: the pbuf refers to the mbuf's data and freeing it frees the mbuf).
struct MbufPriv {
    std::uint64_t owner;             // OwnerTag::value
    std::uint64_t reserved_;
    alignas(16) std::uint8_t stack_area[48];
};
inline constexpr std::uint16_t k_mbuf_priv_size = sizeof(MbufPriv);
static_assert(k_mbuf_priv_size % RTE_MBUF_PRIV_ALIGN == 0);

inline MbufPriv* mbuf_priv(rte_mbuf* m) { return static_cast<MbufPriv*>(rte_mbuf_to_priv(m)); }
inline OwnerTag mbuf_owner(rte_mbuf* m) {
    return OwnerTag{__atomic_load_n(&mbuf_priv(m)->owner, __ATOMIC_RELAXED)};
}
// Relaxed: the hand-off itself (ring publish, tx burst) orders the tag before the next owner reads it.
inline void set_mbuf_owner(rte_mbuf* m, OwnerTag tag) { __atomic_store_n(&mbuf_priv(m)->owner, tag.value, __ATOMIC_RELAXED); }

// Sets the tag of a whole burst (chained segments too: reclaim returns each segment on its own).
inline void set_owner_burst(std::span<rte_mbuf* const> pkts, OwnerTag tag) {
    for (rte_mbuf* m : pkts) {
        for (rte_mbuf* seg = m; seg != nullptr; seg = seg->next) {
            set_mbuf_owner(seg, tag);
        }
    }
}

// Clears the tags and frees the burst.
inline void free_burst(std::span<rte_mbuf* const> pkts) {
    set_owner_burst(pkts, OwnerTag{});
    rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(pkts.data()), static_cast<unsigned>(pkts.size()));
}
inline void free_one(rte_mbuf* m) { free_burst(std::span<rte_mbuf* const>(&m, 1)); }

// Allocates a burst from `pool` and tags it for `owner`; returns the count (all or nothing).
inline unsigned alloc_burst(rte_mempool* pool, std::span<rte_mbuf*> out, OwnerTag owner) {
    if (rte_pktmbuf_alloc_bulk(pool, out.data(), static_cast<unsigned>(out.size())) != 0) {
        return 0;
    }
    set_owner_burst(out, owner);
    return static_cast<unsigned>(out.size());
}

std::string mbuf_pool_name(QueueSlot slot);
inline constexpr char k_l2_pool_name[] = "gz_mbuf_l2";

struct MbufPoolParams {
    unsigned mbufs = 8191;       // 2^n - 1 is the optimum for the ring-backed mempool
    unsigned cache_size = 256;   // per-lcore cache; <= RTE_MEMPOOL_CACHE_MAX_SIZE and mbufs / 1.5
    std::uint16_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE;
};

// Primary: creates the pool of `slot`. Secondary: looks it up.
Result<rte_mempool*> create_mbuf_pool(QueueSlot slot, const MbufPoolParams& params);
Result<rte_mempool*> lookup_mbuf_pool(QueueSlot slot);
// Primary: the fabric's L2 pool (same data room and cache size as the L1 pools). Secondary: looks
// up the pool the registry names.
Result<rte_mempool*> create_l2_pool(unsigned mbufs, const MbufPoolParams& params);
Result<rte_mempool*> lookup_l2_pool(const L2PoolEntry& entry);

// Free mbufs of `pool` as one stack can count them cheaply: the pool's ring plus the calling
// lcore's own cache. Other lcores' caches (at most 1.5 x cache_size each) are not walked, so this
// is a lower bound: watermark tests built on it err towards "low". rte_mempool_avail_count()
// walks all RTE_MAX_LCORE caches, too slow for every poll.
unsigned free_estimate(const rte_mempool* pool);

// Where a stack's mbufs come from: its queue's own pool (L1) while more than the L1 reserve of
// it is free, else the fabric's L2 pool. The L1 reserve is what the NIC's rx ring refills from
// (an ethdev driver allocates rx mbufs from L1 behind our back): tx that ate it would starve
// receive, and with it the ACKs that free tx mbufs. Two kinds of allocation:
//  - alloc(): frames that must go out (TCP, UDP, ICMP): L1 above its reserve, else L2 down to
//    empty, else a failure (QueueStats::l2_alloc_failed; the caller returns ERR_MEM to lwIP);
//  - alloc_sheddable() / clone_sheddable(): work the fabric can refuse (ARP requests and
//    replies, ARP reply fan-out clones: lost ARP is retried, a lost TCP segment costs an RTO):
//    L1 above its reserve, else L2 above its own reserve, else shed (QueueStats::l2_shed).
// Cost: the free counts are read once per poll (refresh()); in between each allocation spends a
// budget computed from them (a plain counter), and a failed get moves on at once.
// Without an L2 pool (l2 == nullptr) everything comes from L1, down to empty.
// Threading: one MbufSource per stack thread (it writes that queue's statistics block).
class MbufSource {
public:
    MbufSource() = default;
    MbufSource(rte_mempool* l1, rte_mempool* l2, unsigned l1_reserve, unsigned l2_reserve, QueueStats* stats);

    // Once per poll-loop iteration: re-reads the free counts (lower bounds, see free_estimate).
    void refresh();

    // nullptr when both levels are exhausted (counted). Tagged for `owner`.
    rte_mbuf* alloc(OwnerTag owner);
    rte_mbuf* alloc_sheddable(OwnerTag owner);
    // An indirect mbuf referencing `m`, tagged for `owner`; nullptr when shed (counted).
    rte_mbuf* clone_sheddable(rte_mbuf* m, OwnerTag owner);

    rte_mempool* l1() const { return l1_; }
    rte_mempool* l2() const { return l2_; }
    // L1 allocations left before its reserve, as of the last refresh minus what was taken since
    // (0 without an L2 pool: there is no reserve to keep).
    unsigned l1_budget() const { return l1_budget_; }

private:
    // One allocation by `get(pool)`: L1 within its budget, else L2 (within its budget when sheddable).
    template <typename Get>
    rte_mbuf* take(bool sheddable, OwnerTag owner, Get get);

    rte_mempool* l1_ = nullptr;
    rte_mempool* l2_ = nullptr;
    unsigned l1_reserve_ = 0;
    unsigned l2_reserve_ = 0;
    unsigned l1_budget_ = 0;
    unsigned l2_budget_ = 0; // L2 allocations sheddable work may still make before L2's reserve
    QueueStats* stats_ = nullptr;
};

// What reclaim found in one pool.
struct PoolSweep {
    unsigned returned = 0;        // mbufs tagged for the dead owner, put back
    unsigned cache_flushed = 0;   // objects moved from the dead lcore's cache back to the pool
};

// Manager only, for a dead owner (no live process may use `dead_lcore`, and nothing may still be
// handing mbufs to `dead`): flushes the dead lcore's cache in `pool`, then walks every mbuf of
// the pool and returns those tagged `dead` (slot and epoch).
PoolSweep sweep_pool(rte_mempool* pool, OwnerTag dead, unsigned dead_lcore);

// Pool occupancy (available counts the ring plus every lcore cache).
struct PoolUsage {
    unsigned size = 0;
    unsigned available = 0;
    unsigned in_use = 0;
};
PoolUsage pool_usage(const rte_mempool* pool);

} // namespace gazelle::fabric
