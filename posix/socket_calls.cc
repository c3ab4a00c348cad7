// SPDX-License-Identifier: BSD-3-Clause
// The interposed calls on sockets (posix/socket.h ops::): the kernel path of an undecided or kernel
// socket, placement at bind/connect/listen/sendto, and the fabric side with Linux's blocking,
// flag and option rules.
#include "posix/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "posix/internal/placement.h"
#include "posix/log.h"
#include "posix/process.h"
#include "posix/real_calls.h"

namespace gazelle::posix {

using namespace detail;

namespace {

// Largest UDP datagram and the chunk for sendfile, FIONREAD and MSG_PEEK pulls.
constexpr std::size_t k_max_datagram = 65507;
constexpr std::size_t k_pull_bytes = 64 * 1024;
// What SO_RCVBUF/SO_SNDBUF report when not set: the stack's ring per direction (64 KiB), doubled
// as Linux reports it (socket(7)).
constexpr int k_default_buf_report = 2 * 64 * 1024;

// -errno (stack layer) to the libc contract.
ssize_t result_of(ssize_t rc) {
    if (rc < 0) {
        errno = static_cast<int>(-rc);
        return -1;
    }
    return rc;
}

sockaddr_in sockaddr_of(stack::Ipv4Endpoint ep) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = ep.addr;
    sin.sin_port = ep.port;
    return sin;
}

void copy_out_addr(stack::Ipv4Endpoint ep, sockaddr* addr, socklen_t* len) {
    if (addr == nullptr || len == nullptr) {
        return;
    }
    const sockaddr_in sin = sockaddr_of(ep);
    std::memcpy(addr, &sin, std::min<std::size_t>(*len, sizeof sin));
    *len = sizeof sin;
}

// Reads an AF_INET address given by the app; false if it is not one.
bool read_inet(const sockaddr* addr, socklen_t len, sockaddr_in& out) {
    if (addr == nullptr || len < static_cast<socklen_t>(sizeof(sockaddr_in))) {
        return false;
    }
    std::memcpy(&out, addr, sizeof out);
    return out.sin_family == AF_INET;
}

Deadline deadline_of(std::int64_t timeout_usec) {
    return timeout_usec > 0 ? Deadline::after_usec(timeout_usec) : Deadline{};
}

void raise_sigpipe(int flags) {
    if ((flags & MSG_NOSIGNAL) == 0) {
        (void)raise(SIGPIPE);
    }
}

std::int64_t usec_of(const timeval& tv) { return static_cast<std::int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec; }

// --- receive -------------------------------------------------------------------------------------

// Serves the app from the peek buffer (under rx_mutex_). -1: nothing buffered.
ssize_t take_peeked(PosixSocket& p, void* buf, std::size_t len, bool peek, stack::Ipv4Endpoint* from) {
    if (p.peeked_.empty()) {
        return -1;
    }
    std::size_t n = std::min(len, p.peeked_.size());
    std::memcpy(buf, p.peeked_.data(), n);
    if (from != nullptr) {
        *from = p.peeked_from_;
    }
    if (!peek) {
        if (p.is_tcp()) {
            p.peeked_.erase(p.peeked_.begin(), p.peeked_.begin() + static_cast<std::ptrdiff_t>(n));
        } else {
            p.peeked_.clear(); // a datagram is consumed whole
        }
        p.has_peeked_.store(!p.peeked_.empty(), std::memory_order_release);
    }
    return static_cast<ssize_t>(n);
}

// Moves data from the stack into the peek buffer (under rx_mutex_). Count pulled, or -errno.
ssize_t pull_into_peek(PosixSocket& p, std::size_t want) {
    stack::Socket* s = p.primary();
    if (!p.is_tcp()) {
        if (!p.peeked_.empty()) {
            return 0;
        }
        p.peeked_.resize(k_max_datagram);
        const ssize_t n = stack::recv_from(s, p.peeked_.data(), k_max_datagram, &p.peeked_from_);
        p.peeked_.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        p.has_peeked_.store(!p.peeked_.empty(), std::memory_order_release);
        // An empty datagram cannot be kept in the buffer; it is dropped (counted as read).
        return n;
    }
    const std::size_t have = p.peeked_.size();
    p.peeked_.resize(have + want);
    const ssize_t n = stack::recv(s, p.peeked_.data() + have, want);
    p.peeked_.resize(have + (n > 0 ? static_cast<std::size_t>(n) : 0));
    p.has_peeked_.store(!p.peeked_.empty(), std::memory_order_release);
    return n;
}

// One receive attempt on the fabric, never blocking. Count, 0 (end of stream), -errno.
ssize_t recv_once(PosixSocket& p, void* buf, std::size_t len, int flags, stack::Ipv4Endpoint* from) {
    FabricCall call;
    if (!call) {
        return -EBADFD;
    }
    if (p.listening_) {
        return -ENOTCONN;
    }
    if (p.shut_rd_.load(std::memory_order_acquire) && p.is_tcp()) {
        return 0;
    }
    const bool peek = (flags & MSG_PEEK) != 0;
    if (peek || p.has_peeked_.load(std::memory_order_acquire)) {
        std::lock_guard lock(p.rx_mutex_);
        if (const ssize_t n = take_peeked(p, buf, len, peek, from); n >= 0) {
            return n;
        }
        if (peek) {
            const ssize_t pulled = pull_into_peek(p, std::max<std::size_t>(len, 1));
            if (pulled <= 0 && p.peeked_.empty()) {
                return pulled;
            }
            return take_peeked(p, buf, len, true, from);
        }
    }
    if (p.is_tcp()) {
        return stack::recv(p.primary(), buf, len);
    }
    stack::Ipv4Endpoint sender{};
    const ssize_t n = stack::recv_from(p.primary(), buf, len, &sender);
    if (from != nullptr) {
        *from = sender;
    }
    return n;
}

// Receive with the socket's blocking rules (O_NONBLOCK, MSG_DONTWAIT, SO_RCVTIMEO, MSG_WAITALL).
ssize_t recv_fabric(PosixSocket& p, void* buf, std::size_t len, int flags, stack::Ipv4Endpoint* from) {
    const bool nonblock = p.nonblocking() || (flags & MSG_DONTWAIT) != 0;
    const bool waitall = (flags & MSG_WAITALL) != 0 && p.is_tcp() && (flags & MSG_PEEK) == 0 && !nonblock;
    const Deadline deadline = deadline_of(p.rcvtimeo_usec_.load(std::memory_order_relaxed));
    std::size_t total = 0;
    for (;;) {
        const ssize_t n = recv_once(p, static_cast<char*>(buf) + total, len - total, flags, from);
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            if (!waitall || total == len) {
                return static_cast<ssize_t>(total);
            }
            continue;
        }
        if (n != -EAGAIN) {
            if (total != 0) {
                return static_cast<ssize_t>(total);
            }
            return n;
        }
        if (len == 0) {
            return 0;
        }
        if (nonblock) {
            return total != 0 ? static_cast<ssize_t>(total) : -EAGAIN;
        }
        const int w = p.wait_for(POLLIN, deadline);
        if (w != 0) {
            return total != 0 ? static_cast<ssize_t>(total) : w;
        }
    }
}

