// SPDX-License-Identifier: BSD-3-Clause
// The app threads' side of the socket API (stack/api.h): rings, readiness, requests to the stack.
#include "stack/api.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>

extern "C" {
#include "lwip/opt.h"
}

#include "stack/internal/socket.h"
#include "stack/internal/stack.h"

namespace gazelle::stack {

namespace {

// Each direction of a socket: a ring as large as lwIP's window, so that whatever lwIP delivers
// fits (the window only reopens for bytes the app consumed).
constexpr std::uint32_t k_ring_bytes = 64 * 1024;
static_assert(k_ring_bytes >= TCP_WND && (k_ring_bytes & (k_ring_bytes - 1)) == 0);
// recv() reopens the window (a kick to the stack) once this much was consumed, or the ring is empty.
constexpr std::uint32_t k_window_kick_bytes = 16 * 1024;
constexpr std::size_t k_max_datagram = 65507;

using Clock = std::chrono::steady_clock;

// Rounded up: a wait truncated to 0 ms in the deadline's last millisecond returns at once, and the
// caller's loop would spin through futex/poll calls (each a context switch) until the deadline.
int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000));
}

// Posts a synchronous request and waits until the stack executed it.
int call(Socket* s, Request::Kind kind, Ipv4Endpoint endpoint = {}, int arg = 0) {
    Request r;
    r.kind = kind;
    r.socket = s;
    r.endpoint = endpoint;
    r.arg = arg;
    if (!s->stack_.post(&r)) {
        return -ESHUTDOWN;
    }
    while (r.done.load(std::memory_order_acquire) == 0) {
        detail::futex_wait_private(r.done, 0, -1);
    }
    return r.result;
}

bool is_listener(const Socket* s) { return (s->state_.load(std::memory_order_acquire) & state::listening) != 0; }

void queue_on_poller(Socket* s, PollerState* poller) {
    if (!s->poll_queued_.exchange(true, std::memory_order_acq_rel)) {
        s->add_ref();
        poller->ready.push(s);
        poller->wait.notify();
    }
}

} // namespace

// --- Socket ----------------------------------------------------------------------------------------

Socket::Socket(Stack& stack, SocketType type, std::uint32_t ring_bytes)
    : stack_(stack), type_(type), rx_(ring_bytes), tx_(ring_bytes) {}

Socket::~Socket() {
    if (holds_tcp_slot_) {
        stack_.release_tcp_socket();
    }
}

void Socket::release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        delete this;
    }
}

void Socket::notify() {
    wait_.notify();
    if (PollerState* poller = poller_.load(std::memory_order_acquire); poller != nullptr) {
        queue_on_poller(this, poller);
    }
}

// --- calls ---------------------------------------------------------------------------------------------

Socket* socket_open(Stack& stack, SocketType type, int* error) {
    if (!stack.accepting_.load(std::memory_order_acquire)) {
        if (error != nullptr) {
            *error = -ESHUTDOWN;
        }
        return nullptr;
    }
    if (type == SocketType::tcp && !stack.reserve_tcp_socket()) {
        if (error != nullptr) {
            *error = -ENOBUFS; // the process's tcp_conn_count is reached
        }
        return nullptr;
    }
    auto* s = new (std::nothrow) Socket(stack, type, k_ring_bytes);
    if (s == nullptr) {
        if (type == SocketType::tcp) {
            stack.release_tcp_socket();
        }
        if (error != nullptr) {
            *error = -ENOMEM;
        }
        return nullptr;
    }
    s->holds_tcp_slot_ = type == SocketType::tcp;
    return s;
}

int bind(Socket* s, Ipv4Endpoint local, bool reuse_address) {
    return call(s, Request::Kind::bind, local, reuse_address ? 1 : 0);
}

int listen(Socket* s, int backlog) {
    if (s->type_ != SocketType::tcp) {
        return -EOPNOTSUPP;
    }
    return call(s, Request::Kind::listen, {}, backlog);
}

