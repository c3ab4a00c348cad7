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
// Pools are created by the primary ("gz_mbuf_<slot>", one per queue slot) and looked up by
// secondaries. Frees from any EAL lcore go to that lcore's cache of the mbuf's own pool; lcore ids
// are unique fabric-wide (two processes with one lcore id would share, and corrupt, a cache).

#include <cstdint>
#include <span>
#include <string>

#include <rte_mbuf.h>

#include "conf/result.h"
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

struct MbufPoolParams {
    unsigned mbufs = 8191;       // 2^n - 1 is the optimum for the ring-backed mempool
    unsigned cache_size = 256;   // per-lcore cache; <= RTE_MEMPOOL_CACHE_MAX_SIZE and mbufs / 1.5
    std::uint16_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE;
};

// Primary: creates the pool of `slot`. Secondary: looks it up.
Result<rte_mempool*> create_mbuf_pool(QueueSlot slot, const MbufPoolParams& params);
Result<rte_mempool*> lookup_mbuf_pool(QueueSlot slot);

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