// --- send ----------------------------------------------------------------------------------------

ssize_t send_once(PosixSocket& p, const void* data, std::size_t len, const stack::Ipv4Endpoint* to) {
    FabricCall call;
    if (!call) {
        return -EBADFD;
    }
    if (p.listening_) {
        return -ENOTCONN;
    }
    if (p.shut_wr_.load(std::memory_order_acquire)) {
        return -EPIPE;
    }
    if (!p.is_tcp()) {
        return to != nullptr ? stack::send_to(p.primary(), data, len, *to) : stack::send(p.primary(), data, len);
    }
    return stack::send(p.primary(), data, len);
}

// Send with the blocking rules: a blocking TCP send returns when all of it is in the stack, when
// interrupted after some of it (the count), or at SO_SNDTIMEO.
ssize_t send_fabric(PosixSocket& p, const void* data, std::size_t len, int flags, const stack::Ipv4Endpoint* to) {
    const bool nonblock = p.nonblocking() || (flags & MSG_DONTWAIT) != 0;
    const Deadline deadline = deadline_of(p.sndtimeo_usec_.load(std::memory_order_relaxed));
    std::size_t total = 0;
    for (;;) {
        const ssize_t n = send_once(p, static_cast<const char*>(data) + total, len - total, to);
        if (n >= 0) {
            total += static_cast<std::size_t>(n);
            if (total == len || !p.is_tcp() || nonblock) {
                return static_cast<ssize_t>(total);
            }
            continue;
        }
        if (n == -EPIPE) {
            if (total == 0) {
                raise_sigpipe(flags);
            }
            return total != 0 ? static_cast<ssize_t>(total) : n;
        }
        if (n != -EAGAIN || nonblock) {
            return total != 0 ? static_cast<ssize_t>(total) : n;
        }
        const int w = p.wait_for(POLLOUT, deadline);
        if (w != 0) {
            return total != 0 ? static_cast<ssize_t>(total) : w;
        }
    }
}

thread_local std::vector<char> t_gather;

char* gather_buffer(std::size_t n) {
    if (t_gather.size() < n) {
        t_gather.resize(n);
    }
    return t_gather.data();
}

std::size_t iov_total(const iovec* iov, int count) {
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) {
        total += iov[i].iov_len;
    }
    return total;
}

// TCP: every iovec in order, with send_fabric's rules for the whole vector.
ssize_t send_iov_tcp(PosixSocket& p, const iovec* iov, int count, int flags) {
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        const ssize_t n = send_fabric(p, iov[i].iov_base, iov[i].iov_len, total != 0 ? (flags | MSG_NOSIGNAL) : flags, nullptr);
        if (n < 0) {
            return total != 0 ? static_cast<ssize_t>(total) : n;
        }
        total += static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < iov[i].iov_len) {
            break;
        }
    }
    return static_cast<ssize_t>(total);
}

// TCP: fills the iovecs in order; only the first receive may block.
ssize_t recv_iov_tcp(PosixSocket& p, const iovec* iov, int count, int flags) {
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        const int f = total != 0 ? (flags | MSG_DONTWAIT) & ~MSG_WAITALL : flags;
        const ssize_t n = recv_fabric(p, iov[i].iov_base, iov[i].iov_len, f, nullptr);
        if (n <= 0) {
            return total != 0 ? static_cast<ssize_t>(total) : n;
        }
        total += static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < iov[i].iov_len) {
            break;
        }
    }
    return static_cast<ssize_t>(total);
}

// --- options -------------------------------------------------------------------------------------

// Options a fabric socket cannot honour; set on an undecided socket they keep it on the kernel.
bool kernel_only_option(int level, int name) {
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_BINDTODEVICE:
        case SO_ATTACH_FILTER:
        case SO_ATTACH_BPF:
        case SO_MARK:
        case SO_TIMESTAMP:
        case SO_TIMESTAMPNS:
        case SO_TIMESTAMPING:
        case SO_PEEK_OFF:
        case SO_ZEROCOPY:
        case SO_TXTIME:
        case SO_BROADCAST:
            return true;
        default: return false;
        }
    }
    if (level == IPPROTO_IP) {
        switch (name) {
        case IP_TRANSPARENT:
        case IP_HDRINCL:
        case IP_PKTINFO:
        case IP_RECVTOS:
        case IP_RECVTTL:
        case IP_RECVORIGDSTADDR:
        case IP_ADD_MEMBERSHIP:
        case IP_DROP_MEMBERSHIP:
        case IP_ADD_SOURCE_MEMBERSHIP:
        case IP_MULTICAST_IF:
        case IP_MULTICAST_TTL:
        case IP_MULTICAST_LOOP:
        case IP_OPTIONS:
            return true;
        default: return false;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_MD5SIG:
        case TCP_ULP:
        case TCP_REPAIR:
        case TCP_ZEROCOPY_RECEIVE:
            return true;
        default: return false;
        }
    }
    return level != IPPROTO_UDP && level != IPPROTO_TCP && level != IPPROTO_IP && level != SOL_SOCKET;
}

