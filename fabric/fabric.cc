// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/fabric.h"

#include <array>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <rte_mempool.h>

#include "fabric/inbox.h"
#include "fabric/shared_region.h"

#include <unistd.h>

namespace gazelle::fabric {

std::string describe(const ReclaimReport& r) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "queue %u (pid %d, epoch %u): %u rules, %u listeners, %u memp pools (%llu KiB), %u mbufs "
                  "returned, %u from lcore caches (%u of both from the L2 pool), %u re-steered, %u inbox, %u rx queue, "
                  "%u unpublished, %u adoptions given back%s in %.0f us",
                  r.slot, r.pid, r.epoch, r.rules, r.listeners, r.memp_pools,
                  static_cast<unsigned long long>(r.memp_bytes >> 10), r.mbufs_returned, r.cache_flushed, r.l2_returned,
                  r.resteered, r.inbox_drained, r.rx_drained, r.salvaged, r.adoptions,
                  r.grace_timed_out ? " (grace wait timed out)" : "",
                  r.usec);
    return line;
}

Result<std::unique_ptr<Fabric>> Fabric::create(const FabricParams& params) {
    std::unique_ptr<Fabric> f(new Fabric());
    f->owner_ = true;
    f->grace_timeout_ = params.grace_timeout;
    auto registry = Registry::create(params.max_queues);
    if (!registry) {
        return registry.error();
    }
    f->registry_ = *registry;
    bool any_user_veth = false;
    for (const PortSpec& port : params.ports) {
        auto index = f->registry_.add_port(port);
        if (!index) {
            return index.error();
        }
        any_user_veth = any_user_veth || port.kind == PortKind::user_veth;
    }
    for (QueueSlot s = 0; s < f->registry_.nb_slots(); ++s) {
        auto pool = create_mbuf_pool(s, params.pool);
        if (!pool) {
            return pool.error();
        }
        f->pools_[s] = *pool;
    }
    L2PoolEntry& l2 = f->registry_.l2_pool();
    if (params.l2_pool_mbufs != 0) {
        if (params.low_watermark_percent == 0 || params.low_watermark_percent >= 100) {
            return make_error(EINVAL, "low watermark " + std::to_string(params.low_watermark_percent) +
                                          "% is out of range 1..99");
        }
        auto pool = create_l2_pool(params.l2_pool_mbufs, params.pool);
        if (!pool) {
            return pool.error();
        }
        f->l2_pool_ = *pool;
        std::snprintf(l2.name, sizeof l2.name, "%s", k_l2_pool_name);
        l2.mbufs = params.l2_pool_mbufs;
        l2.l1_mbufs = params.pool.mbufs;
        l2.l2_reserve = static_cast<std::uint32_t>(std::uint64_t{params.l2_pool_mbufs} * params.low_watermark_percent / 100);
        l2.l1_reserve = static_cast<std::uint32_t>(std::uint64_t{params.pool.mbufs} * params.low_watermark_percent / 100);
    }
    auto flows = FlowTable::create(params.flows);
    if (!flows) {
        return flows.error();
    }
    f->flows_ = *flows;
    auto inboxes = ForwardInboxes::create(f->registry_, params.forward_lane_capacity);
    if (!inboxes) {
        return inboxes.error();
    }
    f->inboxes_ = *inboxes;
    if (any_user_veth) {
        auto veth = UserVeth::create(f->registry_, UserVethParams{params.rx_lane_capacity});
        if (!veth) {
            return veth.error();
        }
        f->user_veth_ = *veth;
    }
    auto memps = MempRegistry::create();
    if (!memps) {
        return memps.error();
    }
    f->memps_ = *memps;
    f->registry_.layout().manager_pid = static_cast<std::uint32_t>(getpid());
    return f;
}

Result<std::unique_ptr<Fabric>> Fabric::attach() {
    std::unique_ptr<Fabric> f(new Fabric());
    auto registry = Registry::attach();
    if (!registry) {
        return registry.error();
    }
    f->registry_ = *registry;
    for (QueueSlot s = 0; s < f->registry_.nb_slots(); ++s) {
        auto pool = lookup_mbuf_pool(s);
        if (!pool) {
            return pool.error();
        }
        f->pools_[s] = *pool;
    }
    if (f->registry_.l2_pool().mbufs != 0) {
        auto pool = lookup_l2_pool(f->registry_.l2_pool());
        if (!pool) {
            return pool.error();
        }
        f->l2_pool_ = *pool;
    }
    auto flows = FlowTable::attach();
    if (!flows) {
        return flows.error();
    }
    f->flows_ = *flows;
    auto inboxes = ForwardInboxes::attach(f->registry_);
    if (!inboxes) {
        return inboxes.error();
    }
    f->inboxes_ = *inboxes;
    bool any_user_veth = false;
    for (unsigned p = 0; p < f->registry_.layout().nb_ports; ++p) {
        any_user_veth = any_user_veth || f->registry_.port(p).kind == PortKind::user_veth;
    }
    if (any_user_veth) {
        auto veth = UserVeth::attach(f->registry_);
        if (!veth) {
            return veth.error();
        }
        f->user_veth_ = *veth;
    }
    auto memps = MempRegistry::attach();
    if (!memps) {
        return memps.error();
    }
    f->memps_ = *memps;
    return f;
}

