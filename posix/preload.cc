// SPDX-License-Identifier: BSD-3-Clause
// The symbols liblstack.so interposes (LD_PRELOAD). Each one is a thin switch: a descriptor the
// table does not know is a kernel descriptor and goes straight to the C library (two loads, no
// lock, async-signal-safe); a socket or epoll set of ours goes to posix/socket.cc, epoll.cc or
// poll.cc. The contract is the C library's: -1 and errno.
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <vector>

#include "posix/epoll.h"
#include "posix/fd_table.h"
#include "posix/poll.h"
#include "posix/process.h"
#include "posix/real_calls.h"
#include "posix/socket.h"

#define GZ_EXPORT extern "C" __attribute__((visibility("default")))

using namespace gazelle::posix;

extern "C" [[noreturn]] void __chk_fail(void);

namespace {

__attribute__((constructor)) void lstack_constructor() {
    // Cheap and without side effects: resolve the C library's calls, read GAZELLE_BIND_PROCNAME.
    process().init_from_constructor();
}

inline bool ours(int fd) { return fd_table().has(fd); }

int exec_prepare() {
    if (process().enabled()) {
        process().before_exec();
    }
    return 0;
}

// execl-style argument lists.
std::vector<char*> collect_args(const char* arg0, va_list ap, char*** envp_out) {
    std::vector<char*> args;
    args.push_back(const_cast<char*>(arg0));
    while (args.back() != nullptr) {
        args.push_back(va_arg(ap, char*));
    }
    if (envp_out != nullptr) {
        *envp_out = va_arg(ap, char**);
    }
    return args;
}

} // namespace

// --- creation, placement ------------------------------------------------------------------------------

GZ_EXPORT int socket(int domain, int type, int protocol) noexcept {
    if (!process().enabled()) {
        return real().socket(domain, type, protocol);
    }
    return ops::socket(domain, type, protocol);
}

GZ_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) noexcept {
    return real().socketpair(domain, type, protocol, sv); // AF_UNIX only: always the kernel's
}

GZ_EXPORT int bind(int fd, const sockaddr* addr, socklen_t len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::bind(fd, *p, addr, len);
    }
    return real().bind(fd, addr, len);
}

GZ_EXPORT int listen(int fd, int backlog) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::listen(fd, *p, backlog);
    }
    return real().listen(fd, backlog);
}

GZ_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::accept(fd, *p, addr, len, 0);
    }
    return real().accept(fd, addr, len);
}

GZ_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::accept(fd, *p, addr, len, flags);
    }
    return real().accept4(fd, addr, len, flags);
}

GZ_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::connect(fd, *p, addr, len);
    }
    return real().connect(fd, addr, len);
}

// --- data -------------------------------------------------------------------------------------------------

GZ_EXPORT ssize_t read(int fd, void* buf, std::size_t len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::recvfrom(fd, *p, buf, len, 0, nullptr, nullptr);
    }
    return real().read(fd, buf, len);
}

GZ_EXPORT ssize_t __read_chk(int fd, void* buf, std::size_t len, std::size_t buflen) noexcept {
    if (len > buflen) {
        __chk_fail();
    }
    return read(fd, buf, len);
}

GZ_EXPORT ssize_t readv(int fd, const iovec* iov, int count) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::readv(fd, *p, iov, count);
    }
    return real().readv(fd, iov, count);
}

GZ_EXPORT ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::recvfrom(fd, *p, buf, len, flags, nullptr, nullptr);
    }
    return real().recv(fd, buf, len, flags);
}

GZ_EXPORT ssize_t __recv_chk(int fd, void* buf, std::size_t len, std::size_t buflen, int flags) noexcept {
    if (len > buflen) {
        __chk_fail();
    }
    return recv(fd, buf, len, flags);
}

GZ_EXPORT ssize_t recvfrom(int fd, void* buf, std::size_t len, int flags, sockaddr* from, socklen_t* from_len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::recvfrom(fd, *p, buf, len, flags, from, from_len);
    }
    return real().recvfrom(fd, buf, len, flags, from, from_len);
}