int* int_option(PosixSocket::Options& o, int level, int name) {
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR: return &o.reuseaddr;
        case SO_REUSEPORT: return &o.reuseport;
        case SO_KEEPALIVE: return &o.keepalive;
        case SO_RCVBUF: return &o.rcvbuf;
        case SO_SNDBUF: return &o.sndbuf;
        case SO_RCVLOWAT: return &o.rcvlowat;
        case SO_PRIORITY: return &o.priority;
        case SO_BROADCAST: return &o.broadcast;
        default: return nullptr;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY: return &o.nodelay;
        case TCP_CORK: return &o.cork;
        case TCP_KEEPIDLE: return &o.keepidle;
        case TCP_KEEPINTVL: return &o.keepintvl;
        case TCP_KEEPCNT: return &o.keepcnt;
        case TCP_DEFER_ACCEPT: return &o.defer_accept;
        case TCP_QUICKACK: return &o.quickack;
        case TCP_USER_TIMEOUT: return &o.user_timeout;
        default: return nullptr;
        }
    }
    if (level == IPPROTO_IP) {
        switch (name) {
        case IP_TOS: return &o.tos;
        case IP_TTL: return &o.ttl;
        default: return nullptr;
        }
    }
    return nullptr;
}

// Options accepted on the fabric without an int slot (accepted and ignored).
bool ignored_option(int level, int name) {
    if (level == IPPROTO_TCP) {
        return name == TCP_FASTOPEN || name == TCP_NOTSENT_LOWAT || name == TCP_CONGESTION || name == TCP_MAXSEG ||
               name == TCP_WINDOW_CLAMP || name == TCP_LINGER2 || name == TCP_SYNCNT || name == TCP_THIN_LINEAR_TIMEOUTS;
    }
    if (level == IPPROTO_IP) {
        return name == IP_RECVERR || name == IP_MTU_DISCOVER || name == IP_FREEBIND || name == IP_BIND_ADDRESS_NO_PORT;
    }
    if (level == SOL_SOCKET) {
        return name == SO_OOBINLINE || name == SO_SNDLOWAT || name == SO_BUSY_POLL || name == SO_INCOMING_CPU ||
               name == SO_RCVBUFFORCE || name == SO_SNDBUFFORCE;
    }
    return level == IPPROTO_UDP;
}

void note_ignored(int fd, int level, int name) {
    counters().ignored_options.fetch_add(1, std::memory_order_relaxed);
    GZ_LOG(debug, "socket %d: option level %d name %d accepted without effect on the fabric", fd, level, name);
}

int put_int(void* value, socklen_t* len, int v) {
    if (value == nullptr || len == nullptr) {
        return fail(EFAULT);
    }
    if (*len >= static_cast<socklen_t>(sizeof(int))) {
        std::memcpy(value, &v, sizeof v);
        *len = sizeof(int);
    } else if (*len > 0) {
        auto b = static_cast<unsigned char>(v);
        std::memcpy(value, &b, 1);
        *len = 1;
    }
    return 0;
}

int put_bytes(void* value, socklen_t* len, const void* data, std::size_t size) {
    if (value == nullptr || len == nullptr) {
        return fail(EFAULT);
    }
    const std::size_t n = std::min<std::size_t>(*len, size);
    std::memcpy(value, data, n);
    *len = static_cast<socklen_t>(n);
    return 0;
}

} // namespace

// --- the calls -------------------------------------------------------------------------------------------

