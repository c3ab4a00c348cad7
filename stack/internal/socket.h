// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// A socket as both sides see it: the stack thread (lwIP pcb, callbacks) and app threads (rings,
// readiness). Which side writes what is noted per member; see stack/api.h for the model.

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "stack/api.h"
#include "stack/internal/byte_ring.h"
#include "stack/internal/futex.h"
#include "stack/internal/mpsc_list.h"

struct tcp_pcb;
struct udp_pcb;
struct pbuf;

namespace gazelle::stack {

class Socket;

// A request from an app thread to a stack thread.
struct Request {
    enum class Kind : std::uint8_t {
        kick,    // the socket has new work (data in its tx ring, space in its rx ring, close, shutdown)
        bind,
        listen,
        connect,
    };
    Request* next_in_list = nullptr;
    Kind kind = Kind::kick;
    Socket* socket = nullptr;
    Ipv4Endpoint endpoint{};
    int arg = 0;
    // Synchronous requests: the stack writes result, then done = 1 and wakes the waiter.
    int result = 0;
    std::atomic<std::uint32_t> done{0};
};

// Socket state bits, written by the stack thread (release), read by app threads (acquire).
namespace state {
inline constexpr std::uint32_t bound = 1u << 0;
inline constexpr std::uint32_t listening = 1u << 1;
inline constexpr std::uint32_t connecting = 1u << 2;
inline constexpr std::uint32_t connected = 1u << 3;
inline constexpr std::uint32_t eof = 1u << 4;      // FIN received: no more data after the rx ring
inline constexpr std::uint32_t failed = 1u << 5;   // the connection is gone (error_ says why)
inline constexpr std::uint32_t wr_shut = 1u << 6;  // FIN sent (shutdown_write or close)
inline constexpr std::uint32_t dead = 1u << 7;     // the stack is done with this socket
} // namespace state

// Requests from the app carried by the kick (app_flags_).
namespace app_flag {
inline constexpr std::uint32_t closed = 1u << 0;
inline constexpr std::uint32_t shut_wr = 1u << 1;
inline constexpr std::uint32_t abort = 1u << 2; // reset instead of FIN (accepted, never taken)
} // namespace app_flag

// Framing of one datagram in a UDP socket's rings.
struct DatagramHeader {
    std::uint32_t len;
    std::uint32_t addr; // network byte order
    std::uint16_t port; // network byte order
    std::uint16_t reserved_;
};
static_assert(sizeof(DatagramHeader) == 12);

struct PollerState;

class Socket {
public:
    Socket(Stack& stack, SocketType type, std::uint32_t ring_bytes);
    ~Socket();
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    void add_ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    // Deletes the socket when the last reference goes (any thread).
    void release();

    // Stack thread: readiness changed (state, ring contents): wakes waiters, queues on the poller.
    void notify();

    Stack& stack_;
    const SocketType type_;
    std::atomic<int> refs_{1}; // the app's handle
    bool holds_tcp_slot_ = false; // counted in Stack::tcp_sockets_ (set before the app has it; cleared by close())

    // --- stack thread only ---------------------------------------------------------------------
    tcp_pcb* tcp_ = nullptr;
    udp_pcb* udp_ = nullptr;
    bool attached_ = false;        // in the stack's socket list, holding a reference
    Socket* list_prev_ = nullptr;
    Socket* list_next_ = nullptr;
    std::uint32_t recved_total_ = 0; // rx bytes consumed by the app that lwIP was told about
    pbuf* rx_backlog_ = nullptr;     // received data that did not fit into rx_ (defensive)
    bool fin_pending_ = false;       // FIN received while rx_backlog_ still held data
    bool listener_rule_ = false;     // a listener rule (flow table) for local_ is installed
    bool close_done_ = false;
    bool shutdown_done_ = false;
    int backlog_ = 0;
    Socket* listener_ = nullptr;     // accepted, not yet taken by the app: the listener it waits in

    // --- shared --------------------------------------------------------------------------------
    detail::ByteRing rx_; // stack -> app
    detail::ByteRing tx_; // app -> stack
    std::atomic<std::uint32_t> state_{0};
    std::atomic<int> error_{0};             // pending -errno (stack writes, app takes)
    std::atomic<std::uint32_t> app_flags_{0}; // app writes
    // Written by the stack before it publishes bound/connected (release), read after (acquire).
    Ipv4Endpoint local_{};
    Ipv4Endpoint remote_{};
    Ipv4Endpoint udp_default_{};            // UDP connect(): app side only

    // Listener: connections accepted by the stack, not yet handed to the app.
    Socket* next_accepted_ = nullptr;
    detail::MpscList<Socket, &Socket::next_accepted_> accepted_;
    std::atomic<int> accept_pending_{0}; // accepted and not yet taken (backlog limit)

    // Readiness notification.
    detail::WaitWord wait_;
    std::atomic<PollerState*> poller_{nullptr};
    std::atomic<bool> poll_queued_{false};
    Socket* next_ready_ = nullptr;

    // The coalesced kick (holds a reference while queued).
    Request kick_;
    std::atomic<bool> kick_queued_{false};

    // --- app side --------------------------------------------------------------------------------
    std::mutex rx_mutex_;               // one consumer of rx_ / accepted_ at a time
    std::mutex tx_mutex_;               // one producer of tx_ at a time
    std::deque<Socket*> accept_fifo_;   // under rx_mutex_
    std::uint32_t recved_seen_ = 0;     // under rx_mutex_: consumed bytes last announced by a kick
};

// Shared part of a Poller: sockets push themselves (stack threads), the app waits.
struct PollerState {
    detail::MpscList<Socket, &Socket::next_ready_> ready;
    detail::WaitWord wait;
    std::atomic<bool> interrupted{false}; // Poller::interrupt(), taken by the next wait() round
    std::deque<Socket*> pending; // taken from `ready`, not yet handed out (wait() caller only)
    std::mutex stacks_mutex;
    std::vector<Stack*> stacks;  // stacks whose sockets were members (quiescence on destruction)
};

} // namespace gazelle::stack
