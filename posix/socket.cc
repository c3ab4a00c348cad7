// SPDX-License-Identifier: BSD-3-Clause
// Sockets: the object, placement (kernel or fabric), the stack sockets behind them, close and dup.
// The calls themselves are in socket_calls.cc.
#include "posix/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <unordered_map>

#include "posix/epoll.h"
#include "posix/internal/placement.h"
#include "posix/log.h"
#include "posix/process.h"
#include "posix/real_calls.h"

namespace gazelle::posix {

using namespace detail;

namespace {

constexpr std::uint32_t k_err_events = POLLERR | POLLHUP;

// --- the pools and the stack-socket registry -----------------------------------------------------

std::mutex g_pool_mutex;
std::vector<PosixSocket*> g_free_sockets;
// Sockets whose last reference went while exit/exec was stopping the fabric (a FabricCall is
// refused then): their stack sockets are closed by close_all_fabric_sockets(), not here.
std::vector<PosixSocket*> g_parked_sockets;

std::mutex g_registry_mutex;
std::unordered_map<stack::Socket*, PosixSocket*>* g_registry = nullptr;

// Forgets the table slots of a socket that became a kernel socket (calls then go straight to the C
// library). Under p.state_mutex_.
void forget_fds(PosixSocket& p) {
    const std::vector<int> fds = p.fds_;
    for (int fd : fds) {
        (void)fd_table().remove_if(fd, &p);
    }
}

bool on_fabric_subnet(std::uint32_t dst) {
    Process& proc = process();
    return proc.has_gateway() || (dst & proc.fabric_netmask()) == (proc.fabric_ipv4() & proc.fabric_netmask());
}

// Connections the app closed, FIN sent, until their peer closed too (then stack::close()). The
// kernel finishes such closes after the process is gone; a stack cannot outlive its process, so
// exit waits (bounded) for them instead of resetting them when the stacks stop.
struct Closing {
    stack::Socket* socket;
    std::chrono::steady_clock::time_point since;
};
std::mutex g_closing_mutex;
std::vector<Closing> g_closing;
// Past this the stack keeps the connection in FIN_WAIT on its own (lwIP times it out).
constexpr auto k_closing_watch = std::chrono::seconds(2);

// Closes p's stack sockets, keeping an established connection until its close handshake ends.
void release_stack_sockets(PosixSocket& p) {
    const int phase = p.connect_phase_.load();
    if (p.nb_stacks_ == 1 && p.is_tcp() && !p.listening_ && (phase == 1 || phase == 2) &&
        // Unread data, or a peer already gone: close at once (Linux resets in the first case).
        (stack::events(p.primary()) & (stack::k_hangup | stack::k_error | stack::k_readable)) == 0 &&
        stack::shutdown_write(p.primary()) == 0) {
        unregister_stack_socket(p.primary());
        {
            std::lock_guard lock(g_closing_mutex);
            g_closing.push_back(Closing{p.primary(), std::chrono::steady_clock::now()});
        }
        p.stacks_[0] = nullptr;
        p.nb_stacks_ = 0;
        return;
    }
    close_stack_sockets(p);
}

// Opens the fabric side of p (under p.state_mutex_, the process attached): a bound (or listening)
// socket per stack for a listener, one socket otherwise. 0 or -errno.
int open_on_fabric(PosixSocket& p) {
    Process& proc = process();
    FabricCall call;
    if (!call) {
        return -EBADFD;
    }
    const bool bound = p.bound_;
    const stack::Ipv4Endpoint local = bound ? endpoint_of(p.bind_addr_) : stack::Ipv4Endpoint{};
    if (bound && local.addr != 0 && local.addr != proc.fabric_ipv4()) {
        return -EADDRNOTAVAIL;
    }
    const std::size_t count = p.listening_ ? std::min<std::size_t>(proc.nb_stacks(), PosixSocket::k_max_stacks) : 1;
    stack::Ipv4Endpoint chosen = local;
    for (std::size_t i = 0; i < count; ++i) {
        stack::Stack& st = p.listening_ ? proc.stack(i) : proc.next_stack();
        int err = 0;
        stack::Socket* s = stack::socket_open(st, p.type_, &err);
        if (s == nullptr) {
            close_stack_sockets(p);
            return err != 0 ? err : -ENOMEM;
        }
        int rc = 0;
        if (bound || p.listening_) {
            bool reuse = false;
            if (p.type_ == stack::SocketType::udp) {
                std::lock_guard lock(p.options_mutex_);
                reuse = p.options_.reuseaddr != 0 || p.options_.reuseport != 0;
            }
            rc = stack::bind(s, chosen, reuse);
        }
        if (rc == 0 && p.listening_) {
            rc = stack::listen(s, p.backlog_);
            if (rc == 0 && i == 0) {
                chosen.port = stack::local_endpoint(s).port; // the other stacks listen on the same port
            }
        }
        if (rc != 0) {
            stack::close(s);
            close_stack_sockets(p);
            return rc;
        }
        if (const int w = add_stack_socket(p, s); w != 0) {
            close_stack_sockets(p);
            return w;
        }
    }
    p.fork_gen_ = proc.fork_gen();
    p.state_.store(SockState::fabric, std::memory_order_release);
    counters().fabric_sockets.fetch_add(1, std::memory_order_relaxed);
    epoll_socket_placed(p, true);
    return 0;
}

} // namespace

namespace detail {

int fail(int code) {
    errno = code;
    return -1;
}

stack::Ipv4Endpoint endpoint_of(const sockaddr_in& sin) { return {sin.sin_addr.s_addr, sin.sin_port}; }

std::string text_of(stack::Ipv4Endpoint ep) {
    char ip[INET_ADDRSTRLEN] = "?";
    in_addr a{};
    a.s_addr = ep.addr;
    (void)inet_ntop(AF_INET, &a, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(ep.port));
}

bool is_orphan(const PosixSocket& p) {
    const SockState st = p.state_.load(std::memory_order_acquire);
    return st == SockState::orphan ||
           ((st == SockState::fabric || st == SockState::deferred) && p.fork_gen_ != process().fork_gen());
}

int orphan_error(int fd) {
    if (counters().orphaned_calls.fetch_add(1, std::memory_order_relaxed) == 0) {
        log_message(conf::LogLevel::warning,
                    "socket %d belongs to the fabric stack of another process (inherited across fork, or the stacks "
                    "stopped at exec); it cannot be used here: calls fail with EBADFD",
                    fd);
    }
    return fail(EBADFD);
}

void to_kernel(int fd, PosixSocket& p, KernelReason reason) {
    p.state_.store(SockState::kernel, std::memory_order_release);
    epoll_socket_placed(p, false);
    count_kernel(reason);
    GZ_LOG(debug, "socket %d: kernel socket (%s)", fd, to_string(reason));
    forget_fds(p);
}

// Where a socket goes for destination dst (connect, sendto): 0 fabric, 1 kernel, -errno.
int place_for_destination(int fd, PosixSocket& p, std::uint32_t dst) {
    Process& proc = process();
    if (proc.is_kernel_address(dst)) {
        to_kernel(fd, p, KernelReason::kernel_address);
        return 1;
    }
    const std::uint32_t hint = p.bound_ ? p.bind_addr_.sin_addr.s_addr : 0;
    switch (proc.ensure_attached(hint)) {
    case AttachOutcome::attached: break;
    case AttachOutcome::kernel: to_kernel(fd, p, KernelReason::not_attached); return 1;
    case AttachOutcome::error: return -ENETDOWN;
    }
    if (!on_fabric_subnet(dst)) {
        to_kernel(fd, p, KernelReason::off_fabric);
        return 1;
    }
    return 0;
}

void close_stack_sockets(PosixSocket& p) {
    for (unsigned i = 0; i < p.nb_stacks_; ++i) {
        unregister_stack_socket(p.stacks_[i]);
        stack::close(p.stacks_[i]);
        p.stacks_[i] = nullptr;
    }
    p.nb_stacks_ = 0;
}

int add_stack_socket(PosixSocket& p, stack::Socket* s) {
    p.stacks_[p.nb_stacks_++] = s;
    register_stack_socket(s, &p);
    return process().watch(s);
}

// A deferred socket becomes a fabric socket (or a kernel one if the process cannot attach).
// Under p.state_mutex_. 0 fabric, 1 kernel, -errno.
int materialize_locked(int fd, PosixSocket& p) {
    if (p.state_.load() != SockState::deferred) {
        return p.state_.load() == SockState::kernel ? 1 : 0;
    }
    switch (process().ensure_attached(p.bound_ ? p.bind_addr_.sin_addr.s_addr : 0)) {
    case AttachOutcome::attached: break;
    case AttachOutcome::error: return -ENETDOWN;
    case AttachOutcome::kernel: {
        // Replay what was recorded on the kernel socket; its errors are now the call's.
        to_kernel(fd, p, KernelReason::not_attached);
        if (p.bound_ && real().bind(fd, reinterpret_cast<const sockaddr*>(&p.bind_addr_), sizeof p.bind_addr_) != 0) {
            const int err = errno;
            GZ_LOG(warning, "socket %d: replaying bind() on its kernel socket (the process could not attach) failed: %s", fd, std::strerror(err));
            return -err;
        }
        if (p.listening_ && real().listen(fd, p.backlog_) != 0) {
            const int err = errno;
            GZ_LOG(warning, "socket %d: replaying listen() on its kernel socket (the process could not attach) failed: %s", fd, std::strerror(err));
            return -err;
        }
        return 1;
    }
    }
    const int rc = open_on_fabric(p);
    if (rc == 0 && (p.bound_ || p.listening_)) {
        GZ_LOG(debug, "socket %d: on the fabric (%s %s)", fd, p.listening_ ? "listening on" : "bound to",
               text_of(stack::local_endpoint(p.primary())).c_str());
    }
    return rc;
}

int materialize(int fd, PosixSocket& p) {
    if (p.state() != SockState::deferred) {
        return p.state() == SockState::kernel ? 1 : 0;
    }
    std::lock_guard lock(p.state_mutex_);
    return materialize_locked(fd, p);
}

// The usual preamble of a data call: 0 = use the fabric, 1 = use the kernel socket, -1 = failed
// (errno set).
int route(int fd, PosixSocket& p) {
    switch (p.state()) {
    case SockState::undecided:
    case SockState::kernel: return 1;
    case SockState::orphan: return orphan_error(fd);
    case SockState::deferred: {
        if (is_orphan(p)) {
            return orphan_error(fd);
        }
        const int rc = materialize(fd, p);
        if (rc < 0) {
            return fail(-rc);
        }
        return rc;
    }
    case SockState::fabric:
        if (is_orphan(p)) {
            return orphan_error(fd);
        }
        return 0;
    }
    return 1;
}

} // namespace detail

// --- Deadline --------------------------------------------------------------------------------------

namespace {
timespec now_mono() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}
timespec add_usec(timespec t, std::int64_t usec) {
    t.tv_sec += static_cast<time_t>(usec / 1000000);
    t.tv_nsec += static_cast<long>((usec % 1000000) * 1000);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec += 1;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
} // namespace

Deadline Deadline::after_usec(std::int64_t usec) {
    Deadline d;
    d.infinite = false;
    d.at = add_usec(now_mono(), std::max<std::int64_t>(usec, 0));
    return d;
}

Deadline Deadline::after_ms(int ms) { return ms < 0 ? Deadline{} : after_usec(static_cast<std::int64_t>(ms) * 1000); }

bool Deadline::expired() const {
    if (infinite) {
        return false;
    }
    const timespec n = now_mono();
    return n.tv_sec > at.tv_sec || (n.tv_sec == at.tv_sec && n.tv_nsec >= at.tv_nsec);
}

timespec Deadline::remaining() const {
    if (infinite) {
        return timespec{INT32_MAX, 0};
    }
    const timespec n = now_mono();
    timespec r{at.tv_sec - n.tv_sec, at.tv_nsec - n.tv_nsec};
    if (r.tv_nsec < 0) {
        r.tv_sec -= 1;
        r.tv_nsec += 1000000000L;
    }
    if (r.tv_sec < 0) {
        return timespec{0, 0};
    }
    return r;
}

int Deadline::remaining_ms() const {
    if (infinite) {
        return -1;
    }
    const timespec r = remaining();
    const long long ms = static_cast<long long>(r.tv_sec) * 1000 + (r.tv_nsec + 999999) / 1000000;
    return static_cast<int>(std::min<long long>(ms, INT32_MAX));
}

// --- PosixSocket -----------------------------------------------------------------------------------

void PosixSocket::reinit(int type, bool nonblock) {
    state_.store(SockState::undecided, std::memory_order_relaxed);
    type_ = type == SOCK_DGRAM ? stack::SocketType::udp : stack::SocketType::tcp;
    fork_gen_ = process().fork_gen();
    fds_.clear();
    bound_ = false;
    bind_addr_ = {};
    listening_ = false;
    backlog_ = 0;
    stacks_.fill(nullptr);
    nb_stacks_ = 0;
    accept_next_.store(0, std::memory_order_relaxed);
    udp_peer_ = {};
    nonblock_.store(nonblock, std::memory_order_relaxed);
    rcvtimeo_usec_.store(0, std::memory_order_relaxed);
    sndtimeo_usec_.store(0, std::memory_order_relaxed);
    shut_rd_.store(false, std::memory_order_relaxed);
    shut_wr_.store(false, std::memory_order_relaxed);
    listener_shut_.store(false, std::memory_order_relaxed);
    connect_phase_.store(0, std::memory_order_relaxed);
    options_ = Options{};
    peeked_.clear();
    has_peeked_.store(false, std::memory_order_relaxed);
    peeked_from_ = {};
    watchers_.clear();
}

PosixSocket* PosixSocket::create(int type, bool nonblock) {
    PosixSocket* p = nullptr;
    {
        std::lock_guard lock(g_pool_mutex);
        if (!g_free_sockets.empty()) {
            p = g_free_sockets.back();
            g_free_sockets.pop_back();
        }
    }
    if (p == nullptr) {
        p = new (std::nothrow) PosixSocket;
        if (p == nullptr) {
            return nullptr;
        }
    }
    p->reinit(type, nonblock);
    p->revive();
    return p;
}

PosixSocket* PosixSocket::create_accepted(stack::Socket* s, bool nonblock) {
    PosixSocket* p = create(SOCK_STREAM, nonblock);
    if (p == nullptr) {
        return nullptr;
    }
    p->connect_phase_.store(2, std::memory_order_relaxed);
    if (add_stack_socket(*p, s) != 0) {
        close_stack_sockets(*p);
        p->unref();
        return nullptr;
    }
    p->state_.store(SockState::fabric, std::memory_order_release);
    return p;
}

void PosixSocket::last_ref_dropped() {
    // The last descriptor and the last call are gone: the kernel would release the file now.
    // (In the child of an attached process the parent's locks and stacks are not ours: leave them.)
    if (fork_gen_ == process().fork_gen()) {
        {
            std::lock_guard lock(watchers_mutex_);
            for (Watcher* w : watchers_) {
                if (is_epoll_watcher(w)) {
                    detach_epoll_watcher(w, *this);
                }
            }
            watchers_.clear();
        }
        if (state() == SockState::fabric && nb_stacks_ != 0) {
            FabricCall call;
            if (!call) {
                std::lock_guard lock(g_pool_mutex);
                g_parked_sockets.push_back(this);
                return;
            }
            release_stack_sockets(*this);
        }
    }
    std::lock_guard lock(g_pool_mutex);
    g_free_sockets.push_back(this);
}

std::uint32_t PosixSocket::poll_events() {
    const SockState st = state();
    if (st == SockState::orphan) {
        return POLLERR | POLLHUP;
    }
    if (st != SockState::fabric || nb_stacks_ == 0) {
        return 0;
    }
    if (listening_) {
        std::uint32_t ev = 0;
        for (unsigned i = 0; i < nb_stacks_; ++i) {
            ev |= stack::events(stacks_[i]);
        }
        std::uint32_t r = (ev & stack::k_readable) != 0 ? (POLLIN | POLLRDNORM) : 0;
        if (listener_shut_.load(std::memory_order_acquire)) {
            r |= POLLIN | POLLHUP;
        }
        return r;
    }
    const std::uint32_t ev = stack::events(primary());
    std::uint32_t r = 0;
    if ((ev & stack::k_readable) != 0 || has_peeked_.load(std::memory_order_acquire)) {
        r |= POLLIN | POLLRDNORM;
    }
    if ((ev & stack::k_writable) != 0 && !shut_wr_.load(std::memory_order_relaxed)) {
        r |= POLLOUT | POLLWRNORM;
    }
    if ((ev & stack::k_hangup) != 0) {
        r |= POLLRDHUP | POLLIN | POLLRDNORM;
        if ((ev & stack::k_error) != 0 || shut_wr_.load(std::memory_order_relaxed)) {
            r |= POLLHUP;
        }
    }
    if ((ev & stack::k_error) != 0) {
        r |= POLLERR;
    }
    if (shut_rd_.load(std::memory_order_relaxed)) {
        r |= POLLIN | POLLRDNORM | POLLRDHUP;
    }
    return r;
}

void PosixSocket::dispatch() {
    wait_.notify();
    std::lock_guard lock(watchers_mutex_);
    if (watchers_.empty()) {
        return;
    }
    std::uint32_t ev = 0;
    {
        FabricCall call;
        if (call) {
            ev = poll_events();
        }
    }
    bool exclusive_delivered = false;
    for (Watcher* w : watchers_) {
        if (w->exclusive()) {
            if (!exclusive_delivered) {
                exclusive_delivered = w->notify(*this, ev);
            }
            continue;
        }
        (void)w->notify(*this, ev);
    }
}

void PosixSocket::add_watcher(Watcher* w) {
    std::lock_guard lock(watchers_mutex_);
    watchers_.push_back(w);
}

void PosixSocket::remove_watcher(Watcher* w) {
    std::lock_guard lock(watchers_mutex_);
    const auto it = std::find(watchers_.begin(), watchers_.end(), w);
    if (it != watchers_.end()) {
        *it = watchers_.back();
        watchers_.pop_back();
    }
}

int PosixSocket::wait_for(std::uint32_t interest, const Deadline& deadline) {
    for (;;) {
        const std::uint32_t seen = wait_.snapshot();
        std::uint32_t ev = 0;
        {
            FabricCall call;
            if (!call) {
                return -EBADFD;
            }
            ev = poll_events();
        }
        if ((ev & (interest | k_err_events)) != 0 || listener_shut_.load(std::memory_order_acquire)) {
            return 0;
        }
        if (deadline.expired()) {
            return -EAGAIN;
        }
        timespec left = deadline.remaining();
        const int rc = wait_.wait(seen, deadline.infinite ? nullptr : &left);
        if (rc == -EINTR) {
            return -EINTR;
        }
    }
}

// --- registry ----------------------------------------------------------------------------------------

void register_stack_socket(stack::Socket* s, PosixSocket* p) {
    std::lock_guard lock(g_registry_mutex);
    if (g_registry == nullptr) {
        g_registry = new std::unordered_map<stack::Socket*, PosixSocket*>;
    }
    (*g_registry)[s] = p;
}

void unregister_stack_socket(stack::Socket* s) {
    std::lock_guard lock(g_registry_mutex);
    if (g_registry != nullptr) {
        g_registry->erase(s);
    }
}

Ref<PosixSocket> lookup_stack_socket(stack::Socket* s) {
    std::lock_guard lock(g_registry_mutex);
    if (g_registry == nullptr) {
        return {};
    }
    const auto it = g_registry->find(s);
    if (it == g_registry->end() || !it->second->try_ref()) {
        return {};
    }
    return Ref<PosixSocket>::adopt(it->second);
}

Ref<PosixSocket> socket_of(int fd) {
    Ref<FdObject> obj = fd_table().get(fd);
    if (!obj || obj->kind() != FdKind::socket) {
        return {};
    }
    return Ref<PosixSocket>::adopt(static_cast<PosixSocket*>(obj.release()));
}

unsigned close_all_fabric_sockets(std::chrono::milliseconds graceful_limit) {
    std::vector<stack::Socket*> connections;
    auto forget = [&](PosixSocket& p) {
        for (unsigned i = 0; i < p.nb_stacks_; ++i) {
            unregister_stack_socket(p.stacks_[i]);
            if (!p.listening_ && p.is_tcp()) {
                // FIN now; closed below once the peer closed too (or the limit passed): a
                // connection closed this way needs no reset when the stack stops.
                (void)stack::shutdown_write(p.stacks_[i]);
                connections.push_back(p.stacks_[i]);
            } else {
                stack::close(p.stacks_[i]);
            }
            p.stacks_[i] = nullptr;
        }
        p.nb_stacks_ = 0;
        p.state_.store(SockState::orphan, std::memory_order_release);
    };
    std::vector<PosixSocket*> parked;
    {
        std::lock_guard lock(g_pool_mutex);
        parked.swap(g_parked_sockets);
    }
    for (PosixSocket* p : parked) {
        forget(*p);
        std::lock_guard lock(g_pool_mutex);
        g_free_sockets.push_back(p);
    }
    fd_table().for_each_unsafe([&](int, FdObject* obj) {
        if (obj->kind() != FdKind::socket) {
            return;
        }
        auto* p = static_cast<PosixSocket*>(obj);
        std::lock_guard lock(p->state_mutex_);
        if (p->state() == SockState::fabric && !is_orphan(*p)) {
            forget(*p);
        }
    });
    {
        std::lock_guard lock(g_closing_mutex);
        for (const Closing& c : g_closing) {
            connections.push_back(c.socket);
        }
        g_closing.clear();
    }
    const auto deadline = std::chrono::steady_clock::now() + graceful_limit;
    for (stack::Socket* s : connections) {
        while ((stack::events(s) & (stack::k_hangup | stack::k_error | stack::k_readable)) == 0 &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        stack::close(s);
    }
    return static_cast<unsigned>(connections.size());
}

void sweep_closing_sockets() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<stack::Socket*> done;
    {
        std::lock_guard lock(g_closing_mutex);
        for (std::size_t i = 0; i < g_closing.size();) {
            const Closing& c = g_closing[i];
            // Data for a closed socket: close now, the stack resets it as Linux does.
            if (now - c.since >= k_closing_watch ||
                (stack::events(c.socket) & (stack::k_hangup | stack::k_error | stack::k_readable)) != 0) {
                done.push_back(c.socket);
                g_closing[i] = g_closing.back();
                g_closing.pop_back();
            } else {
                ++i;
            }
        }
    }
    for (stack::Socket* s : done) {
        stack::close(s);
    }
}

void lock_socket_pools() {
    g_pool_mutex.lock();
    g_registry_mutex.lock();
}

void unlock_socket_pools() {
    g_registry_mutex.unlock();
    g_pool_mutex.unlock();
}

// --- close and dup -------------------------------------------------------------------------------------

int close_fd(int fd) {
    Ref<FdObject> obj = fd_table().remove(fd);
    if (obj && obj->kind() == FdKind::socket) {
        auto* p = static_cast<PosixSocket*>(obj.get());
        std::lock_guard lock(p->state_mutex_);
        const auto it = std::find(p->fds_.begin(), p->fds_.end(), fd);
        if (it != p->fds_.end()) {
            p->fds_.erase(it);
        }
    }
    // The number is free as soon as the kernel closes it; the object lives on while calls use it.
    return real().close(fd);
}

namespace {

// After a successful kernel dup onto newfd: newfd names the same object as oldfd.
int adopt_dup(int oldfd, int newfd) {
    Ref<FdObject> obj = fd_table().get(oldfd);
    if (!obj) {
        return newfd;
    }
    if (obj->kind() == FdKind::socket) {
        auto* p = static_cast<PosixSocket*>(obj.get());
        std::lock_guard lock(p->state_mutex_);
        if (p->state() == SockState::kernel) {
            return newfd;
        }
        p->fds_.push_back(newfd);
    }
    if (!fd_table().install(newfd, obj.get())) {
        GZ_LOG(warning, "descriptor %d: a duplicate of %d could not be tracked", newfd, oldfd);
    }
    return newfd;
}

} // namespace

int dup_fd(int fd) {
    if (!fd_table().has(fd)) {
        return real().dup(fd);
    }
    const int newfd = real().dup(fd);
    return newfd < 0 ? newfd : adopt_dup(fd, newfd);
}

int dupfd_min(int fd, int min, bool cloexec) {
    const int newfd = real().fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, min);
    if (newfd < 0 || !fd_table().has(fd)) {
        return newfd;
    }
    return adopt_dup(fd, newfd);
}