namespace ops {

int socket(int domain, int type, int protocol) {
    const int fd = real().socket(domain, type, protocol);
    if (fd < 0 || internal_call()) {
        return fd;
    }
    Process& proc = process();
    const int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    KernelReason reason = KernelReason::count_;
    if (domain != AF_INET) {
        reason = KernelReason::family;
    } else if ((base != SOCK_STREAM && base != SOCK_DGRAM) ||
               (protocol != 0 && protocol != (base == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP))) {
        reason = KernelReason::type;
    } else if (proc.fabric_gone() || proc.config() == nullptr) {
        reason = KernelReason::not_attached;
    } else if (base == SOCK_DGRAM && !proc.udp_enabled()) {
        reason = KernelReason::udp_disabled;
    } else if (fd >= FdTable::k_max_fd) {
        reason = KernelReason::type;
    }
    if (reason != KernelReason::count_) {
        count_kernel(reason);
        GZ_LOG(debug, "socket %d (domain %d, type %d): kernel socket (%s)", fd, domain, base, to_string(reason));
        return fd;
    }
    PosixSocket* p = PosixSocket::create(base, (type & SOCK_NONBLOCK) != 0);
    if (p == nullptr) {
        (void)real().close(fd);
        return fail(ENOMEM);
    }
    p->fds_.push_back(fd);
    if (!fd_table().install(fd, p)) {
        p->unref();
        (void)real().close(fd);
        return fail(ENOMEM);
    }
    p->unref(); // the table's reference keeps it
    return fd;
}

int bind(int fd, PosixSocket& p, const sockaddr* addr, socklen_t len) {
    std::unique_lock lock(p.state_mutex_);
    switch (p.state()) {
    case SockState::kernel: lock.unlock(); return real().bind(fd, addr, len);
    case SockState::orphan: return orphan_error(fd);
    case SockState::deferred:
    case SockState::fabric: return is_orphan(p) ? orphan_error(fd) : fail(EINVAL);
    case SockState::undecided: break;
    }
    sockaddr_in sin{};
    if (!read_inet(addr, len, sin) || p.bound_) {
        return real().bind(fd, addr, len); // the kernel reports what is wrong with it
    }
    Process& proc = process();
    if (sin.sin_addr.s_addr == 0 && sin.sin_port == 0) {
        // Says nothing about the path: a client may still connect anywhere. The kernel socket
        // takes it (so a kernel path later is bound as asked); the fabric side binds at connect.
        const int rc = real().bind(fd, addr, len);
        if (rc == 0) {
            p.bound_ = true;
            p.bind_addr_ = sin;
        }
        return rc;
    }
    if (proc.is_kernel_address(sin.sin_addr.s_addr)) {
        to_kernel(fd, p, KernelReason::kernel_address);
        lock.unlock();
        return real().bind(fd, addr, len);
    }
    if (proc.attached() && sin.sin_addr.s_addr != 0 && sin.sin_addr.s_addr != proc.fabric_ipv4()) {
        to_kernel(fd, p, KernelReason::off_fabric);
        lock.unlock();
        return real().bind(fd, addr, len);
    }
    p.bound_ = true;
    p.bind_addr_ = sin;
    p.state_.store(SockState::deferred, std::memory_order_release);
    if (!proc.attached() && p.is_tcp()) {
        // TCP: carried out when the socket is first used (forked workers attach then; a SYN that
        // comes too early is retried by its sender). UDP has no retry: bound at once.
        GZ_LOG(debug, "socket %d: bound to %s on the fabric (carried out when first used)", fd,
               text_of(endpoint_of(sin)).c_str());
        return 0;
    }
    const int rc = materialize_locked(fd, p);
    if (rc < 0) {
        p.state_.store(SockState::undecided, std::memory_order_release);
        p.bound_ = false;
        return fail(-rc);
    }
    return 0;
}

int listen(int fd, PosixSocket& p, int backlog) {
    std::unique_lock lock(p.state_mutex_);
    backlog = backlog <= 0 ? 1 : std::min(backlog, 65535);
    switch (p.state()) {
    case SockState::kernel: lock.unlock(); return real().listen(fd, backlog);
    case SockState::orphan: return orphan_error(fd);
    case SockState::undecided:
        if (!p.is_tcp()) {
            return fail(EOPNOTSUPP);
        }
        // A listener on an unspecified address: the fabric (port chosen by the stack).
        p.state_.store(SockState::deferred, std::memory_order_release);
        [[fallthrough]];
    case SockState::deferred: {
        if (is_orphan(p)) {
            return orphan_error(fd);
        }
        p.listening_ = true;
        p.backlog_ = backlog;
        if (!process().attached()) {
            GZ_LOG(debug, "socket %d: listening on the fabric (carried out when first used)", fd);
            return 0;
        }
        const int rc = materialize_locked(fd, p);
        if (rc < 0) {
            p.listening_ = false;
            return fail(-rc);
        }
        if (rc == 1) {
            return 0; // replayed on the kernel socket
        }
        return 0;
    }
    case SockState::fabric: {
        if (is_orphan(p)) {
            return orphan_error(fd);
        }
        if (!p.is_tcp()) {
            return fail(EOPNOTSUPP);
        }
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        if (p.listening_) {
            for (unsigned i = 0; i < p.nb_stacks_; ++i) {
                (void)stack::listen(p.stacks_[i], backlog); // a new backlog
            }
            p.backlog_ = backlog;
            return 0;
        }
        // Bound on one stack by bind(): listen there, then on the same port on the other stacks.
        if (const int rc = stack::listen(p.primary(), backlog); rc != 0) {
            return fail(-rc);
        }
        p.listening_ = true;
        p.backlog_ = backlog;
        Process& proc = process();
        const stack::Ipv4Endpoint local = stack::local_endpoint(p.primary());
        for (std::size_t i = 1; i < std::min<std::size_t>(proc.nb_stacks(), PosixSocket::k_max_stacks); ++i) {
            stack::Stack& st = proc.stack(i);
            if (&st == &stack::stack_of(p.primary())) {
                continue;
            }
            int err = 0;
            stack::Socket* s = stack::socket_open(st, stack::SocketType::tcp, &err);
            if (s == nullptr || stack::bind(s, local) != 0 || stack::listen(s, backlog) != 0) {
                if (s != nullptr) {
                    stack::close(s);
                }
                GZ_LOG(warning, "socket %d: could not listen on stack %zu too; it serves this listener from fewer stacks",
                       fd, i);
                continue;
            }
            (void)add_stack_socket(p, s);
        }
        GZ_LOG(debug, "socket %d: listening on the fabric at %s", fd, text_of(local).c_str());
        return 0;
    }
    }
    return 0;
}

int prepare_for_readiness(PosixSocket& p) {
    if (p.state() != SockState::deferred) {
        return p.state() == SockState::kernel ? 1 : 0;
    }
    if (is_orphan(p)) {
        return 0;
    }
    const int fd = p.fds_.empty() ? -1 : p.fds_.front();
    return materialize(fd, p);
}

int accept(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len, int flags) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().accept4(fd, addr, len, flags);
    }
    if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) {
        return fail(EINVAL);
    }
    if (!p.listening_) {
        return fail(EINVAL);
    }
    const Deadline deadline = deadline_of(p.rcvtimeo_usec_.load(std::memory_order_relaxed));
    Process& proc = process();
    for (;;) {
        if (p.listener_shut_.load(std::memory_order_acquire)) {
            return fail(EINVAL);
        }
        int err = -EAGAIN;
        {
            FabricCall call;
            if (!call) {
                return fail(EBADFD);
            }
            if ((p.poll_events() & POLLIN) != 0) {
                // The number first: a connection is never taken without an fd to give it.
                const int newfd = real().fcntl(proc.template_fd(), (flags & SOCK_CLOEXEC) != 0 ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
                if (newfd < 0) {
                    return -1; // EMFILE/ENFILE: the connection stays queued, as in Linux
                }
                stack::Socket* child = nullptr;
                stack::Ipv4Endpoint peer{};
                for (unsigned k = 0; k < p.nb_stacks_ && child == nullptr; ++k) {
                    const unsigned i = p.accept_next_.fetch_add(1, std::memory_order_relaxed) % p.nb_stacks_;
                    int e = 0;
                    child = stack::accept(p.stacks_[i], &peer, &e);
                    if (child == nullptr && e != -EAGAIN) {
                        err = e;
                    }
                }
                if (child == nullptr) {
                    (void)real().close(newfd);
                } else {
                    PosixSocket* c = PosixSocket::create_accepted(child, (flags & SOCK_NONBLOCK) != 0);
                    if (c == nullptr) {
                        stack::close(child);
                        (void)real().close(newfd);
                        return fail(ENOMEM);
                    }
                    c->fds_.push_back(newfd);
                    if (!fd_table().install(newfd, c)) {
                        c->unref();
                        (void)real().close(newfd);
                        return fail(ENOMEM);
                    }
                    c->unref();
                    counters().fabric_sockets.fetch_add(1, std::memory_order_relaxed);
                    counters().accepted.fetch_add(1, std::memory_order_relaxed);
                    copy_out_addr(peer, addr, len);
                    return newfd;
                }
            }
        }
        if (err != -EAGAIN) {
            return fail(-err);
        }
        if (p.nonblocking()) {
            return fail(EAGAIN);
        }
        if (const int w = p.wait_for(POLLIN, deadline); w != 0) {
            return fail(-w);
        }
    }
}

