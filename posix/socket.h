// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// PosixSocket: an AF_INET socket as liblstack.so sees it, from socket() to the last close().
//
// Life of a socket (doc/user-guide.md "Which sockets use the fabric"):
//   undecided  socket() made a kernel socket of the same type; its number is the app's fd. Every
//              call goes to that kernel socket until bind/connect/listen/sendto decides the path.
//   kernel     decided for the kernel (loopback or kernel-interface address, destination off the
//              fabric, an unsupported option, no attachment): the table forgets it and every
//              later call is a plain C library call on the same number.
//   deferred   decided for the fabric before the process attached: bind() and listen() are
//              recorded and carried out at the first call that needs the network (accept, I/O,
//              readiness, getsockname of port 0). This is what lets a master process open its
//              listening sockets and fork workers that each attach on their own.
//   fabric     a stack socket (or, for a listener, one per stack of the process) backs it; the
//              kernel socket only reserves the number.
//   orphan     inherited by the child of an attached process: the connection lives in the
//              parent's stack, this process cannot use it (calls fail with EBADFD; close works).
//
// Threading: any app thread may use any socket; calls on one socket from several threads are
// serialised per direction by the stack layer. State transitions take state_mutex_.

#include <array>
#include <chrono>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "posix/fd_table.h"
#include "posix/wait_word.h"
#include "stack/api.h"

namespace gazelle::posix {

class PosixSocket;

// Something that wants to hear about a socket's readiness changes (an epoll registration, a
// thread in poll/select). notify() runs on the readiness dispatcher, under the socket's
// watchers_mutex_.
class Watcher {
public:
    // True if the change was delivered (queued or woke someone).
    virtual bool notify(PosixSocket& socket, std::uint32_t poll_events) = 0;
    // EPOLLEXCLUSIVE registrations: a change is delivered to one of them only.
    virtual bool exclusive() const { return false; }

protected:
    ~Watcher() = default;
};

enum class SockState : std::uint8_t { undecided, kernel, deferred, fabric, orphan };

// An absolute CLOCK_MONOTONIC deadline, or none (wait forever).
struct Deadline {
    bool infinite = true;
    timespec at{};

    static Deadline after_usec(std::int64_t usec);
    static Deadline after_ms(int ms); // < 0: infinite
    bool expired() const;
    // Relative time left (for futex/ppoll); zero when expired.
    timespec remaining() const;
    int remaining_ms() const; // -1 when infinite
};

class PosixSocket final : public FdObject {
public:
    static constexpr unsigned k_max_stacks = 8;

    // A fresh undecided socket of `type` (SOCK_STREAM or SOCK_DGRAM) with one reference.
    static PosixSocket* create(int type, bool nonblock);
    // A fabric socket for a connection accepted by a stack (takes over `s`).
    static PosixSocket* create_accepted(stack::Socket* s, bool nonblock);

    bool is_tcp() const { return type_ == stack::SocketType::tcp; }
    SockState state() const { return state_.load(std::memory_order_acquire); }
    bool nonblocking() const { return nonblock_.load(std::memory_order_relaxed); }
    void set_nonblocking(bool on) { nonblock_.store(on, std::memory_order_relaxed); }

    // Readiness as poll(2) bits (POLLIN, POLLOUT, POLLRDHUP, POLLHUP, POLLERR).
    std::uint32_t poll_events();

    // Readiness changed (dispatcher thread, or an app thread after shutdown()): wakes blocked
    // calls and tells the watchers.
    void dispatch();
    void add_watcher(Watcher* w);
    void remove_watcher(Watcher* w);

    // Waits until poll_events() & interest (plus errors/hang-up), the deadline or a signal.
    // 0, -EAGAIN (deadline), -EINTR.
    int wait_for(std::uint32_t interest, const Deadline& deadline);

    // --- state (see the file comment) -------------------------------------------------------
    std::mutex state_mutex_;
    std::atomic<SockState> state_{SockState::undecided};
    stack::SocketType type_ = stack::SocketType::tcp;
    std::uint32_t fork_gen_ = 0;            // Process generation this socket belongs to
    std::vector<int> fds_;                  // descriptors that name it (dup), under state_mutex_

    // Recorded before the fabric socket exists (deferred), and bind/listen of undecided sockets.
    bool bound_ = false;
    sockaddr_in bind_addr_{};
    bool listening_ = false;
    int backlog_ = 0;

    // Fabric: the stack socket(s). Listeners have one per stack of the process; others one.
    std::array<stack::Socket*, k_max_stacks> stacks_{};
    unsigned nb_stacks_ = 0;
    std::atomic<unsigned> accept_next_{0};
    stack::Socket* primary() const { return stacks_[0]; }
    stack::Ipv4Endpoint udp_peer_{}; // UDP connect(): the default destination (getpeername)

