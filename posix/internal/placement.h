// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Private to posix/: the placement steps of a PosixSocket (posix/socket.h) shared by the socket
// object (socket.cc) and the calls (socket_calls.cc). Functions returning int follow the file's
// convention said on each; those returning -1 set errno.

#include <cstdint>
#include <string>

#include <netinet/in.h>

#include "posix/log.h"
#include "posix/socket.h"
#include "stack/api.h"

namespace gazelle::posix::detail {

// Sets errno, returns -1.
int fail(int code);

stack::Ipv4Endpoint endpoint_of(const sockaddr_in& sin);
std::string text_of(stack::Ipv4Endpoint ep); // "a.b.c.d:port"

// The socket belongs to another process's stacks (inherited across fork, or the stacks stopped).
bool is_orphan(const PosixSocket& p);
// Logs once per process, sets errno to EBADFD, returns -1.
int orphan_error(int fd);

// Places p on the kernel for good: counts, logs (debug), forgets its table slots. Under
// p.state_mutex_.
void to_kernel(int fd, PosixSocket& p, KernelReason reason);
// Where p goes for destination dst (connect, sendto), attaching if needed: 0 fabric, 1 kernel
// (already placed there), -errno. Under p.state_mutex_.
int place_for_destination(int fd, PosixSocket& p, std::uint32_t dst);

// Closes and unregisters p's stack sockets at once.
void close_stack_sockets(PosixSocket& p);
// Adds a stack socket to p (registry, the dispatcher's Poller). 0 or -errno.
int add_stack_socket(PosixSocket& p, stack::Socket* s);

// A deferred socket becomes a fabric socket (attaching if needed), or a kernel socket with its
// recorded bind/listen replayed if the process cannot attach: 0 fabric, 1 kernel, -errno.
// materialize_locked: under p.state_mutex_.
int materialize_locked(int fd, PosixSocket& p);
int materialize(int fd, PosixSocket& p);

// The preamble of a data call: 0 use the fabric, 1 use the kernel socket, -1 failed (errno set).
int route(int fd, PosixSocket& p);

} // namespace gazelle::posix::detail