Fabric::~Fabric() {
    if (!owner_) {
        return;
    }
    // Reverse order of creation; each destroy tolerates objects that were never made.
    MempRegistry::destroy();
    if (user_veth_.valid()) {
        UserVeth::destroy();
    }
    ForwardInboxes::destroy();
    FlowTable::destroy();
    for (rte_mempool*& pool : pools_) {
        if (pool != nullptr) {
            rte_mempool_free(pool);
            pool = nullptr;
        }
    }
    if (l2_pool_ != nullptr) {
        rte_mempool_free(l2_pool_);
        l2_pool_ = nullptr;
    }
    free_region(k_registry_name);
}

MbufSource Fabric::mbuf_source(QueueSlot slot) const {
    const L2PoolEntry& l2 = registry_.l2_pool();
    return MbufSource(pool(slot), l2_pool_, l2.l1_reserve, l2.l2_reserve, &registry_.stats(slot));
}

Result<Epoch> Fabric::claim_queue(QueueSlot slot, std::int32_t pid, std::uint16_t lcore_id) {
    auto epoch = registry_.claim(slot, pid, lcore_id);
    if (!epoch) {
        return epoch.error();
    }
    const unsigned port = registry_.queue(slot).port;
    if (registry_.port(port).kind == PortKind::user_veth) {
        (void)reta_update(registry_, port, registry_.live_mask()); // can only fail for no live queue
    }
    return epoch;
}

namespace {

// True when `pid` has exited (gone, or a zombie): its stacks will never beat again. Two apps
// that die together must not make each other's reclaim wait out the grace timeout.
bool process_gone(std::int32_t pid) {
    if (pid <= 0) {
        return true;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) {
        return true;
    }
    const auto close_paren = text.rfind(')'); // the command name may hold spaces and parentheses
    return close_paren == std::string::npos || close_paren + 2 >= text.size() || text[close_paren + 2] == 'Z' ||
           text[close_paren + 2] == 'X';
}

} // namespace

