// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/mbuf.h"

#include <algorithm>
#include <cstring>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_ring.h>

namespace gazelle::fabric {

std::string mbuf_pool_name(QueueSlot slot) { return "gz_mbuf_" + std::to_string(slot); }

Result<rte_mempool*> create_mbuf_pool(QueueSlot slot, const MbufPoolParams& params) {
    const std::string name = mbuf_pool_name(slot);
    rte_mempool* pool = rte_pktmbuf_pool_create(name.c_str(), params.mbufs, params.cache_size, k_mbuf_priv_size,
                                                params.data_room, SOCKET_ID_ANY);
    if (pool == nullptr) {
        const int err = rte_errno;
        return make_error(err, "Failed to create mbuf pool '" + name + "' (" + std::to_string(params.mbufs) +
                                   " mbufs of " + std::to_string(params.data_room) + " B): " + rte_strerror(err));
    }
    return pool;
}

Result<rte_mempool*> lookup_mbuf_pool(QueueSlot slot) {
    const std::string name = mbuf_pool_name(slot);
    rte_mempool* pool = rte_mempool_lookup(name.c_str());
    if (pool == nullptr) {
        return make_error(ENOENT, "mbuf pool '" + name + "' does not exist: is gazelle-mgr running?");
    }
    return pool;
}

Result<rte_mempool*> create_l2_pool(unsigned mbufs, const MbufPoolParams& params) {
    rte_mempool* pool = rte_pktmbuf_pool_create(k_l2_pool_name, mbufs, params.cache_size, k_mbuf_priv_size,
                                                params.data_room, SOCKET_ID_ANY);
    if (pool == nullptr) {
        const int err = rte_errno;
        return make_error(err, std::string("Failed to create the L2 mbuf pool '") + k_l2_pool_name + "' (" +
                                   std::to_string(mbufs) + " mbufs of " + std::to_string(params.data_room) +
                                   " B, fabric.l2_pool_mbufs): " + rte_strerror(err));
    }
    return pool;
}

Result<rte_mempool*> lookup_l2_pool(const L2PoolEntry& entry) {
    const std::string name(entry.name, strnlen(entry.name, sizeof entry.name));
    rte_mempool* pool = rte_mempool_lookup(name.c_str());
    if (pool == nullptr) {
        return make_error(ENOENT, "L2 mbuf pool '" + name + "' named in the registry does not exist");
    }
    if (pool->size != entry.mbufs) {
        return make_error(EPROTO, "L2 mbuf pool '" + name + "' has " + std::to_string(pool->size) +
                                      " mbufs, the registry says " + std::to_string(entry.mbufs));
    }
    return pool;
}

unsigned free_estimate(const rte_mempool* pool) {
    // The fabric's pools are ring-backed (rte_pktmbuf_pool_create's default "ring_mp_mc"): the
    // ring's count reads two shared indexes. Another driver gets the exact, slow count.
    const rte_mempool_ops* ops = rte_mempool_get_ops(pool->ops_index);
    if (std::strncmp(ops->name, "ring_", 5) != 0) {
        return rte_mempool_avail_count(pool);
    }
    unsigned count = rte_ring_count(static_cast<const rte_ring*>(pool->pool_data));
    const unsigned lcore = rte_lcore_id();
    if (pool->cache_size != 0 && lcore < RTE_MAX_LCORE) {
        count += pool->local_cache[lcore].len;
    }
    return std::min(count, pool->size);
}

MbufSource::MbufSource(rte_mempool* l1, rte_mempool* l2, unsigned l1_reserve, unsigned l2_reserve, QueueStats* stats)
    : l1_(l1), l2_(l2), l1_reserve_(l1_reserve), l2_reserve_(l2_reserve), stats_(stats) {
    refresh();
}

void MbufSource::refresh() {
    if (l1_ == nullptr) {
        return;
    }
    if (l2_ == nullptr) {
        return; // one level: no budget to keep
    }
    const unsigned l1_free = free_estimate(l1_);
    l1_budget_ = l1_free > l1_reserve_ ? l1_free - l1_reserve_ : 0;
    const unsigned l2_free = free_estimate(l2_);
    l2_budget_ = l2_free > l2_reserve_ ? l2_free - l2_reserve_ : 0;
}

template <typename Get>
rte_mbuf* MbufSource::take(bool sheddable, OwnerTag owner, Get get) {
    if (l2_ == nullptr) { // one level: L1 down to empty (the caller counts drop_alloc_failed)
        rte_mbuf* m = get(l1_);
        if (m != nullptr) {
            set_owner_burst(std::span<rte_mbuf* const>(&m, 1), owner);
        }
        return m;
    }
    if (l1_budget_ != 0) {
        if (rte_mbuf* m = get(l1_); m != nullptr) {
            --l1_budget_;
            set_owner_burst(std::span<rte_mbuf* const>(&m, 1), owner);
            return m;
        }
        l1_budget_ = 0; // empty before the estimate said: L2 until the next refresh
    }
    if (sheddable && l2_budget_ == 0) {
        stats_->l2_shed += 1;
        return nullptr;
    }
    rte_mbuf* m = get(l2_);
    if (m == nullptr) {
        l2_budget_ = 0;
        stats_->l2_alloc_failed += 1;
        return nullptr;
    }
    l2_budget_ -= l2_budget_ != 0 ? 1u : 0u;
    stats_->l2_allocs += 1;
    set_owner_burst(std::span<rte_mbuf* const>(&m, 1), owner);
    return m;
}

rte_mbuf* MbufSource::alloc(OwnerTag owner) {
    return take(false, owner, [](rte_mempool* pool) { return rte_pktmbuf_alloc(pool); });
}

rte_mbuf* MbufSource::alloc_sheddable(OwnerTag owner) {
    return take(true, owner, [](rte_mempool* pool) { return rte_pktmbuf_alloc(pool); });
}

rte_mbuf* MbufSource::clone_sheddable(rte_mbuf* m, OwnerTag owner) {
    return take(true, owner, [m](rte_mempool* pool) { return rte_pktmbuf_clone(m, pool); });
}

namespace {

struct SweepContext {
    rte_mempool* pool;
    OwnerTag dead;
    unsigned returned;
};

void sweep_one(rte_mempool* /*pool*/, void* arg, void* obj, unsigned /*index*/) {
    auto* ctx = static_cast<SweepContext*>(arg);
    auto* m = static_cast<rte_mbuf*>(obj);
    if (mbuf_owner(m) != ctx->dead) {
        return;
    }
    set_mbuf_owner(m, OwnerTag{});
    // Each segment of a chain carries its own tag and is returned on its own visit.
    m->next = nullptr;
    m->nb_segs = 1;
    if (RTE_MBUF_CLONED(m)) {
        // An indirect mbuf (an ARP reply shared by reference): detach it, which drops its
        // reference on the direct mbuf, and return it.
        rte_mbuf_refcnt_set(m, 1);
        rte_pktmbuf_free_seg(m);
    } else if (rte_mbuf_refcnt_read(m) > 1) {
        // Direct mbuf whose data live clones still reference: drop only the dead owner's
        // reference; the last clone's free returns it.
        rte_mbuf_refcnt_update(m, -1);
        return;
    } else {
        rte_mbuf_refcnt_set(m, 1);
        rte_mempool_put(m->pool, m);
    }
    ++ctx->returned;
}

} // namespace

PoolSweep sweep_pool(rte_mempool* pool, OwnerTag dead, unsigned dead_lcore) {
    PoolSweep sweep;
    if (dead_lcore < RTE_MAX_LCORE && pool->cache_size != 0) {
        rte_mempool_cache* cache = &pool->local_cache[dead_lcore];
        sweep.cache_flushed = cache->len;
        rte_mempool_cache_flush(cache, pool);
    }
    SweepContext ctx{pool, dead, 0};
    rte_mempool_obj_iter(pool, sweep_one, &ctx);
    sweep.returned = ctx.returned;
    return sweep;
}

PoolUsage pool_usage(const rte_mempool* pool) {
    PoolUsage u;
    u.size = pool->size;
    u.available = rte_mempool_avail_count(pool);
    u.in_use = u.size - u.available;
    return u;
}

} // namespace gazelle::fabric