    // --- app-visible flags and options ------------------------------------------------------
    std::atomic<bool> nonblock_{false};
    std::atomic<std::int64_t> rcvtimeo_usec_{0}; // 0: none
    std::atomic<std::int64_t> sndtimeo_usec_{0};
    std::atomic<bool> shut_rd_{false};
    std::atomic<bool> shut_wr_{false};
    std::atomic<bool> listener_shut_{false}; // shutdown() of a listener: accept fails with EINVAL
    // connect(): 0 none, 1 in progress, 2 connected (reported), 3 failed (reported; may connect again).
    std::atomic<int> connect_phase_{0};
    // Options stored for getsockopt() (those without an effect on the fabric).
    struct Options {
        int reuseaddr = 0;
        int reuseport = 0;
        int keepalive = 0;
        int nodelay = 0;
        int cork = 0;
        int rcvbuf = 0;
        int sndbuf = 0;
        int rcvlowat = 1;
        int tos = 0;
        int ttl = 64;
        int priority = 0;
        int keepidle = 7200;
        int keepintvl = 75;
        int keepcnt = 9;
        int defer_accept = 0;
        int quickack = 1;
        int user_timeout = 0;
        int broadcast = 0;
        linger linger_value{};
    };
    std::mutex options_mutex_;
    Options options_;

    // Data taken out of the stack ahead of the app (MSG_PEEK, FIONREAD), under rx_mutex_.
    std::mutex rx_mutex_;
    std::vector<char> peeked_;
    std::atomic<bool> has_peeked_{false};
    stack::Ipv4Endpoint peeked_from_{}; // UDP: sender of the peeked datagram

    // --- readiness ----------------------------------------------------------------------------
    WaitWord wait_;
    std::mutex watchers_mutex_;
    std::vector<Watcher*> watchers_;

private:
    PosixSocket() : FdObject(FdKind::socket) {}
    ~PosixSocket() = default; // type-stable: recycled, never destroyed
    void reinit(int type, bool nonblock);
    void last_ref_dropped() override;
};

// The fd's socket, or null (not a liblstack.so socket).
Ref<PosixSocket> socket_of(int fd);

// Watchers that belong to something else (an epoll set) learn that the socket is going away;
// called under the socket's watchers_mutex_ from its last close. Defined by epoll.cc.
void detach_epoll_watcher(Watcher* w, PosixSocket& socket);
bool is_epoll_watcher(const Watcher* w);

// Exit/exec: closes the stack sockets of every live fabric socket and forgets them. Connections
// get a FIN after the data they hold, and are closed once the peer closed too or graceful_limit
// passed (so that stopping the stacks resets nothing). Returns how many connections were open.
// Only with every other thread quiet.
unsigned close_all_fabric_sockets(std::chrono::milliseconds graceful_limit);
// Dispatcher, each pass: releases closed connections whose close handshake ended (or that waited
// long enough).
void sweep_closing_sockets();
// fork: the pools' lock, held across fork() so that the child never inherits it taken.
void lock_socket_pools();
void unlock_socket_pools();

// The interposed calls on sockets, with the C library's contract (-1 and errno). `fd` names
// `p`; the caller looked it up.
namespace ops {
int socket(int domain, int type, int protocol);
int bind(int fd, PosixSocket& p, const sockaddr* addr, socklen_t len);
int listen(int fd, PosixSocket& p, int backlog);
int accept(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len, int flags);
int connect(int fd, PosixSocket& p, const sockaddr* addr, socklen_t len);
ssize_t recvfrom(int fd, PosixSocket& p, void* buf, std::size_t len, int flags, sockaddr* from, socklen_t* from_len);
ssize_t recvmsg(int fd, PosixSocket& p, msghdr* msg, int flags);
ssize_t readv(int fd, PosixSocket& p, const iovec* iov, int count);
ssize_t sendto(int fd, PosixSocket& p, const void* buf, std::size_t len, int flags, const sockaddr* to, socklen_t to_len);
ssize_t sendmsg(int fd, PosixSocket& p, const msghdr* msg, int flags);
ssize_t writev(int fd, PosixSocket& p, const iovec* iov, int count);
ssize_t sendfile(int out_fd, PosixSocket& p, int in_fd, off_t* offset, std::size_t count);
int shutdown(int fd, PosixSocket& p, int how);
int getsockname(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len);
int getpeername(int fd, PosixSocket& p, sockaddr* addr, socklen_t* len);
int setsockopt(int fd, PosixSocket& p, int level, int name, const void* value, socklen_t len);
int getsockopt(int fd, PosixSocket& p, int level, int name, void* value, socklen_t* len);
int fcntl(int fd, PosixSocket& p, int cmd, long arg);
int ioctl(int fd, PosixSocket& p, unsigned long request, void* arg);
// Makes a deferred socket usable (attaching if needed) before readiness calls look at it:
// 0 fabric (or nothing to do), 1 it became a kernel socket, -errno.
int prepare_for_readiness(PosixSocket& p);
} // namespace ops

// close/dup on any descriptor (sockets and epoll sets alike).
int close_fd(int fd);
int dup_fd(int fd);
int dup3_fd(int oldfd, int newfd, int flags, bool is_dup2);
int dupfd_min(int fd, int min, bool cloexec);

// The stack socket's PosixSocket (dispatcher), with a reference; null if gone.
void register_stack_socket(stack::Socket* s, PosixSocket* p);
void unregister_stack_socket(stack::Socket* s);
Ref<PosixSocket> lookup_stack_socket(stack::Socket* s);

} // namespace gazelle::posix
