// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// EpollSet: an epoll instance that may hold stack sockets next to kernel descriptors.
//
// The app's epoll fd is a real kernel epoll instance: kernel descriptors are registered in it as
// usual (their events come back from the kernel with the app's epoll_data untouched). Stack
// sockets are registered here instead, in user space: each registration is a Watcher on its
// socket, and the readiness dispatcher queues it on the set's ready list when the socket's
// readiness changes. epoll_wait() hands out the ready list first (no syscall), then asks the
// kernel epoll without waiting; to sleep, it sleeps in the kernel epoll, in which a private
// eventfd (with a data value no app can use: the address of a private object) is written when a
// stack socket becomes ready while someone sleeps. Level-triggered registrations stay on the
// ready list while their socket is ready; EPOLLET ones are queued again by the next change;
// EPOLLONESHOT ones are disabled until EPOLL_CTL_MOD. A socket may be in several sets.
//
// An epoll fd watched by another epoll set, or by poll/select, becomes "nested": its eventfd is
// then kept readable while stack sockets are ready, so the outer waiter sees it.
//
// Sockets not yet placed (undecided) are registered in the kernel epoll like any kernel socket,
// and move to user space if they are placed on the fabric.
//
// Threading: any thread; lock order: a socket's watchers_mutex_, then a set's mutex_.

#include <sys/epoll.h>

#include <csignal>

namespace gazelle::posix {

class PosixSocket;

int epoll_create_impl(int flags, bool legacy, int size);
int epoll_ctl_impl(int epfd, int op, int fd, epoll_event* event);
int epoll_wait_impl(int epfd, epoll_event* events, int max, int timeout_ms, const sigset_t* sigmask, bool pwait);

// The socket was placed: its kernel-mode registrations move to user space (fabric), or are
// simply forgotten (kernel). Under the socket's state_mutex_.
void epoll_socket_placed(PosixSocket& socket, bool on_fabric);

// poll/select on an epoll fd: makes its set nested. True if fd is one of our epoll sets.
bool mark_epoll_nested(int fd);

} // namespace gazelle::posix
