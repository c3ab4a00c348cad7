// SPDX-License-Identifier: BSD-3-Clause
// The stack thread's poll loop, the netif between lwIP and the fabric, and the engine's life cycle.
#include "stack/internal/engine.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sched.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

extern "C" {
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_frag.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "netif/ethernet.h"
}

#include "fabric/mbuf.h"

namespace gazelle::stack {

namespace {

thread_local StackEngine* t_engine = nullptr;

// Zero-copy rx: the pbuf_custom of a received mbuf lives in its private area, right after the
// owner tag (MbufPriv::stack_area); freeing the pbuf frees the mbuf.
static_assert(sizeof(pbuf_custom) <= sizeof(fabric::MbufPriv::stack_area), "pbuf_custom must fit in MbufPriv::stack_area");
static_assert(alignof(pbuf_custom) <= 16, "MbufPriv::stack_area is 16-byte aligned");

pbuf_custom* custom_pbuf_of(rte_mbuf* m) {
    return reinterpret_cast<pbuf_custom*>(fabric::mbuf_priv(m)->stack_area);
}

rte_mbuf* mbuf_of_custom_pbuf(pbuf* p) {
    auto* area = reinterpret_cast<std::uint8_t*>(p);
    auto* priv = reinterpret_cast<fabric::MbufPriv*>(area - offsetof(fabric::MbufPriv, stack_area));
    return reinterpret_cast<rte_mbuf*>(reinterpret_cast<std::uint8_t*>(priv) - sizeof(rte_mbuf));
}

extern "C" void free_mbuf_pbuf(pbuf* p) { fabric::free_one(mbuf_of_custom_pbuf(p)); }

// A pbuf for a received frame: the mbuf itself when we hold it alone and it is one segment;
// otherwise (a broadcast shared by several receivers, an ARP reply clone, a chain) a copy, and
// the mbuf is freed. nullptr when lwIP's arena is exhausted (the mbuf is freed).
pbuf* pbuf_of_mbuf(rte_mbuf* m) {
    if (m->nb_segs == 1 && !RTE_MBUF_CLONED(m) && rte_mbuf_refcnt_read(m) == 1) {
        pbuf_custom* pc = custom_pbuf_of(m);
        pc->custom_free_function = free_mbuf_pbuf;
        return pbuf_alloced_custom(PBUF_RAW, m->data_len, PBUF_REF, pc, rte_pktmbuf_mtod(m, void*), m->data_len);
    }
    pbuf* p = m->pkt_len <= 0xffff ? pbuf_alloc(PBUF_RAW, static_cast<u16_t>(m->pkt_len), PBUF_RAM) : nullptr;
    if (p != nullptr) {
        const void* data = rte_pktmbuf_read(m, 0, m->pkt_len, p->payload);
        if (data != p->payload) {
            std::memcpy(p->payload, data, m->pkt_len);
        }
    }
    fabric::free_one(m);
    return p;
}

// An IPv4 frame to our own address (lwIP resolves it to our own MAC through the static ARP
// entry). Decided by address, not by MAC alone: a tap port shares its MAC with the kernel
// interface on the other side (DPDK's tap PMD gives both the same address), so frames for the
// kernel carry our MAC too.
bool is_ipv4_to(const std::uint8_t* frame, std::size_t len, std::uint64_t mac, std::uint32_t ipv4) {
    constexpr std::size_t dst_ip_at = 14 + 16;
    if (len < dst_ip_at + 4 || frame[12] != 0x08 || frame[13] != 0x00) {
        return false;
    }
    std::uint64_t dst_mac = 0;
    std::memcpy(&dst_mac, frame, 6);
    std::uint32_t dst_ip = 0;
    std::memcpy(&dst_ip, frame + dst_ip_at, 4);
    return dst_mac == mac && dst_ip == ipv4;
}

std::uint64_t mac_value(const std::uint8_t* mac) {
    std::uint64_t v = 0;
    std::memcpy(&v, mac, 6);
    return v;
}

extern "C" err_t netif_linkoutput(netif* nif, pbuf* p) {
    return static_cast<StackEngine*>(nif->state)->transmit(p);
}

extern "C" err_t netif_setup(netif* nif) {
    nif->name[0] = 'g';
    nif->name[1] = 'z';
    nif->output = etharp_output;
    nif->linkoutput = netif_linkoutput;
    nif->hwaddr_len = ETH_HWADDR_LEN;
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

} // namespace

StackEngine* StackEngine::current() { return t_engine; }

StackEngine::StackEngine(Stack& stack, fabric::Fabric& fabric, fabric::PortIo& port_io)
    : stack_(stack), fabric_(fabric), registry_(fabric.registry()), flows_(fabric.flows()), port_io_(port_io),
      port_(registry_.port(registry_.queue(stack.slot_).port)), hw_queue_(registry_.queue(stack.slot_).hw_queue),
      user_veth_(port_io.kind() == fabric::PortKind::user_veth), pool_(fabric.pool(stack.slot_)),
      tag_(registry_.owner_tag(stack.slot_)), stats_(registry_.stats(stack.slot_)),
      forwarder_(registry_, flows_, fabric.forward_inboxes(), stack.slot_, fabric.mbuf_source(stack.slot_)),
      chunks_(fabric.memps(), tag_), arena_(chunks_, stack.options_.arena_chunk_bytes, stack.options_.arena_max_bytes),
      adopts_(!port_io.supports_reta()) {}

StackEngine::~StackEngine() {
    shutdown();
    if (t_engine == this) {
        t_engine = nullptr;
    }
}

Result<void> StackEngine::init() {
    const fabric::QueueSlot slot = stack_.slot_;
    const fabric::QueueEntry& q = registry_.queue(slot);
    if (q.state.load() != fabric::QueueState::owned || q.owner_pid.load() != getpid() ||
        q.lcore_id.load() != stack_.lcore_) {
        return make_error(EPERM, "Queue slot " + std::to_string(slot) + " is not claimed for pid " +
                                     std::to_string(getpid()) + " on lcore " + std::to_string(stack_.lcore_) +
                                     " (owner pid " + std::to_string(q.owner_pid.load()) + ", lcore " +
                                     std::to_string(q.lcore_id.load()) + ")");
    }
    if (rte_lcore_id() != stack_.lcore_) {
        return make_error(EINVAL, "Stack of slot " + std::to_string(slot) + " must run on lcore " +
                                      std::to_string(stack_.lcore_) + ", runs on " + std::to_string(rte_lcore_id()));
    }
    if (pool_ == nullptr) {
        return make_error(ENOENT, "No mbuf pool for queue slot " + std::to_string(slot));
    }
    t_engine = this;
    detail::set_thread_arena(&arena_);
    if (auto r = arena_.reserve_first_chunk(); !r) {
        return r.error();
    }

    lwip_init();
    lwip_up_ = true;
    ip4_addr_t ip;
    ip4_addr_t mask;
    ip4_addr_t gw;
    ip.addr = port_.ipv4;
    mask.addr = port_.netmask;
    gw.addr = port_.gateway;
    std::memcpy(netif_.hwaddr, port_.mac, ETH_HWADDR_LEN);
    if (netif_add(&netif_, &ip, &mask, &gw, this, netif_setup, ethernet_input) == nullptr) {
        return make_error(ENOMEM, "Failed to add the lwIP netif of queue slot " + std::to_string(slot));
    }
    netif_.mtu = port_.mtu;
    if (user_veth_ && !stack_.options_.user_veth_checksums) {
        NETIF_SET_CHECKSUM_CTRL(&netif_, NETIF_CHECKSUM_DISABLE_ALL);
    }
    netif_set_default(&netif_);
    netif_set_up(&netif_);
    // Our own address resolves to our own MAC: such frames are looped through the forwarding step
    // (transmit()), whichever stack of the port owns the flow.
    eth_addr own{};
    std::memcpy(own.addr, port_.mac, ETH_HWADDR_LEN);
    mac_ = mac_value(port_.mac);
    if (etharp_add_static_entry(&ip, &own) != ERR_OK) {
        return make_error(ENOMEM, "Failed to add the static ARP entry of our own address");
    }
    ext_id_ = tcp_ext_arg_alloc_id();

    if (!doorbells_.add(forwarder_.inbox())) {
        return make_error(EPROTO, "Failed to locate the doorbell of forwarding inbox " + std::to_string(slot));
    }
    if (user_veth_ && fabric_.user_veth().has_queue(slot)) {
        rx_inbox_ = &fabric_.user_veth().rx_inbox(slot);
        if (!doorbells_.add(*rx_inbox_)) {
            return make_error(EPROTO, "Failed to locate the doorbell of user-veth rx queue " + std::to_string(slot));
        }
    }
    spin_cycles_ = rte_get_tsc_hz() / 1000000u * stack_.options_.idle_spin_us;
    adopt_scan_cycles_ = rte_get_tsc_hz() / 1000000u * k_adopt_scan_us;
    stats_.adopted_queues = 0;
    ethdev_sleep_us_ = stack_.options_.ethdev_sleep_min_us;

    stack_.epoch_ = tag_.epoch();
    stack_.ipv4_ = port_.ipv4;
    stack_.port_index_ = registry_.queue(slot).port;
    stack_.doorbell_ = fabric_.forward_inboxes().of(slot);
    stack_.doorbell_ready_.store(true, std::memory_order_release);
    stats_.connections = 0;
    stack_.accepting_.store(true, std::memory_order_release);
    return {};
}

// --- the poll loop ---------------------------------------------------------------------------------

void StackEngine::run() {
    forwarder_.unpark();
    std::uint64_t idle_since = 0;
    while (!stack_.stop_.load(std::memory_order_acquire)) {
        const unsigned work = poll_once();
        stack_.loops_.fetch_add(1, std::memory_order_release);
        if (work != 0) {
            idle_since = 0;
            ethdev_sleep_us_ = stack_.options_.ethdev_sleep_min_us;
            continue;
        }
        const std::uint64_t now = rte_get_tsc_cycles();
        if (idle_since == 0) {
            idle_since = now;
        }
        if (now - idle_since < spin_cycles_) {
            sched_yield(); // a co-located busy stack or app gets the CPU while we have nothing to do
            continue;
        }
        // Back from sleep: spin again only once there was work (a timed-out wake-up with nothing
        // to do goes straight back to sleep; spinning after each one cost ~10% CPU per idle
        // stack on a doorbell-less port).
        sleep_until_work();
    }
    release_adoptions(); // after our last rx burst on them
    forwarder_.park();
}

unsigned StackEngine::poll_once() {
    unsigned work = receive_from_nic();
    work += receive_adopted();
    work += receive_forwarded();
    work += receive_looped();
    work += serve_requests();
    run_timers();
    flush_tx();
    publish_stats();
    forwarder_.end_of_poll();
    return work;
}

unsigned StackEngine::receive_from_nic() {
    if (!own_queue_clear_) {
        // Our queue was free before our claim and a stack of the port may have adopted it: it
        // lets go at its next poll, once it sees the queue owned. Two threads in one rx burst of
        // the same queue would corrupt the driver's ring, so we poll only after the lease is 0
        // (or reclaim of a dead adopter cleared it). Once 0, nobody can take it while we own it.
        if (registry_.queue(stack_.slot_).adopter.load(std::memory_order_seq_cst) != 0) {
            stats_.adopt_handover_waits += 1;
            return 0;
        }
        own_queue_clear_ = true;
    }
    std::array<rte_mbuf*, fabric::k_burst_max> rx;
    const unsigned n = port_io_.rx_burst(stack_.slot_, rx);
    forward_and_input(std::span<rte_mbuf* const>(rx.data(), n));
    return n;
}

// The free queues we adopted: polled like our own NIC queue, then the same forwarding step (the
// frames are tagged ours: our flows stay, the others go to their owners, unowned ones get our
// RST / ICMP). One state load per adopted queue per iteration tells us when a new owner claimed
// it: then we let go (after this iteration's last burst on it, i.e. before any of its own).
unsigned StackEngine::receive_adopted() {
    if (!adopts_) {
        return 0;
    }
    const std::uint64_t now = rte_get_tsc_cycles();
    if (now >= next_adopt_scan_) {
        next_adopt_scan_ = now + adopt_scan_cycles_;
        scan_for_orphans();
    }
    unsigned work = 0;
    std::array<rte_mbuf*, fabric::k_burst_max> rx;
    for (unsigned i = 0; i < nb_adopted_;) {
        const fabric::QueueSlot queue = adopted_[i];
        if (registry_.queue(queue).state.load(std::memory_order_seq_cst) != fabric::QueueState::free) {
            registry_.release_adoption(queue, tag_);
            adopted_[i] = adopted_[--nb_adopted_];
            stats_.adopted_queues = nb_adopted_;
            continue;
        }
        const unsigned n = port_io_.rx_burst_adopted(queue, stack_.slot_, rx);
        forward_and_input(std::span<rte_mbuf* const>(rx.data(), n));
        work += n;
        ++i;
    }
    return work;
}

// Control work on the poll loop, at most every k_adopt_scan_us: free queues of our port that
// nobody adopted (never claimed yet, left by a stack that exited, or given back by reclaim of a
// dead adopter) get a lease for us. The first stack to scan wins each queue (CAS).
void StackEngine::scan_for_orphans() {
    const fabric::QueueSlot first = port_.first_slot;
    for (unsigned q = 0; q < port_.nb_queues; ++q) {
        const auto queue = static_cast<fabric::QueueSlot>(first + q);
        const fabric::QueueEntry& e = registry_.queue(queue);
        if (queue == stack_.slot_ || e.state.load(std::memory_order_acquire) != fabric::QueueState::free ||
            e.adopter.load(std::memory_order_relaxed) != 0) {
            continue;
        }
        if (registry_.try_adopt(queue, tag_)) {
            adopted_[nb_adopted_++] = queue;
            stats_.adopted_queues = nb_adopted_;
            stats_.adoptions += 1;
        }
    }
}

void StackEngine::release_adoptions() {
    for (unsigned i = 0; i < nb_adopted_; ++i) {
        registry_.release_adoption(adopted_[i], tag_);
    }
    nb_adopted_ = 0;
    stats_.adopted_queues = 0;
}

// The forwarding step, then lwIP: our own packets, and those nobody owns (lwIP answers them with
// a RST or ICMP port unreachable, exactly what the sender should hear).
void StackEngine::forward_and_input(std::span<rte_mbuf* const> pkts) {
    if (pkts.empty()) {
        return;
    }
    std::array<rte_mbuf*, fabric::k_burst_max> local;
    std::array<rte_mbuf*, fabric::k_burst_max> unowned;
    while (!pkts.empty()) {
        const auto chunk = pkts.first(std::min<std::size_t>(pkts.size(), fabric::k_burst_max));
        pkts = pkts.subspan(chunk.size());
        const fabric::ForwardSplit split = forwarder_.forward_burst(chunk, local, unowned);
        input_to_lwip(std::span<rte_mbuf* const>(local.data(), split.local));
        answer_unowned(std::span<rte_mbuf* const>(unowned.data(), split.no_owner));
    }
}

unsigned StackEngine::receive_forwarded() {
    std::array<rte_mbuf*, fabric::k_burst_max> in;
    const unsigned n = forwarder_.receive_forwarded(in);
    input_to_lwip(std::span<rte_mbuf* const>(in.data(), n));
    return n;
}

// Frames we sent to our own port: through the forwarding step as if received.
unsigned StackEngine::receive_looped() {
    if (nb_loop_ == 0) {
        return 0;
    }
    std::array<rte_mbuf*, k_loop_capacity> batch;
    const unsigned n = nb_loop_;
    std::copy_n(loop_.begin(), n, batch.begin());
    nb_loop_ = 0;
    forward_and_input(std::span<rte_mbuf* const>(batch.data(), n));
    return n;
}

void StackEngine::input_to_lwip(std::span<rte_mbuf* const> pkts) {
    for (rte_mbuf* m : pkts) {
        pbuf* p = pbuf_of_mbuf(m);
        if (p == nullptr) {
            stats_.drop_alloc_failed += 1;
            continue;
        }
        if (netif_.input(p, &netif_) != ERR_OK) {
            pbuf_free(p);
        }
    }
}

void StackEngine::answer_unowned(std::span<rte_mbuf* const> pkts) {
    stats_.drop_no_owner += pkts.size();
    input_to_lwip(pkts);
}

unsigned StackEngine::serve_requests() {
    Request* list = stack_.requests_.take_all();
    unsigned n = 0;
    while (list != nullptr) {
        Request* next = list->next_in_list;
        execute(*list);
        list = next;
        ++n;
    }
    retry_removals();
    return n;
}

void StackEngine::run_timers() { sys_check_timeouts(); }

void StackEngine::flush_tx() {
    if (nb_tx_ == 0) {
        return;
    }
    // tx_burst takes ownership of every frame (sent, or freed and counted).
    (void)port_io_.tx_burst(stack_.slot_, std::span<rte_mbuf* const>(tx_.data(), nb_tx_));
    nb_tx_ = 0;
}

void StackEngine::publish_stats() {
    // lwIP's own drops (bad checksums, lengths) are malformed packets in the queue's counters.
    const struct stats_& s = lwip_stats;
    const std::uint64_t drops = std::uint64_t{s.link.chkerr} + s.link.lenerr + s.etharp.chkerr + s.etharp.lenerr +
                                s.ip.chkerr + s.ip.lenerr + s.icmp.chkerr + s.icmp.lenerr + s.udp.chkerr +
                                s.udp.lenerr + s.tcp.chkerr + s.tcp.lenerr;
    if (drops != lwip_drops_seen_) {
        stats_.drop_malformed += drops - lwip_drops_seen_;
        lwip_drops_seen_ = drops;
    }
    stats_.connections = connections_;
}

// --- sleeping ----------------------------------------------------------------------------------------

bool StackEngine::work_pending() {
    return forwarder_.inbox().pending() != 0 || (rx_inbox_ != nullptr && rx_inbox_->pending() != 0) ||
           !stack_.requests_.empty() || nb_loop_ != 0 || stack_.stop_.load(std::memory_order_acquire);
}

void StackEngine::sleep_until_work() {
    unsigned timeout_us = stack_.options_.max_sleep_us;
    const u32_t timer_ms = sys_timeouts_sleeptime();
    if (timer_ms != SYS_TIMEOUTS_SLEEPTIME_INFINITE) {
        timeout_us = static_cast<unsigned>(std::min<std::uint64_t>(timeout_us, std::uint64_t{timer_ms} * 1000u));
    }
    if (!user_veth_) {
        // The NIC queue has no doorbell: poll it at a growing interval while nothing arrives.
        timeout_us = std::min(timeout_us, ethdev_sleep_us_);
        ethdev_sleep_us_ = std::min(ethdev_sleep_us_ * 2, stack_.options_.ethdev_sleep_max_us);
    }
    if (timeout_us == 0) {
        return;
    }
    forwarder_.park();
    stack_.asleep_.store(true, std::memory_order_seq_cst);
    doorbells_.prepare();
    if (!work_pending()) {
        doorbells_.wait(timeout_us);
    }
    doorbells_.finish();
    stack_.asleep_.store(false, std::memory_order_seq_cst);
    forwarder_.unpark();
}

// --- transmit ----------------------------------------------------------------------------------------

bool StackEngine::is_to_own_address(const void* frame, std::size_t len) const {
    return is_ipv4_to(static_cast<const std::uint8_t*>(frame), len, mac_, port_.ipv4);
}

err_t StackEngine::transmit(pbuf* p) {
    if (p->tot_len > rte_pktmbuf_data_room_size(pool_) - RTE_PKTMBUF_HEADROOM) {
        stats_.drop_malformed += 1;
        return ERR_IF;
    }
    // ARP is the L2 work the fabric sheds when memory is short (lwIP asks again); everything else
    // may take the L2 pool down to empty (fabric/mbuf.h MbufSource).
    const auto* eth = static_cast<const std::uint8_t*>(p->payload);
    const bool arp = p->len >= 14 && eth[12] == 0x08 && eth[13] == 0x06;
    rte_mbuf* m = arp ? forwarder_.mbufs().alloc_sheddable(tag_) : forwarder_.mbufs().alloc(tag_);
    if (m == nullptr) {
        stats_.drop_alloc_failed += 1;
        return ERR_MEM;
    }
    auto* data = rte_pktmbuf_append(m, p->tot_len);
    (void)pbuf_copy_partial(p, data, p->tot_len, 0);
    if (is_to_own_address(data, p->tot_len)) {
        // To our own port's address (another stack of it, or this one): never out of the NIC.
        if (nb_loop_ == k_loop_capacity) {
            fabric::free_one(m);
            stats_.drop_tx_full += 1;
            return ERR_MEM;
        }
        loop_[nb_loop_++] = m;
        return ERR_OK;
    }
    tx_[nb_tx_++] = m;
    if (nb_tx_ == k_tx_burst) {
        flush_tx();
    }
    return ERR_OK;
}

// --- shutdown -----------------------------------------------------------------------------------------

void StackEngine::shutdown() {
    if (shut_down_ || !lwip_up_) {
        shut_down_ = true;
        detail::set_thread_arena(nullptr);
        return;
    }
    shut_down_ = true;
    stack_.accepting_.store(false, std::memory_order_seq_cst);
    while (stack_.posting_.load(std::memory_order_acquire) != 0) {
        rte_pause(); // a post() is between its check and its push: a few instructions
    }
    // Requests that raced with the stop: served with -ESHUTDOWN (kicks just drop their reference).
    for (Request* r = stack_.requests_.take_all(); r != nullptr;) {
        Request* next = r->next_in_list;
        if (r->kind == Request::Kind::kick) {
            r->socket->kick_queued_.store(false);
            r->socket->release();
        } else {
            r->result = -ESHUTDOWN;
            r->done.store(1, std::memory_order_release);
            detail::futex_wake_private(r->done);
        }
        r = next;
    }
    // Every socket fails with ESHUTDOWN (connections are reset), then every pcb lwIP still has.
    while (sockets_ != nullptr) {
        Socket* s = sockets_;
        s->add_ref(); // alive until we are done with it, whatever detach() releases
        int expected = 0;
        (void)s->error_.compare_exchange_strong(expected, -ESHUTDOWN);
        if (s->tcp_ != nullptr && (s->state_.load() & state::listening) != 0) {
            close_listener(*s);
        } else if (s->udp_ != nullptr) {
            close_udp(*s);
        } else {
            if (s->tcp_ != nullptr) {
                tcp_pcb* pcb = s->tcp_;
                tcp_arg(pcb, nullptr);
                tcp_recv(pcb, nullptr);
                tcp_sent(pcb, nullptr);
                tcp_err(pcb, nullptr);
                s->tcp_ = nullptr;
                tcp_abort(pcb);
            }
        }
        if (s->attached_) {
            fail(*s, -ESHUTDOWN);
        }
        s->state_.fetch_or(state::failed | state::dead | state::eof, std::memory_order_release);
        s->notify();
        s->release();
    }
    while (tcp_active_pcbs != nullptr) {
        tcp_abort(tcp_active_pcbs);
    }
    while (tcp_tw_pcbs != nullptr) {
        tcp_abort(tcp_tw_pcbs);
    }
    while (tcp_listen_pcbs.pcbs != nullptr) {
        (void)tcp_close(tcp_listen_pcbs.pcbs);
    }
    while (tcp_bound_pcbs != nullptr) {
        (void)tcp_close(tcp_bound_pcbs);
    }
    while (udp_pcbs != nullptr) {
        udp_remove(udp_pcbs);
    }
    flush_tx(); // the resets
    release_adoptions(); // run() did unless it never ran
    // Fragments waiting for reassembly hold received mbufs: age them all out.
    for (int i = 0; i <= IP_REASS_MAXAGE; ++i) {
        ip_reass_tmr();
    }
    for (unsigned i = 0; i < nb_loop_; ++i) {
        fabric::free_one(loop_[i]);
    }
    nb_loop_ = 0;
    // Rule removals that found the deferred-free list full: retry for a while (bounded).
    for (int round = 0; round < 1000 && nb_removals_ != 0; ++round) {
        forwarder_.end_of_poll();
        retry_removals();
        if (nb_removals_ != 0) {
            usleep(200);
        }
    }
    forwarder_.end_of_poll();
    netif_remove(&netif_);
    // Mbufs this lcore freed sit in its cache of every pool (received frames come from the
    // senders' pools, the L2 pool too): give them back, so a clean exit leaves nothing for
    // reclaim to flush.
    for (fabric::QueueSlot slot = 0; slot <= registry_.nb_slots(); ++slot) {
        rte_mempool* pool = slot < registry_.nb_slots() ? fabric_.pool(slot) : fabric_.l2_pool();
        if (pool != nullptr) {
            if (rte_mempool_cache* cache = rte_mempool_default_cache(pool, rte_lcore_id()); cache != nullptr) {
                rte_mempool_cache_flush(cache, pool);
            }
        }
    }
    forwarder_.park();
    connections_ = 0;
    stats_.connections = 0;
    detail::set_thread_arena(nullptr);
    lwip_up_ = false;
    stack_.exited_.store(true, std::memory_order_release);
}

} // namespace gazelle::stack
