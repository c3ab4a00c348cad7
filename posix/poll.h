// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// poll, ppoll, select and pselect over any mix of kernel descriptors and stack sockets.
//
// A call without stack sockets is the C library's call on the same arguments. Otherwise stack
// sockets are evaluated in user space and kernel descriptors with a zero-timeout poll; to sleep,
// the thread registers as a watcher of each stack socket and sleeps in the kernel's poll/ppoll on
// the kernel descriptors plus a per-thread eventfd that the readiness dispatcher writes when one
// of the stack sockets changes. Signal masks (ppoll, pselect) and EINTR are the kernel's.
//
// Threading: any thread.

#include <poll.h>
#include <sys/select.h>

#include <csignal>
#include <ctime>

namespace gazelle::posix {

int poll_impl(pollfd* fds, nfds_t nfds, int timeout_ms);
int ppoll_impl(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask);
int select_impl(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, timeval* timeout);
int pselect_impl(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, const timespec* timeout,
                 const sigset_t* sigmask);

} // namespace gazelle::posix