Socket* accept(Socket* s, Ipv4Endpoint* peer, int* error) {
    auto fail = [&](int code) -> Socket* {
        if (error != nullptr) {
            *error = code;
        }
        return nullptr;
    };
    if (!is_listener(s)) {
        return fail(-EINVAL);
    }
    std::lock_guard lock(s->rx_mutex_);
    if (s->accept_fifo_.empty()) {
        for (Socket* c = s->accepted_.take_all(); c != nullptr; c = c->next_accepted_) {
            s->accept_fifo_.push_back(c);
        }
    }
    if (s->accept_fifo_.empty()) {
        const int pending = s->error_.load(std::memory_order_acquire);
        return fail(pending != 0 ? pending : -EAGAIN);
    }
    Socket* child = s->accept_fifo_.front();
    s->accept_fifo_.pop_front();
    s->accept_pending_.fetch_sub(1, std::memory_order_acq_rel);
    if (peer != nullptr) {
        *peer = child->remote_;
    }
    return child;
}

int connect(Socket* s, Ipv4Endpoint remote) {
    if (s->type_ == SocketType::udp) {
        if ((s->state_.load(std::memory_order_acquire) & state::bound) == 0) {
            if (const int rc = bind(s, Ipv4Endpoint{}); rc != 0) {
                return rc;
            }
        }
        std::lock_guard lock(s->tx_mutex_);
        s->udp_default_ = remote;
        return 0;
    }
    return call(s, Request::Kind::connect, remote);
}

ssize_t send(Socket* s, const void* data, std::size_t len) {
    if (s->type_ == SocketType::udp) {
        Ipv4Endpoint to;
        {
            std::lock_guard lock(s->tx_mutex_);
            to = s->udp_default_;
        }
        return to.addr == 0 ? -EDESTADDRREQ : send_to(s, data, len, to);
    }
    const std::uint32_t st = s->state_.load(std::memory_order_acquire);
    if ((st & state::failed) != 0) {
        const int pending = s->error_.exchange(0);
        return pending != 0 ? pending : -EPIPE;
    }
    if ((st & state::wr_shut) != 0 || (s->app_flags_.load() & app_flag::shut_wr) != 0) {
        return -EPIPE;
    }
    if ((st & (state::connected | state::connecting)) == 0) {
        return -ENOTCONN;
    }
    std::uint32_t n = 0;
    {
        std::lock_guard lock(s->tx_mutex_);
        n = s->tx_.write(data, len);
    }
    if (n == 0) {
        return len == 0 ? 0 : -EAGAIN;
    }
    s->stack_.kick(*s);
    return n;
}

ssize_t recv(Socket* s, void* buf, std::size_t len) {
    if (s->type_ == SocketType::udp) {
        return recv_from(s, buf, len, nullptr);
    }
    // State first: data published before `eof` is then visible in the ring.
    const std::uint32_t st = s->state_.load(std::memory_order_acquire);
    std::uint32_t n = 0;
    bool kick = false;
    {
        std::lock_guard lock(s->rx_mutex_);
        n = s->rx_.read(buf, len);
        if (n != 0) {
            const std::uint32_t unannounced = s->rx_.consumed_total() - s->recved_seen_;
            if (unannounced >= k_window_kick_bytes || s->rx_.empty()) {
                s->recved_seen_ = s->rx_.consumed_total();
                kick = true;
            }
        }
    }
    if (n != 0) {
        if (kick) {
            s->stack_.kick(*s);
        }
        return n;
    }
    if ((st & state::eof) != 0) {
        const int pending = (st & state::failed) != 0 ? s->error_.exchange(0) : 0;
        return pending;
    }
    if ((st & (state::connected | state::connecting)) == 0) {
        return -ENOTCONN;
    }
    return len == 0 ? 0 : -EAGAIN;
}

ssize_t send_to(Socket* s, const void* data, std::size_t len, Ipv4Endpoint to) {
    if (s->type_ != SocketType::udp || to.addr == 0 || to.port == 0) {
        return -EINVAL;
    }
    if (len > k_max_datagram || len + sizeof(DatagramHeader) > s->tx_.capacity()) {
        return -EMSGSIZE;
    }
    if ((s->state_.load(std::memory_order_acquire) & state::bound) == 0) {
        if (const int rc = bind(s, Ipv4Endpoint{}); rc != 0 && rc != -EINVAL) {
            return rc;
        }
    }
    const DatagramHeader h{static_cast<std::uint32_t>(len), to.addr, to.port, 0};
    {
        std::lock_guard lock(s->tx_mutex_);
        if (s->tx_.free_space() < sizeof h + len) {
            return -EAGAIN;
        }
        s->tx_.copy_at(0, &h, sizeof h);
        s->tx_.copy_at(sizeof h, data, static_cast<std::uint32_t>(len));
        s->tx_.publish(static_cast<std::uint32_t>(sizeof h + len));
    }
    s->stack_.kick(*s);
    return static_cast<ssize_t>(len);
}