int connect(int fd, PosixSocket& p, const sockaddr* addr, socklen_t len) {
    sockaddr_in sin{};
    const bool inet = read_inet(addr, len, sin);
    {
        std::unique_lock lock(p.state_mutex_);
        SockState st = p.state();
        if (st == SockState::undecided) {
            if (!inet) {
                lock.unlock();
                return real().connect(fd, addr, len);
            }
            const int placed = place_for_destination(fd, p, sin.sin_addr.s_addr);
            if (placed < 0) {
                return fail(-placed);
            }
            if (placed == 1) {
                lock.unlock();
                return real().connect(fd, addr, len);
            }
            if (p.bound_ && p.bind_addr_.sin_port == 0) {
                p.bound_ = false; // 0.0.0.0:0: nothing to carry over to the stack
            }
            p.state_.store(SockState::deferred, std::memory_order_release);
            const int rc = materialize_locked(fd, p);
            if (rc < 0) {
                p.state_.store(SockState::undecided, std::memory_order_release);
                return fail(-rc);
            }
            if (rc == 1) {
                lock.unlock();
                return real().connect(fd, addr, len);
            }
            GZ_LOG(debug, "socket %d: connecting on the fabric to %s", fd, text_of(endpoint_of(sin)).c_str());
        } else if (st == SockState::kernel) {
            lock.unlock();
            return real().connect(fd, addr, len);
        }
    }
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().connect(fd, addr, len);
    }
    if (p.listening_) {
        return fail(EINVAL);
    }
    if (!p.is_tcp()) {
        // UDP: the default destination (AF_UNSPEC dissolves it).
        const stack::Ipv4Endpoint to = inet ? endpoint_of(sin) : stack::Ipv4Endpoint{};
        if (!inet && (addr == nullptr || addr->sa_family != AF_UNSPEC)) {
            return fail(EAFNOSUPPORT);
        }
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        if (const int rc = stack::connect(p.primary(), to); rc != 0) {
            return fail(-rc);
        }
        p.udp_peer_ = to;
        return 0;
    }
    if (!inet) {
        return fail(addr != nullptr && len >= static_cast<socklen_t>(sizeof(sa_family_t)) ? EAFNOSUPPORT : EINVAL);
    }
    // TCP, following inet_stream_connect(): a second call reports the outcome once, then EISCONN;
    // after a failure the socket may connect again (to a new stack socket: lwIP's is gone).
    int phase = p.connect_phase_.load(std::memory_order_acquire);
    if (phase == 3) {
        std::lock_guard lock(p.state_mutex_);
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        stack::Stack& st = stack::stack_of(p.primary());
        int err = 0;
        stack::Socket* fresh = stack::socket_open(st, stack::SocketType::tcp, &err);
        if (fresh == nullptr) {
            return fail(err != 0 ? -err : ENOMEM);
        }
        if (p.bound_ && p.bind_addr_.sin_port != 0) {
            if (const int rc = stack::bind(fresh, endpoint_of(p.bind_addr_)); rc != 0) {
                stack::close(fresh);
                return fail(-rc);
            }
        }
        close_stack_sockets(p);
        (void)add_stack_socket(p, fresh);
        p.connect_phase_.store(0, std::memory_order_release);
        phase = 0;
    }
    if (phase == 0) {
        int rc = 0;
        {
            FabricCall call;
            if (!call) {
                return fail(EBADFD);
            }
            rc = stack::connect(p.primary(), endpoint_of(sin));
        }
        if (rc != 0) {
            // A full flow table is connect(2)'s "insufficient entries in the routing cache".
            return fail(rc == -ENOSPC ? EAGAIN : -rc);
        }
        p.connect_phase_.store(1, std::memory_order_release);
        if (p.nonblocking()) {
            return fail(EINPROGRESS);
        }
        const Deadline deadline = deadline_of(p.sndtimeo_usec_.load(std::memory_order_relaxed));
        if (const int w = p.wait_for(POLLOUT, deadline); w != 0) {
            return fail(w == -EAGAIN ? EINPROGRESS : -w);
        }
    } else if (phase == 2) {
        return fail(EISCONN);
    }
    std::uint32_t ev = 0;
    int pending = 0;
    {
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        ev = p.poll_events();
        if ((ev & (POLLERR | POLLHUP)) != 0) {
            pending = stack::socket_error(p.primary());
        }
    }
    if ((ev & (POLLERR | POLLHUP)) != 0) {
        p.connect_phase_.store(3, std::memory_order_release);
        return fail(pending != 0 ? -pending : ECONNREFUSED);
    }
    if ((ev & POLLOUT) == 0) {
        return fail(EALREADY);
    }
    p.connect_phase_.store(2, std::memory_order_release);
    return 0;
}

ssize_t recvfrom(int fd, PosixSocket& p, void* buf, std::size_t len, int flags, sockaddr* from, socklen_t* from_len) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().recvfrom(fd, buf, len, flags, from, from_len);
    }
    stack::Ipv4Endpoint sender{};
    const ssize_t n = recv_fabric(p, buf, len, flags, from != nullptr ? &sender : nullptr);
    if (n < 0) {
        return result_of(n);
    }
    if (from != nullptr && from_len != nullptr) {
        copy_out_addr(p.is_tcp() ? stack::peer_endpoint(p.primary()) : sender, from, from_len);
    }
    return n;
}

