// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// StackEngine: one lwIP instance on one queue slot, and the poll loop that drives it. Created,
// run and destroyed on its stack thread (an EAL lcore): lwIP's state is thread-local
// (stack/lwip/thread_local.list), so nothing here may be touched from another thread. App
// threads reach it through Stack (requests, kicks, doorbell).

#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>

extern "C" {
#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/stats.h"
}

#include "conf/result.h"
#include "fabric/fabric.h"
#include "fabric/flow_key.h"
#include "fabric/forwarder.h"
#include "fabric/port_io.h"
#include "stack/internal/arena.h"
#include "stack/internal/doorbell.h"
#include "stack/internal/socket.h"
#include "stack/internal/stack.h"

struct rte_mbuf;
struct rte_mempool;
struct pbuf;
struct tcp_pcb;
struct udp_pcb;

namespace gazelle::stack {

class StackEngine {
public:
    // Frames lwIP may queue for transmission within one poll before a burst goes out.
    static constexpr unsigned k_tx_burst = fabric::k_burst_max;
    // Frames to our own port MAC (another stack of this port, or ourselves) waiting for the
    // forwarding step; beyond this they are dropped (drop_tx_full).
    static constexpr unsigned k_loop_capacity = 256;
    // Flow-table removals that hit a full deferred-free list, retried every poll.
    static constexpr unsigned k_pending_removals = 4096;
    // Ports without a RETA: how often an awake stack looks for free queues of its port that
    // nobody adopted (doc/fabric-ports.md "Adoption").
    static constexpr unsigned k_adopt_scan_us = 1000;

    StackEngine(Stack& stack, fabric::Fabric& fabric, fabric::PortIo& port_io);
    ~StackEngine();
    StackEngine(const StackEngine&) = delete;
    StackEngine& operator=(const StackEngine&) = delete;

    // lwIP, netif, arena, doorbells. Errors: EPERM (slot not claimed for this pid/lcore), ENOMEM.
    Result<void> init();
    // The poll loop, until Stack::stop_.
    void run();
    // Resets every connection, releases rules, listeners and lwIP memory. Idempotent.
    void shutdown();

    // --- used by lwIP callbacks (stack/engine_tcp.cc) ------------------------------------------
    static StackEngine* current(); // the engine of the calling stack thread
    err_t transmit(pbuf* p);
    bool is_to_own_address(const void* frame, std::size_t len) const;

private:
    friend struct TcpCallbacks;

    // Poll loop steps.
    unsigned poll_once();
    unsigned receive_from_nic();
    unsigned receive_adopted();
    void scan_for_orphans();
    void release_adoptions();
    unsigned receive_forwarded();
    unsigned receive_looped();
    unsigned serve_requests();
    void run_timers();
    void flush_tx();
    void publish_stats();
    void sleep_until_work();
    bool work_pending();

    void input_to_lwip(std::span<rte_mbuf* const> pkts);
    void answer_unowned(std::span<rte_mbuf* const> pkts);
    void forward_and_input(std::span<rte_mbuf* const> pkts);

    // Requests (app -> stack).
    void execute(Request& request);
    int do_bind(Socket& s, Ipv4Endpoint local, bool reuse_address);
    int do_listen(Socket& s, int backlog);
    int do_connect(Socket& s, Ipv4Endpoint remote);
    void service(Socket& s);

    // Sockets.
    void attach(Socket& s);
    void detach(Socket& s);
    void fail(Socket& s, int error);
    void flush_tx_ring(Socket& s);
    void deliver_rx(Socket& s, pbuf* p);
    void update_window(Socket& s);
    void maybe_finish_close(Socket& s);
    void close_listener(Socket& s);
    void close_udp(Socket& s);
    void send_datagrams(Socket& s);

    // Flow rules.
    int add_connection_rule(tcp_pcb* pcb, std::uint16_t local_port_host);
    void remove_connection_rule(const fabric::FlowKey& key, std::uint32_t hash);
    int add_listener_rule(std::uint8_t proto, const Ipv4Endpoint& local);
    void remove_listener_rule(std::uint8_t proto, const Ipv4Endpoint& local);
    int add_udp_port_user(const Ipv4Endpoint& local);
    void remove_udp_port_user(const Ipv4Endpoint& local);
    void retry_removals();
    bool local_port_in_use(std::uint16_t port_host, const ip_addr_t& remote_ip, std::uint16_t remote_port) const;
    std::uint16_t reply_queue() const;

    Stack& stack_;
    fabric::Fabric& fabric_;
    fabric::Registry registry_;
    fabric::FlowTable flows_;
    fabric::PortIo& port_io_;
    const fabric::PortEntry& port_;
    const std::uint16_t hw_queue_;
    const bool user_veth_;
    rte_mempool* pool_;
    fabric::OwnerTag tag_;
    fabric::QueueStats& stats_;
    fabric::Forwarder forwarder_;
    detail::HugepageChunks chunks_;
    detail::Arena arena_;
    detail::DoorbellSet doorbells_;
    fabric::Inbox* rx_inbox_ = nullptr; // user-veth rx queue (doorbell, pending check)

    netif netif_{};
    bool lwip_up_ = false;
    bool shut_down_ = false;
    std::uint8_t ext_id_ = 0;
    std::uint64_t mac_ = 0; // own MAC, 6 bytes in wire order from the lowest byte

    std::array<rte_mbuf*, k_tx_burst> tx_{};
    unsigned nb_tx_ = 0;
    std::array<rte_mbuf*, k_loop_capacity> loop_{};
    unsigned nb_loop_ = 0;

    Socket* sockets_ = nullptr; // attached sockets (intrusive list)

    struct PendingRemoval {
        fabric::FlowKey key;
        std::uint32_t hash;
        bool listener;
    };
    std::array<PendingRemoval, k_pending_removals> removals_{};
    unsigned nb_removals_ = 0;
    // UDP ports bound by this stack ((addr << 16) | port, network order) -> sockets sharing the
    // port's fabric rule. Control path only (bind, close).
    std::unordered_map<std::uint64_t, unsigned> udp_port_users_;

    // Adoption (ports without a RETA): the free queues of our port whose lease we hold and whose
    // rx we poll, and whether our own queue's lease has been seen free since our claim (a former
    // adopter may still poll it; we wait, see receive_from_nic()).
    const bool adopts_;
    std::array<fabric::QueueSlot, fabric::k_max_queues> adopted_{};
    unsigned nb_adopted_ = 0;
    std::uint64_t adopt_scan_cycles_ = 0;
    std::uint64_t next_adopt_scan_ = 0;
    bool own_queue_clear_ = false;

    std::uint64_t connections_ = 0;     // live connection rules (QueueStats::connections)
    std::uint64_t lwip_drops_seen_ = 0; // lwIP error counters already folded into drop_malformed
    unsigned ethdev_sleep_us_ = 0;
    std::uint64_t spin_cycles_ = 0;
};

} // namespace gazelle::stack