ssize_t recv_from(Socket* s, void* buf, std::size_t len, Ipv4Endpoint* from) {
    if (s->type_ != SocketType::udp) {
        return -EINVAL;
    }
    std::lock_guard lock(s->rx_mutex_);
    DatagramHeader h{};
    if (s->rx_.peek(&h, sizeof h) != sizeof h) {
        return -EAGAIN;
    }
    s->rx_.consume(sizeof h);
    const auto take = static_cast<std::uint32_t>(std::min<std::size_t>(len, h.len));
    (void)s->rx_.read(buf, take);
    s->rx_.consume(h.len - take);
    if (from != nullptr) {
        *from = Ipv4Endpoint{h.addr, h.port};
    }
    return take;
}

int shutdown_write(Socket* s) {
    if (s->type_ != SocketType::tcp) {
        return -EOPNOTSUPP;
    }
    if ((s->state_.load(std::memory_order_acquire) & (state::connected | state::connecting)) == 0) {
        return -ENOTCONN;
    }
    s->app_flags_.fetch_or(app_flag::shut_wr, std::memory_order_release);
    s->stack_.kick(*s);
    return 0;
}

void close(Socket* s) {
    if (PollerState* poller = s->poller_.exchange(nullptr); poller != nullptr) {
        (void)poller; // a queued entry holds its own reference; wait() skips non-members
    }
    if (is_listener(s)) {
        // Connections nobody accepted: reset. The stack resets those that arrive after this.
        std::lock_guard lock(s->rx_mutex_);
        for (Socket* c = s->accepted_.take_all(); c != nullptr; c = c->next_accepted_) {
            s->accept_fifo_.push_back(c);
        }
        for (Socket* child : s->accept_fifo_) {
            child->app_flags_.fetch_or(app_flag::closed | app_flag::abort, std::memory_order_release);
            child->stack_.kick(*child);
            child->release();
        }
        s->accept_fifo_.clear();
    }
    // The app's place under the connection limit is free at once, as a closed fd is in Linux
    // (lwIP may keep the pcb through FIN_WAIT and TIME_WAIT; that is the arena's business).
    if (s->holds_tcp_slot_) {
        s->holds_tcp_slot_ = false;
        s->stack_.release_tcp_socket();
    }
    s->app_flags_.fetch_or(app_flag::closed, std::memory_order_release);
    s->stack_.kick(*s);
    s->release();
}

std::uint32_t events(Socket* s) {
    const std::uint32_t st = s->state_.load(std::memory_order_acquire);
    std::uint32_t ev = 0;
    if ((st & state::failed) != 0) {
        ev |= k_hangup | k_readable | k_writable;
        if (s->error_.load(std::memory_order_relaxed) != 0) {
            ev |= k_error;
        }
    }
    if ((st & state::listening) != 0) {
        std::lock_guard lock(s->rx_mutex_);
        if (!s->accept_fifo_.empty() || !s->accepted_.empty()) {
            ev |= k_readable;
        }
        return ev;
    }
    if (s->type_ == SocketType::udp) {
        if (!s->rx_.empty()) {
            ev |= k_readable;
        }
        if (s->tx_.free_space() > sizeof(DatagramHeader)) {
            ev |= k_writable;
        }
        return ev;
    }
    if (!s->rx_.empty() || (st & state::eof) != 0) {
        ev |= k_readable;
    }
    if ((st & state::eof) != 0) {
        ev |= k_hangup;
    }
    if ((st & state::connected) != 0 && (st & state::wr_shut) == 0 && s->tx_.free_space() != 0) {
        ev |= k_writable;
    }
    return ev;
}

int socket_error(Socket* s) { return s->error_.exchange(0, std::memory_order_acq_rel); }

