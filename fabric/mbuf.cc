// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/mbuf.h"

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

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