GZ_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, std::size_t len, std::size_t buflen, int flags, sockaddr* from,
                                 socklen_t* from_len) noexcept {
    if (len > buflen) {
        __chk_fail();
    }
    return recvfrom(fd, buf, len, flags, from, from_len);
}

GZ_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::recvmsg(fd, *p, msg, flags);
    }
    return real().recvmsg(fd, msg, flags);
}

GZ_EXPORT ssize_t write(int fd, const void* buf, std::size_t len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::sendto(fd, *p, buf, len, 0, nullptr, 0);
    }
    return real().write(fd, buf, len);
}

GZ_EXPORT ssize_t writev(int fd, const iovec* iov, int count) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::writev(fd, *p, iov, count);
    }
    return real().writev(fd, iov, count);
}

GZ_EXPORT ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::sendto(fd, *p, buf, len, flags, nullptr, 0);
    }
    return real().send(fd, buf, len, flags);
}

GZ_EXPORT ssize_t sendto(int fd, const void* buf, std::size_t len, int flags, const sockaddr* to, socklen_t to_len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::sendto(fd, *p, buf, len, flags, to, to_len);
    }
    return real().sendto(fd, buf, len, flags, to, to_len);
}

GZ_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::sendmsg(fd, *p, msg, flags);
    }
    return real().sendmsg(fd, msg, flags);
}

GZ_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, std::size_t count) noexcept {
    if (Ref<PosixSocket> p = ours(out_fd) ? socket_of(out_fd) : Ref<PosixSocket>{}) {
        return ops::sendfile(out_fd, *p, in_fd, offset, count);
    }
    if (ours(in_fd)) {
        errno = EINVAL; // reading a stack socket into a file: not supported
        return -1;
    }
    return real().sendfile(out_fd, in_fd, offset, count);
}

GZ_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t* offset, std::size_t count) noexcept {
    return sendfile(out_fd, in_fd, offset, count);
}

GZ_EXPORT int sendmmsg(int fd, mmsghdr* msgs, unsigned int count, int flags) noexcept {
    Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{};
    if (!p) {
        return static_cast<int>(syscall(SYS_sendmmsg, fd, msgs, count, flags));
    }
    unsigned int sent = 0;
    for (; sent < count; ++sent) {
        const ssize_t n = ops::sendmsg(fd, *p, &msgs[sent].msg_hdr, flags);
        if (n < 0) {
            return sent == 0 ? -1 : static_cast<int>(sent);
        }
        msgs[sent].msg_len = static_cast<unsigned int>(n);
    }
    return static_cast<int>(sent);
}

GZ_EXPORT int recvmmsg(int fd, mmsghdr* msgs, unsigned int count, int flags, timespec* timeout) noexcept {
    Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{};
    if (!p) {
        return static_cast<int>(syscall(SYS_recvmmsg, fd, msgs, count, flags, timeout));
    }
    // As Linux: the timeout is checked after each datagram; MSG_WAITFORONE makes the ones after
    // the first non-blocking.
    const Deadline deadline = timeout != nullptr ? Deadline::after_usec(static_cast<std::int64_t>(timeout->tv_sec) * 1000000 +
                                                                        timeout->tv_nsec / 1000)
                                                 : Deadline{};
    unsigned int got = 0;
    for (; got < count; ++got) {
        int f = flags & ~MSG_WAITFORONE;
        if (got != 0 && (flags & MSG_WAITFORONE) != 0) {
            f |= MSG_DONTWAIT;
        }
        const ssize_t n = ops::recvmsg(fd, *p, &msgs[got].msg_hdr, f);
        if (n < 0) {
            if (got != 0 && (errno == EAGAIN || errno == EINTR)) {
                break;
            }
            return got == 0 ? -1 : static_cast<int>(got);
        }
        msgs[got].msg_len = static_cast<unsigned int>(n);
        if (deadline.expired()) {
            ++got;
            break;
        }
    }
    return static_cast<int>(got);
}

