// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The stack layer's native socket API: what posix/ builds the POSIX calls on, and what tests use.
//
// Threading model (doc/stack.md "Threading"):
//  - every socket belongs to one stack (one stack thread = one queue slot = one lwIP instance);
//    lwIP is only ever touched by that thread;
//  - app threads (any thread, none of them an EAL thread) call these functions. Control calls
//    (bind, listen, connect, close, shutdown_write) cross to the stack thread as requests through
//    the stack's lock-free MPSC request list; bind/listen/connect wait (futex) for the stack to
//    execute them, close and shutdown_write do not wait. Data never waits for the stack: send()
//    copies into the socket's tx ring, recv() out of its rx ring (SPSC rings, one per direction,
//    no lock on the stack's side); a coalesced "kick" tells the stack there is new work;
//  - readiness: events() is computed from the rings and the socket's state; the stack bumps a
//    per-socket futex word (wait()) and pushes the socket onto its Poller's ready list on every
//    change; both cost a syscall only when an app thread sleeps;
//  - one socket may be used by several app threads (an app-side mutex per direction serialises
//    them); a socket must not be used after close().
//
// Conventions: addresses and ports are in network byte order, as in sockaddr_in. Calls return
// counts or 0 for success, and -errno on failure (the posix/ layer maps them to -1 + errno).

#include <cstddef>
#include <cstdint>
#include <span>

#include <sys/types.h>

namespace gazelle::stack {

class Stack;
class Socket;
class Poller;
struct PollerState;

struct Ipv4Endpoint {
    std::uint32_t addr = 0; // network byte order; 0 = any
    std::uint16_t port = 0; // network byte order; 0 = any / choose one
    friend constexpr bool operator==(const Ipv4Endpoint&, const Ipv4Endpoint&) = default;
};

enum class SocketType : std::uint8_t { tcp, udp };

// Readiness bits.
inline constexpr std::uint32_t k_readable = 1u << 0; // recv()/accept() would not return -EAGAIN
inline constexpr std::uint32_t k_writable = 1u << 1; // send() would take at least one byte
inline constexpr std::uint32_t k_hangup = 1u << 2;   // the peer closed its side: no more data will arrive
inline constexpr std::uint32_t k_error = 1u << 3;    // an error is pending (socket_error())

// A new socket on `stack`; nullptr with *error = -ENOMEM, -ENOBUFS (TCP: the process holds
// StackOptions::max_tcp_connections sockets) or -ESHUTDOWN (the stack stopped).
Socket* socket_open(Stack& stack, SocketType type, int* error = nullptr);

// Binds to `local` (addr 0 or the stack's port address; port 0: the stack chooses at listen or
// connect time). 0, -EADDRINUSE, -EADDRNOTAVAIL (not our address), -EINVAL (already bound),
// -ESHUTDOWN. UDP: also makes the fabric deliver datagrams for the port to this stack; with
// `reuse_address` (SO_REUSEADDR/SO_REUSEPORT, needed on every socket of the port, as in Linux)
// several UDP sockets of this stack share the port: a datagram goes to the connected one whose
// peer sent it, else to an unconnected one (iperf3's server binds its next stream this way).
int bind(Socket* s, Ipv4Endpoint local, bool reuse_address = false);

// TCP: starts listening; new connections for the port are shared with every other stack (of any
// process) listening on it. 0, -EADDRINUSE, -ENOSPC (flow table full), -ENOMEM, -EINVAL, -ESHUTDOWN.
int listen(Socket* s, int backlog);

// TCP: a connection the stack accepted for listener `s` (peer: its address, if not null), or
// nullptr with *error = -EAGAIN (none yet: wait for k_readable), -EINVAL (not listening).
Socket* accept(Socket* s, Ipv4Endpoint* peer = nullptr, int* error = nullptr);

// TCP: starts connecting (non-blocking: wait for k_writable, then check socket_error()). The
// stack picks a local port whose replies its NIC queue receives (software RSS) and installs the
// connection's flow rule. 0 (in progress), -EADDRNOTAVAIL (no local port left), -EISCONN,
// -EALREADY, -ENETUNREACH, -ENOSPC (flow table full), -ENOMEM, -ESHUTDOWN.
// UDP: fixes the default destination for send().
int connect(Socket* s, Ipv4Endpoint remote);

// TCP: copies up to len bytes into the send ring. Returns the count, -EAGAIN (ring full),
// -ENOTCONN, -EPIPE (write side shut down or connection closed), or the pending error.
// UDP: one datagram to the connected destination (see send_to).
ssize_t send(Socket* s, const void* data, std::size_t len);
// TCP: copies up to len bytes out of the receive ring. Returns the count, 0 at end of stream,
// -EAGAIN (nothing yet), -ENOTCONN, or the pending error (-ECONNRESET, -ETIMEDOUT, ...).
// UDP: one datagram (truncated to len), see recv_from.
ssize_t recv(Socket* s, void* buf, std::size_t len);

// UDP: queues one datagram (the socket is bound to an ephemeral port first if needed). Returns
// len, -EAGAIN (ring full), -EMSGSIZE (above 65507 bytes or the ring), -EINVAL.
ssize_t send_to(Socket* s, const void* data, std::size_t len, Ipv4Endpoint to);
// UDP: the next datagram (truncated to len; the rest is dropped); from = its sender.
ssize_t recv_from(Socket* s, void* buf, std::size_t len, Ipv4Endpoint* from);

// TCP: FIN once everything already sent has been handed to lwIP. 0, -ENOTCONN.
int shutdown_write(Socket* s);

// Releases the socket: TCP data already in the send ring is still sent, then FIN (a listener
// stops listening; connections it accepted that nobody took are reset). Never fails; `s` is
// invalid afterwards.
void close(Socket* s);

// Current readiness (k_readable | k_writable | k_hangup | k_error).
std::uint32_t events(Socket* s);
// Takes the pending error (0 if none), like SO_ERROR.
int socket_error(Socket* s);
// Waits until events(s) & interest, or timeout_ms (< 0: forever). Returns events(s).
std::uint32_t wait(Socket* s, std::uint32_t interest, int timeout_ms);

Ipv4Endpoint local_endpoint(Socket* s);
Ipv4Endpoint peer_endpoint(Socket* s);
Stack& stack_of(Socket* s);

// A set of sockets an app thread sleeps on (epoll-like, edge-triggered): each change of a
// member's readiness queues it once; wait() hands queued sockets out. Sockets of several stacks
// may be members; a socket is a member of at most one Poller. Any app thread may add/remove;
// wait() from one thread at a time.
class Poller {
public:
    Poller();
    ~Poller();
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // Makes s a member (queued at once if it is ready). 0, or -EBUSY (member of another poller).
    int add(Socket* s);
    // Ends membership (close() does it too).
    void remove(Socket* s);
    // Writes up to out.size() sockets whose readiness changed since they were last handed out,
    // waiting up to timeout_ms (< 0: forever) for the first. Returns the count (0: timeout, or
    // interrupted).
    unsigned wait(std::span<Socket*> out, int timeout_ms);
    // Any thread: the current wait() returns at once (or the next one, if none is waiting), so a
    // thread can wait forever and still be told to stop.
    void interrupt();

private:
    PollerState* state_;
};

} // namespace gazelle::stack
