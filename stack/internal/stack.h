// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Stack: the part of a stack that app threads see (identity, request list, doorbell, liveness);
// the lwIP instance itself is the StackEngine (stack/internal/engine.h), which lives on the stack
// thread only.

#include <atomic>
#include <cstdint>

#include "fabric/inbox.h"
#include "fabric/types.h"
#include "stack/internal/mpsc_list.h"
#include "stack/internal/socket.h"
#include "stack/runtime.h"

namespace gazelle::stack {

class Stack {
public:
    // `tcp_sockets` counts the TCP sockets of every stack of the process (one limit for all).
    Stack(fabric::QueueSlot slot, std::uint16_t lcore, const StackOptions& options,
          std::atomic<unsigned>& tcp_sockets)
        : slot_(slot), lcore_(lcore), options_(options), tcp_sockets_(tcp_sockets) {}
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;

    // Any thread. Queues a request and wakes the stack thread if it sleeps. False once the stack
    // has stopped taking requests (the request was not queued).
    // A post either completes before the engine's final drain (which waits for posts in flight)
    // or sees accepting_ false: no request is ever left unserved.
    bool post(Request* request) {
        posting_.fetch_add(1, std::memory_order_seq_cst);
        if (!accepting_.load(std::memory_order_seq_cst)) {
            posting_.fetch_sub(1, std::memory_order_release);
            return false;
        }
        requests_.push(request);
        doorbell_.ring_doorbell();
        posting_.fetch_sub(1, std::memory_order_release);
        return true;
    }
    // Any thread: queues s's kick unless already queued (the kick holds a reference).
    void kick(Socket& s) {
        if (s.kick_queued_.exchange(true, std::memory_order_acq_rel)) {
            return;
        }
        s.add_ref();
        s.kick_.kind = Request::Kind::kick;
        s.kick_.socket = &s;
        if (!post(&s.kick_)) {
            s.kick_queued_.store(false, std::memory_order_release);
            s.release();
        }
    }

    // Any thread: takes one of the process's TCP sockets (StackOptions::max_tcp_connections);
    // false at the limit. close() gives it back (or
    // Socket::~Socket, for an accepted socket the app never took).
    bool reserve_tcp_socket() {
        const unsigned limit = options_.max_tcp_connections;
        unsigned n = tcp_sockets_.load(std::memory_order_relaxed);
        do {
            if (limit != 0 && n >= limit) {
                return false;
            }
        } while (!tcp_sockets_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
        return true;
    }
    void release_tcp_socket() { tcp_sockets_.fetch_sub(1, std::memory_order_relaxed); }

    const fabric::QueueSlot slot_;
    const std::uint16_t lcore_;
    const StackOptions options_;
    std::atomic<unsigned>& tcp_sockets_;
    // Set by the engine before the stack accepts requests, constant afterwards.
    fabric::Epoch epoch_ = 0;
    std::uint32_t ipv4_ = 0;        // network byte order
    std::uint16_t port_index_ = 0;  // registry port
    fabric::Inbox doorbell_;        // the forwarding inbox (producer side: ring_doorbell only)
    std::atomic<bool> doorbell_ready_{false}; // doorbell_ is set (release) and never changes again

    detail::MpscList<Request, &Request::next_in_list> requests_;
    std::atomic<bool> accepting_{false};   // requests are served
    std::atomic<std::uint32_t> posting_{0}; // post() calls in flight
    std::atomic<bool> stop_{false};        // stop requested
    std::atomic<bool> exited_{false};      // the engine is gone: nobody serves requests any more
    // Passes of the poll loop, and whether it sleeps: a PollerState is freed only once every stack
    // that could still hold a pointer to it passed a loop iteration (or sleeps).
    std::atomic<std::uint64_t> loops_{0};
    std::atomic<bool> asleep_{false};
};

} // namespace gazelle::stack