std::uint32_t wait(Socket* s, std::uint32_t interest, int timeout_ms) {
    interest |= k_error | k_hangup;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        const std::uint32_t seen = s->wait_.snapshot();
        const std::uint32_t ev = events(s);
        if ((ev & interest) != 0) {
            return ev;
        }
        if (timeout_ms >= 0 && Clock::now() >= deadline) {
            return ev;
        }
        s->wait_.wait(seen, timeout_ms < 0 ? 1000 : remaining_ms(deadline));
    }
}

Ipv4Endpoint local_endpoint(Socket* s) {
    (void)s->state_.load(std::memory_order_acquire);
    return s->local_;
}

Ipv4Endpoint peer_endpoint(Socket* s) {
    (void)s->state_.load(std::memory_order_acquire);
    return s->remote_;
}

Stack& stack_of(Socket* s) { return s->stack_; }

// --- Poller ------------------------------------------------------------------------------------------

Poller::Poller() : state_(new PollerState) {}

Poller::~Poller() {
    // A stack thread may still be pushing a socket onto us: wait until every stack that had a
    // member passed the end of a poll-loop iteration (or sleeps, or is gone).
    std::vector<Stack*> stacks;
    {
        std::lock_guard lock(state_->stacks_mutex);
        stacks = state_->stacks;
    }
    for (Stack* stack : stacks) {
        const std::uint64_t seen = stack->loops_.load(std::memory_order_acquire);
        const auto deadline = Clock::now() + std::chrono::milliseconds(200);
        while (stack->loops_.load(std::memory_order_acquire) == seen && !stack->asleep_.load() &&
               !stack->exited_.load() && Clock::now() < deadline) {
            std::this_thread::yield();
        }
    }
    for (Socket* s = state_->ready.take_all(); s != nullptr;) {
        Socket* next = s->next_ready_;
        s->poll_queued_.store(false);
        s->release();
        s = next;
    }
    for (Socket* s : state_->pending) {
        s->poll_queued_.store(false);
        s->release();
    }
    delete state_;
}

int Poller::add(Socket* s) {
    PollerState* expected = nullptr;
    if (!s->poller_.compare_exchange_strong(expected, state_)) {
        return expected == state_ ? 0 : -EBUSY;
    }
    {
        std::lock_guard lock(state_->stacks_mutex);
        if (std::find(state_->stacks.begin(), state_->stacks.end(), &s->stack_) == state_->stacks.end()) {
            state_->stacks.push_back(&s->stack_);
        }
    }
    if (events(s) != 0) {
        queue_on_poller(s, state_);
    }
    return 0;
}

void Poller::remove(Socket* s) {
    PollerState* expected = state_;
    (void)s->poller_.compare_exchange_strong(expected, nullptr);
}

unsigned Poller::wait(std::span<Socket*> out, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        for (Socket* s = state_->ready.take_all(); s != nullptr;) {
            Socket* next = s->next_ready_;
            state_->pending.push_back(s);
            s = next;
        }
        unsigned n = 0;
        while (n < out.size() && !state_->pending.empty()) {
            Socket* s = state_->pending.front();
            state_->pending.pop_front();
            // Cleared before the app looks at the socket: a change from now on queues it again.
            // An exchange for the reason given in StackEngine::execute for kick_queued_: the
            // stack's exchange(true) after its change is read by ours, so the app sees the change.
            (void)s->poll_queued_.exchange(false, std::memory_order_acq_rel);
            if (s->poller_.load(std::memory_order_acquire) == state_) {
                out[n++] = s; // a member: the app holds its own reference
            }
            s->release();
        }
        if (n != 0 || (timeout_ms >= 0 && Clock::now() >= deadline)) {
            return n;
        }
        const std::uint32_t seen = state_->wait.snapshot();
        if (state_->interrupted.exchange(false, std::memory_order_acq_rel)) {
            return 0;
        }
        if (!state_->ready.empty()) {
            continue;
        }
        state_->wait.wait(seen, timeout_ms < 0 ? 1000 : remaining_ms(deadline));
    }
}

void Poller::interrupt() {
    // Flag before the bump: a waiter that snapshots the word after our bump sees the flag.
    state_->interrupted.store(true, std::memory_order_release);
    state_->wait.notify();
}

} // namespace gazelle::stack