int dup3_fd(int oldfd, int newfd, int flags, bool is_dup2) {
    if (!fd_table().has(oldfd) && !fd_table().has(newfd)) {
        return is_dup2 ? real().dup2(oldfd, newfd) : real().dup3(oldfd, newfd, flags);
    }
    if (oldfd == newfd) {
        if (!is_dup2) {
            return fail(EINVAL);
        }
        return real().fcntl(oldfd, F_GETFD) < 0 ? -1 : newfd;
    }
    if (real().fcntl(oldfd, F_GETFD) < 0) {
        return -1; // EBADF: newfd stays open, as in Linux
    }
    // newfd is closed by the kernel's dup2: forget what it named first.
    if (Ref<FdObject> gone = fd_table().remove(newfd); gone && gone->kind() == FdKind::socket) {
        auto* p = static_cast<PosixSocket*>(gone.get());
        std::lock_guard lock(p->state_mutex_);
        const auto it = std::find(p->fds_.begin(), p->fds_.end(), newfd);
        if (it != p->fds_.end()) {
            p->fds_.erase(it);
        }
    }
    const int rc = is_dup2 ? real().dup2(oldfd, newfd) : real().dup3(oldfd, newfd, flags);
    return rc < 0 ? rc : adopt_dup(oldfd, rc);
}

} // namespace gazelle::posix