ssize_t recvmsg(int fd, PosixSocket& p, msghdr* msg, int flags) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().recvmsg(fd, msg, flags);
    }
    if (msg == nullptr) {
        return fail(EFAULT);
    }
    msg->msg_flags = 0;
    msg->msg_controllen = 0;
    if (p.is_tcp()) {
        const ssize_t n = recv_iov_tcp(p, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags);
        if (n >= 0 && msg->msg_name != nullptr) {
            copy_out_addr(stack::peer_endpoint(p.primary()), static_cast<sockaddr*>(msg->msg_name), &msg->msg_namelen);
        }
        return result_of(n);
    }
    // UDP: one datagram scattered over the iovecs.
    const std::size_t want = std::min(iov_total(msg->msg_iov, static_cast<int>(msg->msg_iovlen)), k_max_datagram);
    char* buf = gather_buffer(std::max<std::size_t>(want, 1));
    stack::Ipv4Endpoint sender{};
    const ssize_t n = recv_fabric(p, buf, want, flags, &sender);
    if (n < 0) {
        return result_of(n);
    }
    std::size_t off = 0;
    for (std::size_t i = 0; i < msg->msg_iovlen && off < static_cast<std::size_t>(n); ++i) {
        const std::size_t c = std::min(msg->msg_iov[i].iov_len, static_cast<std::size_t>(n) - off);
        std::memcpy(msg->msg_iov[i].iov_base, buf + off, c);
        off += c;
    }
    if (msg->msg_name != nullptr) {
        copy_out_addr(sender, static_cast<sockaddr*>(msg->msg_name), &msg->msg_namelen);
    }
    return n;
}

ssize_t readv(int fd, PosixSocket& p, const iovec* iov, int count) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().readv(fd, iov, count);
    }
    if (count < 0 || count > IOV_MAX) {
        return fail(EINVAL);
    }
    if (!p.is_tcp()) {
        msghdr msg{};
        msg.msg_iov = const_cast<iovec*>(iov);
        msg.msg_iovlen = static_cast<std::size_t>(count);
        return recvmsg(fd, p, &msg, 0);
    }
    return result_of(recv_iov_tcp(p, iov, count, 0));
}

ssize_t sendto(int fd, PosixSocket& p, const void* buf, std::size_t len, int flags, const sockaddr* to, socklen_t to_len) {
    sockaddr_in sin{};
    const bool has_to = to != nullptr && !p.is_tcp();
    if (p.state() == SockState::undecided) {
        if (!has_to || !read_inet(to, to_len, sin)) {
            return real().sendto(fd, buf, len, flags, to, to_len);
        }
        std::unique_lock lock(p.state_mutex_);
        if (p.state() == SockState::undecided) {
            const int placed = place_for_destination(fd, p, sin.sin_addr.s_addr);
            if (placed < 0) {
                return fail(-placed);
            }
            if (placed == 1) {
                lock.unlock();
                return real().sendto(fd, buf, len, flags, to, to_len);
            }
            if (p.bound_ && p.bind_addr_.sin_port == 0) {
                p.bound_ = false;
            }
            p.state_.store(SockState::deferred, std::memory_order_release);
            if (const int rc = materialize_locked(fd, p); rc != 0) {
                if (rc < 0) {
                    p.state_.store(SockState::undecided, std::memory_order_release);
                    return fail(-rc);
                }
                lock.unlock();
                return real().sendto(fd, buf, len, flags, to, to_len);
            }
        }
    }
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().sendto(fd, buf, len, flags, to, to_len);
    }
    if (has_to) {
        if (!read_inet(to, to_len, sin)) {
            return fail(to_len < static_cast<socklen_t>(sizeof(sockaddr_in)) ? EINVAL : EAFNOSUPPORT);
        }
        const stack::Ipv4Endpoint ep = endpoint_of(sin);
        return result_of(send_fabric(p, buf, len, flags, &ep));
    }
    return result_of(send_fabric(p, buf, len, flags, nullptr));
}

ssize_t sendmsg(int fd, PosixSocket& p, const msghdr* msg, int flags) {
    if (msg == nullptr) {
        return fail(EFAULT);
    }
    if (p.state() == SockState::undecided && (msg->msg_name == nullptr || p.is_tcp())) {
        return real().sendmsg(fd, msg, flags);
    }
    const int count = static_cast<int>(msg->msg_iovlen);
    if (p.is_tcp() || p.state() == SockState::undecided) {
        if (const int r = route(fd, p); r != 0) {
            return r < 0 ? -1 : real().sendmsg(fd, msg, flags);
        }
    }
    if (p.is_tcp()) {
        return result_of(send_iov_tcp(p, msg->msg_iov, count, flags));
    }
    // UDP: gather into one datagram, then the sendto() rules (placement included).
    const std::size_t total = iov_total(msg->msg_iov, count);
    if (total > k_max_datagram) {
        return fail(EMSGSIZE);
    }
    char* buf = gather_buffer(std::max<std::size_t>(total, 1));
    std::size_t off = 0;
    for (int i = 0; i < count; ++i) {
        std::memcpy(buf + off, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
        off += msg->msg_iov[i].iov_len;
    }
    return sendto(fd, p, buf, total, flags, static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen);
}

ssize_t writev(int fd, PosixSocket& p, const iovec* iov, int count) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().writev(fd, iov, count);
    }
    if (count < 0 || count > IOV_MAX) {
        return fail(EINVAL);
    }
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(count);
    return sendmsg(fd, p, &msg, 0);
}