void Fabric::wait_grace(QueueSlot leaving, ReclaimReport& report) {
    // Every live stack that polls must show a new heartbeat: after that it cannot still act on a
    // route it chose while `leaving` was live.
    std::array<std::uint64_t, k_max_queues> seen{};
    std::uint64_t waiting = registry_.live_mask() & ~(std::uint64_t{1} << leaving);
    for (QueueSlot s = 0; s < registry_.nb_slots(); ++s) {
        seen[s] = registry_.queue(s).heartbeat.load(std::memory_order_acquire);
    }
    const auto deadline = std::chrono::steady_clock::now() + grace_timeout_;
    while (waiting != 0) {
        for (QueueSlot s = 0; s < registry_.nb_slots(); ++s) {
            const std::uint64_t bit = std::uint64_t{1} << s;
            const QueueEntry& q = registry_.queue(s);
            if ((waiting & bit) != 0 && (q.heartbeat.load(std::memory_order_acquire) != seen[s] ||
                                         q.parked.load(std::memory_order_acquire) != 0 || !registry_.is_live(s) ||
                                         process_gone(q.owner_pid.load(std::memory_order_acquire)))) {
                waiting &= ~bit;
            }
        }
        if (waiting == 0) {
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            report.grace_timed_out = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

// Frames waiting in a dead queue's inboxes belong, for the most part, to the neighbours: RSS and
// mis-steering put them there in the milliseconds between the death and reclaim. Freeing them
// would cost each affected connection a retransmission timeout (3 s for a lost SYN), so the
// manager finishes the dead stack's forwarding step for it: a Forwarder acting as the dead slot
// (its lanes in the other inboxes are free, the salvage step has just cleaned them) hands every
// frame owned by a live queue to that queue; the dead slot's own frames and frames for nobody are
// freed. The dead slot's QSBR reader is brought online meanwhile, so the lookups are protected
// like a live stack's.
void Fabric::resteer(QueueSlot dead, ReclaimReport& report) {
    Forwarder forwarder(registry_, flows_, inboxes_, dead, mbuf_source(dead));
    forwarder.unpark();
    std::array<rte_mbuf*, k_burst_max> burst;
    std::array<rte_mbuf*, k_burst_max> own;
    std::array<rte_mbuf*, k_burst_max> nobody;
    auto resteer_inbox = [&](Inbox inbox, unsigned& dropped) {
        const QueueStats& st = registry_.stats(dead);
        for (unsigned n; (n = inbox.dequeue_burst(burst)) != 0;) {
            const std::uint64_t forwarded_before = st.forwarded_out;
            const ForwardSplit split = forwarder.forward_burst(std::span<rte_mbuf* const>(burst.data(), n), own, nobody);
            free_burst(std::span<rte_mbuf* const>(own.data(), split.local));
            free_burst(std::span<rte_mbuf* const>(nobody.data(), split.no_owner));
            // Everything not handed on was freed: ours, nobody's, or dropped by the forwarder.
            const auto handed_on = static_cast<unsigned>(st.forwarded_out - forwarded_before);
            report.resteered += handed_on;
            dropped += n - handed_on;
        }
    };
    resteer_inbox(inboxes_.of(dead), report.inbox_drained);
    if (user_veth_.valid() && user_veth_.has_queue(dead)) {
        resteer_inbox(user_veth_.rx_inbox(dead), report.rx_drained);
    }
    forwarder.park();
}

Result<ReclaimReport> Fabric::reclaim_queue(QueueSlot slot) {
    const auto started = std::chrono::steady_clock::now();
    ReclaimReport report;
    report.slot = slot;
    if (slot >= registry_.nb_slots()) {
        return make_error(EINVAL, "reclaim: queue slot " + std::to_string(slot) + " does not exist");
    }
    QueueEntry& q = registry_.queue(slot);
    if (q.state.load(std::memory_order_acquire) == QueueState::free) {
        return report; // nothing held: reclaim is idempotent
    }
    report.was_owned = true;
    report.pid = q.owner_pid.load();
    report.epoch = q.epoch.load();
    const OwnerTag dead = OwnerTag::of(slot, report.epoch);
    const unsigned dead_lcore = q.lcore_id.load();

    // 1. No new traffic: out of the live mask (forwarders and listeners skip it), out of the RETA.
    registry_.begin_drain(slot);
    const unsigned port = q.port;
    if (registry_.port(port).kind == PortKind::user_veth) {
        (void)reta_update(registry_, port, registry_.live_mask());
    }
    // 1b. What it wrote into other inboxes without publishing (it died mid-enqueue): freed, and
    //     its lanes are clean for the re-steering below.
    std::array<rte_mbuf*, k_burst_max> burst;
    for (QueueSlot s = 0; s < registry_.nb_slots(); ++s) {
        Inbox targets[2] = {inboxes_.of(s), user_veth_.valid() && user_veth_.has_queue(s) ? user_veth_.rx_inbox(s) : Inbox{}};
        for (Inbox& target : targets) {
            if (!target.valid()) {
                continue;
            }
            for (unsigned n; (n = target.salvage_unpublished(slot, burst)) != 0;) {
                free_burst(std::span<rte_mbuf* const>(burst.data(), n));
                report.salvaged += n;
            }
        }
    }
    // 1c. Frames in its inboxes that live queues own go on to them (they are mostly neighbours').
    resteer(slot, report);

    // 2. Its QSBR reader no longer holds back grace periods; then wait for the live stacks.
    (void)flows_.take_reader_offline(slot);
    wait_grace(slot, report);

    // 3. Rules and listener memberships, then its memp pools.
    auto sweep = flows_.remove_owned_by(slot, report.epoch);
    if (sweep) {
        report.rules = sweep->connections;
        report.listeners = sweep->listeners;
    }
    const auto freed = memps_.free_owned_by(dead);
    report.memp_pools = freed.pools;
    report.memp_bytes = freed.bytes;

    // 4. Mbufs that reached its inboxes since (forwarders that chose it before it left the live
    //    mask, now past their grace period): we are their consumer now.
    auto drain = [&](Inbox inbox, unsigned& counter) {
        for (unsigned n; (n = inbox.dequeue_burst(burst)) != 0;) {
            free_burst(std::span<rte_mbuf* const>(burst.data(), n));
            counter += n;
        }
    };
    drain(inboxes_.of(slot), report.inbox_drained);
    if (user_veth_.valid() && user_veth_.has_queue(slot)) {
        drain(user_veth_.rx_inbox(slot), report.rx_drained);
    }

    // 5. Its lcore's caches in every pool (it freed mbufs of any pool there, and the rx refills of
    //    queues it adopted allocated from those queues' pools through it), and every mbuf still
    //    tagged for it (in its hands when it died, adopted-queue frames included), the L2 pool
    //    included: its mbufs carry the same tags. Only the dead lcore's cache is flushed (a live
    //    process's cache, flushed from here, corrupts the pool: measured).
    for (QueueSlot s = 0; s < registry_.nb_slots(); ++s) {
        const PoolSweep ps = sweep_pool(pools_[s], dead, dead_lcore);
        report.cache_flushed += ps.cache_flushed;
        report.mbufs_returned += ps.returned;
    }
    if (l2_pool_ != nullptr) {
        const PoolSweep ps = sweep_pool(l2_pool_, dead, dead_lcore);
        report.cache_flushed += ps.cache_flushed;
        report.mbufs_returned += ps.returned;
        report.l2_returned = ps.cache_flushed + ps.returned;
    }

    // 6. The free queues it adopted go back to nobody (only now: its pools are clean, and it is
    //    dead, so it polls none of them); a live stack of the port adopts them at its next scan.
    //    Then its own queue can be claimed or adopted again (the next owner gets a new epoch).
    report.adoptions = registry_.release_adoptions_of(dead);
    registry_.release(slot);
    report.usec = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();
    return report;
}

} // namespace gazelle::fabric