// --- descriptors --------------------------------------------------------------------------------------

GZ_EXPORT int close(int fd) noexcept {
    if (!ours(fd)) {
        return real().close(fd);
    }
    return close_fd(fd);
}

namespace {
// Forgets the table entries in [first, last] before the kernel closes the numbers.
void forget_range(unsigned int first, unsigned int last) {
    std::vector<int> fds;
    fd_table().for_each_unsafe([&](int fd, FdObject*) {
        if (static_cast<unsigned int>(fd) >= first && static_cast<unsigned int>(fd) <= last) {
            fds.push_back(fd);
        }
    });
    for (int fd : fds) {
        (void)close_fd(fd);
    }
}
} // namespace

GZ_EXPORT int close_range(unsigned int first, unsigned int last, int flags) noexcept {
    if ((static_cast<unsigned int>(flags) & CLOSE_RANGE_CLOEXEC) == 0 && first <= last) {
        forget_range(first, last);
    }
    return static_cast<int>(syscall(SYS_close_range, first, last, flags));
}

GZ_EXPORT void closefrom(int lowfd) noexcept {
    const auto first = static_cast<unsigned int>(lowfd < 0 ? 0 : lowfd);
    forget_range(first, ~0u);
    if (syscall(SYS_close_range, first, ~0u, 0) != 0) {
        // Kernels without close_range: close what /proc says is open, like glibc does.
        for (int fd = static_cast<int>(first); fd < 65536; ++fd) {
            (void)real().close(fd);
        }
    }
}

GZ_EXPORT int shutdown(int fd, int how) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::shutdown(fd, *p, how);
    }
    return real().shutdown(fd, how);
}

GZ_EXPORT int getsockname(int fd, sockaddr* addr, socklen_t* len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::getsockname(fd, *p, addr, len);
    }
    return real().getsockname(fd, addr, len);
}

GZ_EXPORT int getpeername(int fd, sockaddr* addr, socklen_t* len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::getpeername(fd, *p, addr, len);
    }
    return real().getpeername(fd, addr, len);
}

GZ_EXPORT int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::setsockopt(fd, *p, level, name, value, len);
    }
    return real().setsockopt(fd, level, name, value, len);
}

GZ_EXPORT int getsockopt(int fd, int level, int name, void* value, socklen_t* len) noexcept {
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::getsockopt(fd, *p, level, name, value, len);
    }
    return real().getsockopt(fd, level, name, value, len);
}

namespace {
int fcntl_common(int fd, int cmd, long arg, bool is64) {
    if (ours(fd)) {
        if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
            return dupfd_min(fd, static_cast<int>(arg), cmd == F_DUPFD_CLOEXEC);
        }
        if (Ref<PosixSocket> p = socket_of(fd)) {
            return ops::fcntl(fd, *p, cmd, arg);
        }
    }
    return is64 ? real().fcntl64(fd, cmd, arg) : real().fcntl(fd, cmd, arg);
}
} // namespace

// The argument is an int or a pointer; both travel in one register on x86-64 (glibc reads it as
// a pointer the same way).
GZ_EXPORT int fcntl(int fd, int cmd, ...) noexcept {
    va_list ap;
    va_start(ap, cmd);
    const long arg = va_arg(ap, long);
    va_end(ap);
    return fcntl_common(fd, cmd, arg, false);
}

GZ_EXPORT int fcntl64(int fd, int cmd, ...) noexcept {
    va_list ap;
    va_start(ap, cmd);
    const long arg = va_arg(ap, long);
    va_end(ap);
    return fcntl_common(fd, cmd, arg, true);
}

GZ_EXPORT int ioctl(int fd, unsigned long request, ...) noexcept {
    va_list ap;
    va_start(ap, request);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    if (Ref<PosixSocket> p = ours(fd) ? socket_of(fd) : Ref<PosixSocket>{}) {
        return ops::ioctl(fd, *p, request, arg);
    }
    return real().ioctl(fd, request, arg);
}

