// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The C library's own socket and file calls (dlsym(RTLD_NEXT)), which liblstack.so's interposed
// symbols fall back to for kernel file descriptors and use for the kernel side of stack sockets.
//
// Resolved once, on first use, from any thread (the library constructor also resolves them so
// the common path is a plain load). Never calls anything that liblstack.so interposes.

#include <csignal>
#include <cstddef>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

namespace gazelle::posix {

struct RealCalls {
    int (*socket)(int, int, int);
    int (*socketpair)(int, int, int, int*);
    int (*bind)(int, const sockaddr*, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, sockaddr*, socklen_t*);
    int (*accept4)(int, sockaddr*, socklen_t*, int);
    int (*connect)(int, const sockaddr*, socklen_t);
    ssize_t (*read)(int, void*, std::size_t);
    ssize_t (*readv)(int, const iovec*, int);
    ssize_t (*write)(int, const void*, std::size_t);
    ssize_t (*writev)(int, const iovec*, int);
    ssize_t (*recv)(int, void*, std::size_t, int);
    ssize_t (*recvfrom)(int, void*, std::size_t, int, sockaddr*, socklen_t*);
    ssize_t (*recvmsg)(int, msghdr*, int);
    ssize_t (*send)(int, const void*, std::size_t, int);
    ssize_t (*sendto)(int, const void*, std::size_t, int, const sockaddr*, socklen_t);
    ssize_t (*sendmsg)(int, const msghdr*, int);
    ssize_t (*sendfile)(int, int, off_t*, std::size_t);
    int (*close)(int);
    int (*shutdown)(int, int);
    int (*getsockname)(int, sockaddr*, socklen_t*);
    int (*getpeername)(int, sockaddr*, socklen_t*);
    int (*setsockopt)(int, int, int, const void*, socklen_t);
    int (*getsockopt)(int, int, int, void*, socklen_t*);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    int (*poll)(pollfd*, nfds_t, int);
    int (*ppoll)(pollfd*, nfds_t, const timespec*, const sigset_t*);
    int (*select)(int, fd_set*, fd_set*, fd_set*, timeval*);
    int (*pselect)(int, fd_set*, fd_set*, fd_set*, const timespec*, const sigset_t*);
    int (*epoll_create)(int);
    int (*epoll_create1)(int);
    int (*epoll_ctl)(int, int, int, epoll_event*);
    int (*epoll_wait)(int, epoll_event*, int, int);
    int (*epoll_pwait)(int, epoll_event*, int, int, const sigset_t*);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    pid_t (*fork)();
    int (*execve)(const char*, char* const[], char* const[]);
    int (*execv)(const char*, char* const[]);
    int (*execvp)(const char*, char* const[]);
    int (*execvpe)(const char*, char* const[], char* const[]);
    int (*fexecve)(int, char* const[], char* const[]);
};

// The resolved table (resolves it on first use).
const RealCalls& real();

} // namespace gazelle::posix