ssize_t sendfile(int out_fd, PosixSocket& p, int in_fd, off_t* offset, std::size_t count) {
    if (const int r = route(out_fd, p); r != 0) {
        return r < 0 ? -1 : real().sendfile(out_fd, in_fd, offset, count);
    }
    if (!p.is_tcp()) {
        return fail(EINVAL);
    }
    off_t pos = 0;
    if (offset != nullptr) {
        pos = *offset;
    } else {
        pos = lseek(in_fd, 0, SEEK_CUR);
        if (pos < 0) {
            return -1;
        }
    }
    static thread_local std::vector<char> chunk;
    if (chunk.size() < k_pull_bytes) {
        chunk.resize(k_pull_bytes);
    }
    std::size_t total = 0;
    while (total < count) {
        const std::size_t want = std::min(count - total, k_pull_bytes);
        const ssize_t got = pread(in_fd, chunk.data(), want, pos + static_cast<off_t>(total));
        if (got < 0) {
            if (total == 0) {
                return -1;
            }
            break;
        }
        if (got == 0) {
            break;
        }
        const ssize_t sent = send_fabric(p, chunk.data(), static_cast<std::size_t>(got), total != 0 ? MSG_NOSIGNAL : 0, nullptr);
        if (sent < 0) {
            if (total == 0) {
                return result_of(sent);
            }
            break;
        }
        total += static_cast<std::size_t>(sent);
        if (sent < got) {
            break; // non-blocking socket full, or interrupted
        }
    }
    if (offset != nullptr) {
        *offset = pos + static_cast<off_t>(total);
    } else {
        (void)lseek(in_fd, pos + static_cast<off_t>(total), SEEK_SET);
    }
    return static_cast<ssize_t>(total);
}

int shutdown(int fd, PosixSocket& p, int how) {
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().shutdown(fd, how);
    }
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
        return fail(EINVAL);
    }
    if (p.listening_) {
        if (how != SHUT_WR) {
            p.listener_shut_.store(true, std::memory_order_release);
            p.dispatch(); // wakes threads blocked in accept()
        }
        return 0;
    }
    if (how != SHUT_WR) {
        p.shut_rd_.store(true, std::memory_order_release);
    }
    if (how != SHUT_RD && p.is_tcp() && !p.shut_wr_.load()) {
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        if (const int rc = stack::shutdown_write(p.primary()); rc != 0) {
            return fail(-rc);
        }
        p.shut_wr_.store(true, std::memory_order_release);
    }
    p.dispatch();
    return 0;
}

int getsockname(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len) {
    if (addr == nullptr || len == nullptr) {
        return fail(EFAULT);
    }
    SockState st = p.state();
    if (st == SockState::deferred && p.bound_ && p.bind_addr_.sin_port != 0) {
        copy_out_addr(endpoint_of(p.bind_addr_), addr, len);
        return 0;
    }
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().getsockname(fd, addr, len);
    }
    FabricCall call;
    if (!call) {
        return fail(EBADFD);
    }
    stack::Ipv4Endpoint local = stack::local_endpoint(p.primary());
    if (local.addr == 0 && p.connect_phase_.load() != 0) {
        local.addr = process().fabric_ipv4();
    }
    copy_out_addr(local, addr, len);
    return 0;
}

int getpeername(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len) {
    if (addr == nullptr || len == nullptr) {
        return fail(EFAULT);
    }
    if (p.state() == SockState::deferred) {
        return fail(ENOTCONN);
    }
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().getpeername(fd, addr, len);
    }
    if (!p.is_tcp()) {
        if (p.udp_peer_.addr == 0) {
            return fail(ENOTCONN);
        }
        copy_out_addr(p.udp_peer_, addr, len);
        return 0;
    }
    FabricCall call;
    if (!call) {
        return fail(EBADFD);
    }
    const stack::Ipv4Endpoint peer = stack::peer_endpoint(p.primary());
    if (p.listening_ || peer.addr == 0 || ((p.poll_events() & POLLOUT) == 0 && p.connect_phase_.load() == 1)) {
        return fail(ENOTCONN);
    }
    copy_out_addr(peer, addr, len);
    return 0;
}

int setsockopt(int fd, PosixSocket& p, int level, int name, const void* value, socklen_t len) {
    const SockState st = p.state();
    if (st == SockState::kernel) {
        return real().setsockopt(fd, level, name, value, len);
    }
    if (st == SockState::orphan || is_orphan(p)) {
        return orphan_error(fd);
    }
    if (value == nullptr && len != 0) {
        return fail(EFAULT);
    }
    if (st == SockState::undecided) {
        if (kernel_only_option(level, name)) {
            std::lock_guard lock(p.state_mutex_);
            if (p.state() == SockState::undecided) {
                to_kernel(fd, p, KernelReason::option);
                GZ_LOG(debug, "socket %d: option level %d name %d needs the kernel", fd, level, name);
            }
            return real().setsockopt(fd, level, name, value, len);
        }
        // The kernel socket keeps it too, for the case it stays a kernel socket.
        if (const int rc = real().setsockopt(fd, level, name, value, len); rc != 0) {
            return rc;
        }
    }
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        if (len < static_cast<socklen_t>(sizeof(timeval))) {
            return fail(EINVAL);
        }
        timeval tv{};
        std::memcpy(&tv, value, sizeof tv);
        if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
            return fail(EDOM);
        }
        (name == SO_RCVTIMEO ? p.rcvtimeo_usec_ : p.sndtimeo_usec_).store(tv.tv_sec < 0 ? 0 : usec_of(tv));
        return 0;
    }
    if (level == SOL_SOCKET && name == SO_LINGER) {
        if (len < static_cast<socklen_t>(sizeof(linger))) {
            return fail(EINVAL);
        }
        std::lock_guard lock(p.options_mutex_);
        std::memcpy(&p.options_.linger_value, value, sizeof(linger));
        if (st != SockState::undecided) {
            note_ignored(fd, level, name);
        }
        return 0;
    }
    std::lock_guard lock(p.options_mutex_);
    if (int* slot = int_option(p.options_, level, name); slot != nullptr) {
        if (len < static_cast<socklen_t>(sizeof(int))) {
            if (len < 1) {
                return fail(EINVAL);
            }
            *slot = *static_cast<const unsigned char*>(value);
        } else {
            std::memcpy(slot, value, sizeof(int));
        }
        if (st != SockState::undecided) {
            note_ignored(fd, level, name);
        }
        return 0;
    }
    if (st == SockState::undecided || ignored_option(level, name)) {
        if (st != SockState::undecided) {
            note_ignored(fd, level, name);
        }
        return 0;
    }
    counters().refused_options.fetch_add(1, std::memory_order_relaxed);
    GZ_LOG(debug, "socket %d: option level %d name %d is not supported on the fabric (ENOPROTOOPT)", fd, level, name);
    return fail(ENOPROTOOPT);
}