GZ_EXPORT int dup(int fd) noexcept { return dup_fd(fd); }
GZ_EXPORT int dup2(int oldfd, int newfd) noexcept { return dup3_fd(oldfd, newfd, 0, true); }
GZ_EXPORT int dup3(int oldfd, int newfd, int flags) noexcept { return dup3_fd(oldfd, newfd, flags, false); }

// --- readiness ----------------------------------------------------------------------------------------

GZ_EXPORT int poll(pollfd* fds, nfds_t nfds, int timeout) noexcept { return poll_impl(fds, nfds, timeout); }

GZ_EXPORT int __poll_chk(pollfd* fds, nfds_t nfds, int timeout, std::size_t fdslen) noexcept {
    if (fdslen / sizeof(*fds) < nfds) {
        __chk_fail();
    }
    return poll_impl(fds, nfds, timeout);
}

GZ_EXPORT int ppoll(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask) noexcept {
    return ppoll_impl(fds, nfds, timeout, sigmask);
}

GZ_EXPORT int __ppoll_chk(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask,
                          std::size_t fdslen) noexcept {
    if (fdslen / sizeof(*fds) < nfds) {
        __chk_fail();
    }
    return ppoll_impl(fds, nfds, timeout, sigmask);
}

GZ_EXPORT int select(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, timeval* timeout) noexcept {
    return select_impl(nfds, readfds, writefds, exceptfds, timeout);
}

GZ_EXPORT int pselect(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, const timespec* timeout,
                      const sigset_t* sigmask) noexcept {
    return pselect_impl(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}

GZ_EXPORT int epoll_create(int size) noexcept { return epoll_create_impl(0, true, size); }
GZ_EXPORT int epoll_create1(int flags) noexcept { return epoll_create_impl(flags, false, 0); }

GZ_EXPORT int epoll_ctl(int epfd, int op, int fd, epoll_event* event) noexcept {
    if (!ours(fd) && !ours(epfd)) {
        return real().epoll_ctl(epfd, op, fd, event);
    }
    return epoll_ctl_impl(epfd, op, fd, event);
}

GZ_EXPORT int epoll_wait(int epfd, epoll_event* events, int max, int timeout) noexcept {
    if (!ours(epfd)) {
        return real().epoll_wait(epfd, events, max, timeout);
    }
    return epoll_wait_impl(epfd, events, max, timeout, nullptr, false);
}

GZ_EXPORT int epoll_pwait(int epfd, epoll_event* events, int max, int timeout, const sigset_t* sigmask) noexcept {
    if (!ours(epfd)) {
        return real().epoll_pwait(epfd, events, max, timeout, sigmask);
    }
    return epoll_wait_impl(epfd, events, max, timeout, sigmask, true);
}

// --- processes ------------------------------------------------------------------------------------------

// pthread_atfork handlers (process.cc) do the work, also for daemon() and other internal forks.
GZ_EXPORT pid_t fork() noexcept { return real().fork(); }

GZ_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
    (void)exec_prepare();
    return real().execve(path, argv, envp);
}

GZ_EXPORT int execv(const char* path, char* const argv[]) noexcept {
    (void)exec_prepare();
    return real().execv(path, argv);
}

GZ_EXPORT int execvp(const char* file, char* const argv[]) noexcept {
    (void)exec_prepare();
    return real().execvp(file, argv);
}

GZ_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
    (void)exec_prepare();
    return real().execvpe(file, argv, envp);
}

GZ_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
    (void)exec_prepare();
    return real().fexecve(fd, argv, envp);
}

GZ_EXPORT int execl(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    std::vector<char*> args = collect_args(arg, ap, nullptr);
    va_end(ap);
    return execv(path, args.data());
}

GZ_EXPORT int execlp(const char* file, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    std::vector<char*> args = collect_args(arg, ap, nullptr);
    va_end(ap);
    return execvp(file, args.data());
}

GZ_EXPORT int execle(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    char** envp = nullptr;
    std::vector<char*> args = collect_args(arg, ap, &envp);
    va_end(ap);
    return execve(path, args.data(), envp);
}