int getsockopt(int fd, PosixSocket& p, int level, int name, void* value, socklen_t* len) {
    const SockState st = p.state();
    if (st == SockState::kernel || st == SockState::undecided) {
        return real().getsockopt(fd, level, name, value, len);
    }
    if (st == SockState::orphan || is_orphan(p)) {
        return orphan_error(fd);
    }
    if (value == nullptr || len == nullptr) {
        return fail(EFAULT);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_ERROR: {
            if (st != SockState::fabric) {
                return put_int(value, len, 0);
            }
            FabricCall call;
            if (!call) {
                return fail(EBADFD);
            }
            const int pending = stack::socket_error(p.primary());
            if (pending != 0 && p.connect_phase_.load(std::memory_order_acquire) == 1) {
                p.connect_phase_.store(3, std::memory_order_release); // the app learnt the outcome
            }
            return put_int(value, len, -pending);
        }
        case SO_TYPE: return put_int(value, len, p.is_tcp() ? SOCK_STREAM : SOCK_DGRAM);
        case SO_DOMAIN: return put_int(value, len, AF_INET);
        case SO_PROTOCOL: return put_int(value, len, p.is_tcp() ? IPPROTO_TCP : IPPROTO_UDP);
        case SO_ACCEPTCONN: return put_int(value, len, p.listening_ ? 1 : 0);
        case SO_RCVTIMEO:
        case SO_SNDTIMEO: {
            const std::int64_t us = (name == SO_RCVTIMEO ? p.rcvtimeo_usec_ : p.sndtimeo_usec_).load();
            const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
            return put_bytes(value, len, &tv, sizeof tv);
        }
        case SO_LINGER: {
            std::lock_guard lock(p.options_mutex_);
            return put_bytes(value, len, &p.options_.linger_value, sizeof(linger));
        }
        case SO_RCVBUF:
        case SO_SNDBUF: {
            std::lock_guard lock(p.options_mutex_);
            const int set = name == SO_RCVBUF ? p.options_.rcvbuf : p.options_.sndbuf;
            return put_int(value, len, set > 0 ? 2 * set : k_default_buf_report);
        }
        default: break;
        }
    }
    if (level == IPPROTO_TCP && p.is_tcp()) {
        switch (name) {
        case TCP_MAXSEG: return put_int(value, len, 1460);
        case TCP_INFO: {
            tcp_info info{};
            info.tcpi_state = static_cast<std::uint8_t>(p.listening_ ? 10 /* TCP_LISTEN */ : 1 /* TCP_ESTABLISHED */);
            info.tcpi_snd_mss = 1460;
            info.tcpi_rcv_mss = 1460;
            info.tcpi_snd_cwnd = 10;
            info.tcpi_pmtu = 1500;
            return put_bytes(value, len, &info, sizeof info);
        }
        case TCP_CONGESTION: {
            static constexpr char name_text[] = "reno"; // lwIP's congestion control
            return put_bytes(value, len, name_text, sizeof name_text);
        }
        default: break;
        }
    }
    if (level == IPPROTO_IP && name == IP_MTU) {
        return put_int(value, len, 1500);
    }
    std::lock_guard lock(p.options_mutex_);
    if (int* slot = int_option(p.options_, level, name); slot != nullptr) {
        return put_int(value, len, *slot);
    }
    return fail(ENOPROTOOPT);
}

int fcntl(int fd, PosixSocket& p, int cmd, long arg) {
    const SockState st = p.state();
    switch (cmd) {
    case F_GETFL:
        if (st == SockState::undecided || st == SockState::kernel) {
            return real().fcntl(fd, cmd);
        }
        return O_RDWR | (p.nonblocking() ? O_NONBLOCK : 0);
    case F_SETFL:
        if (st == SockState::undecided || st == SockState::kernel) {
            const int rc = real().fcntl(fd, cmd, arg);
            if (rc == 0) {
                p.set_nonblocking((arg & O_NONBLOCK) != 0);
            }
            return rc;
        }
        p.set_nonblocking((arg & O_NONBLOCK) != 0);
        return 0;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: return dupfd_min(fd, static_cast<int>(arg), cmd == F_DUPFD_CLOEXEC);
    default: return real().fcntl(fd, cmd, arg);
    }
}

int ioctl(int fd, PosixSocket& p, unsigned long request, void* arg) {
    const SockState st = p.state();
    if (request == FIONBIO) {
        if (arg == nullptr) {
            return fail(EFAULT);
        }
        int on = 0;
        std::memcpy(&on, arg, sizeof on);
        if (st == SockState::undecided || st == SockState::kernel) {
            const int rc = real().ioctl(fd, request, arg);
            if (rc == 0) {
                p.set_nonblocking(on != 0);
            }
            return rc;
        }
        p.set_nonblocking(on != 0);
        return 0;
    }
    if (request != FIONREAD && request != SIOCOUTQ && request != SIOCATMARK && request != SIOCOUTQNSD) {
        return real().ioctl(fd, request, arg); // interface ioctls and the like: the kernel socket answers
    }
    if (const int r = route(fd, p); r != 0) {
        return r < 0 ? -1 : real().ioctl(fd, request, arg);
    }
    if (arg == nullptr) {
        return fail(EFAULT);
    }
    int value = 0;
    if (request == FIONREAD) {
        if (p.listening_) {
            return fail(EINVAL);
        }
        FabricCall call;
        if (!call) {
            return fail(EBADFD);
        }
        std::lock_guard lock(p.rx_mutex_);
        if (p.is_tcp()) {
            while (p.peeked_.size() < 16 * k_pull_bytes) {
                if (pull_into_peek(p, k_pull_bytes) <= 0) {
                    break;
                }
            }
        } else {
            (void)pull_into_peek(p, k_pull_bytes);
        }
        value = static_cast<int>(p.peeked_.size());
    }
    std::memcpy(arg, &value, sizeof value);
    return 0;
}

} // namespace ops

} // namespace gazelle::posix
