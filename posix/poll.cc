// SPDX-License-Identifier: BSD-3-Clause
#include "posix/poll.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "posix/epoll.h"
#include "posix/fd_table.h"
#include "posix/process.h"
#include "posix/real_calls.h"
#include "posix/socket.h"

namespace gazelle::posix {

namespace {

constexpr std::uint32_t k_always = POLLERR | POLLHUP | POLLNVAL;

// The eventfd a thread sleeps on next to its kernel descriptors.
struct ThreadWaiter {
    int efd = -1;
    std::uint32_t gen = 0;
    std::atomic<bool> signalled{false};

    ~ThreadWaiter() {
        if (efd >= 0) {
            (void)real().close(efd);
        }
    }
    int fd() {
        if (efd < 0 || gen != process().fork_gen()) {
            // A child inherited its parent's eventfd: it must not share the parent's wake-ups.
            efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            gen = process().fork_gen();
            signalled.store(false);
        }
        return efd;
    }
    void wake() {
        if (!signalled.exchange(true, std::memory_order_acq_rel)) {
            const std::uint64_t one = 1;
            (void)real().write(efd, &one, sizeof one);
        }
    }
    void drain() {
        if (signalled.exchange(false, std::memory_order_acq_rel)) {
            std::uint64_t v = 0;
            (void)real().read(efd, &v, sizeof v);
        }
    }
};

thread_local ThreadWaiter t_waiter;

struct PollWatch final : Watcher {
    ThreadWaiter* waiter = nullptr;
    std::uint32_t interest = 0;
    bool notify(PosixSocket& /*socket*/, std::uint32_t poll_events) override {
        if ((poll_events & (interest | k_always)) == 0) {
            return false;
        }
        waiter->wake();
        return true;
    }
};

struct StackEntry {
    nfds_t index;
    Ref<PosixSocket> sock;
    std::uint32_t forced; // revents forced by a failed placement (POLLERR)
};

// Evaluates the stack entries into fds[].revents. Count of entries with events.
int eval_stack(pollfd* fds, std::vector<StackEntry>& entries) {
    int ready = 0;
    FabricCall call;
    for (StackEntry& e : entries) {
        std::uint32_t ev = e.forced;
        if (call && ev == 0) {
            ev = e.sock->poll_events();
        } else if (!call && ev == 0) {
            ev = POLLNVAL;
        }
        const auto interest = static_cast<std::uint32_t>(static_cast<unsigned short>(fds[e.index].events));
        const std::uint32_t r = ev & (interest | k_always);
        fds[e.index].revents = static_cast<short>(r);
        ready += r != 0 ? 1 : 0;
    }
    return ready;
}

// The engine of poll/ppoll. timeout: deadline (infinite or not); zero: do not wait at all.
int poll_core(pollfd* fds, nfds_t nfds, const Deadline& deadline, bool zero, const timespec* ts,
              const sigset_t* sigmask, bool use_ppoll, int timeout_ms) {
    // Locals, not thread-local scratch: a signal handler may call poll() while we sleep in it.
    struct {
        std::vector<StackEntry> stack;
        std::vector<pollfd> kernel;
        std::vector<nfds_t> kernel_index;
    } sc;
    for (nfds_t i = 0; i < nfds; ++i) {
        fds[i].revents = 0;
        const int fd = fds[i].fd;
        if (fd < 0) {
            continue;
        }
        Ref<FdObject> obj = fd_table().get(fd);
        if (obj && obj->kind() == FdKind::socket) {
            Ref<PosixSocket> p = Ref<PosixSocket>::adopt(static_cast<PosixSocket*>(obj.release()));
            const int prepared = ops::prepare_for_readiness(*p);
            if (prepared < 0) {
                sc.stack.push_back(StackEntry{i, std::move(p), POLLERR});
                continue;
            }
            if (p->state() == SockState::fabric && p->fork_gen_ == process().fork_gen()) {
                sc.stack.push_back(StackEntry{i, std::move(p), 0});
                continue;
            }
        } else if (obj && obj->kind() == FdKind::epoll) {
            (void)mark_epoll_nested(fd);
        }
        sc.kernel.push_back(fds[i]);
        sc.kernel_index.push_back(i);
    }
    if (sc.stack.empty()) {
        return use_ppoll ? real().ppoll(fds, nfds, ts, sigmask) : real().poll(fds, nfds, timeout_ms);
    }
    const nfds_t nk = sc.kernel.size();
    std::vector<StackEntry>& entries = sc.stack; // keeps the sockets referenced for the call
    auto copy_kernel_back = [&] {
        int ready = 0;
        for (nfds_t k = 0; k < nk; ++k) {
            fds[sc.kernel_index[k]].revents = sc.kernel[k].revents;
            ready += sc.kernel[k].revents != 0 ? 1 : 0;
        }
        return ready;
    };
    for (;;) {
        int ready = eval_stack(fds, entries);
        if (nk != 0) {
            const int rc = real().poll(sc.kernel.data(), nk, 0);
            if (rc < 0) {
                return -1;
            }
            ready += copy_kernel_back();
        }
        if (ready != 0 || zero || deadline.expired()) {
            return ready;
        }
        // Sleep: watchers first, then look again (a change in between wakes us), then the kernel.
        ThreadWaiter& waiter = t_waiter;
        const int efd = waiter.fd();
        if (efd < 0) {
            return -1;
        }
        waiter.drain();
        std::vector<PollWatch> watches(entries.size());
        for (std::size_t k = 0; k < entries.size(); ++k) {
            watches[k].waiter = &waiter;
            watches[k].interest = static_cast<std::uint32_t>(static_cast<unsigned short>(fds[entries[k].index].events));
            entries[k].sock->add_watcher(&watches[k]);
        }
        auto unwatch = [&] {
            for (std::size_t k = 0; k < entries.size(); ++k) {
                entries[k].sock->remove_watcher(&watches[k]);
            }
        };
        if (eval_stack(fds, entries) != 0) {
            unwatch();
            continue;
        }
        sc.kernel.push_back(pollfd{efd, POLLIN, 0});
        int rc = 0;
        if (use_ppoll) {
            const timespec left = deadline.remaining();
            rc = real().ppoll(sc.kernel.data(), nk + 1, deadline.infinite ? nullptr : &left, sigmask);
        } else {
            rc = real().poll(sc.kernel.data(), nk + 1, deadline.remaining_ms());
        }
        const int saved = errno;
        sc.kernel.pop_back();
        unwatch();
        waiter.drain();
        if (rc < 0) {
            errno = saved;
            return -1;
        }
        // Loop: evaluate everything again (kernel results are re-read with a zero timeout).
    }
}

Deadline deadline_of_ts(const timespec* ts) {
    if (ts == nullptr) {
        return Deadline{};
    }
    return Deadline::after_usec(static_cast<std::int64_t>(ts->tv_sec) * 1000000 + ts->tv_nsec / 1000);
}

bool any_ours(int nfds, const fd_set* r, const fd_set* w, const fd_set* e) {
    for (int fd = 0; fd < nfds; ++fd) {
        const bool in = (r != nullptr && FD_ISSET(fd, r)) || (w != nullptr && FD_ISSET(fd, w)) ||
                        (e != nullptr && FD_ISSET(fd, e));
        if (in && fd_table().has(fd)) {
            return true;
        }
    }
    return false;
}

// select on poll: POLLIN_SET / POLLOUT_SET / POLLEX_SET as Linux's fs/select.c defines them.
int select_core(int nfds, fd_set* r, fd_set* w, fd_set* e, const Deadline& deadline, bool zero, const timespec* ts,
                const sigset_t* sigmask, bool use_ppoll, int timeout_ms) {
    std::vector<pollfd> fds;
    for (int fd = 0; fd < nfds; ++fd) {
        short ev = 0;
        if (r != nullptr && FD_ISSET(fd, r)) {
            ev |= POLLIN;
        }
        if (w != nullptr && FD_ISSET(fd, w)) {
            ev |= POLLOUT;
        }
        if (e != nullptr && FD_ISSET(fd, e)) {
            ev |= POLLPRI;
        }
        if (ev != 0) {
            fds.push_back(pollfd{fd, ev, 0});
        }
    }
    const int rc = poll_core(fds.data(), fds.size(), deadline, zero, ts, sigmask, use_ppoll, timeout_ms);
    if (rc < 0) {
        return -1;
    }
    for (const pollfd& p : fds) {
        if ((p.revents & POLLNVAL) != 0) {
            errno = EBADF;
            return -1;
        }
    }
    int count = 0;
    for (const pollfd& p : fds) {
        const bool rd = (p.events & POLLIN) != 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
        const bool wr = (p.events & POLLOUT) != 0 && (p.revents & (POLLOUT | POLLERR)) != 0;
        const bool ex = (p.events & POLLPRI) != 0 && (p.revents & POLLPRI) != 0;
        if (r != nullptr && (p.events & POLLIN) != 0 && !rd) {
            FD_CLR(p.fd, r);
        }
        if (w != nullptr && (p.events & POLLOUT) != 0 && !wr) {
            FD_CLR(p.fd, w);
        }
        if (e != nullptr && (p.events & POLLPRI) != 0 && !ex) {
            FD_CLR(p.fd, e);
        }
        count += (rd ? 1 : 0) + (wr ? 1 : 0) + (ex ? 1 : 0);
    }
    return count;
}

} // namespace

int poll_impl(pollfd* fds, nfds_t nfds, int timeout_ms) {
    bool ours = false;
    for (nfds_t i = 0; i < nfds && !ours; ++i) {
        ours = fd_table().has(fds[i].fd);
    }
    if (!ours) {
        return real().poll(fds, nfds, timeout_ms);
    }
    return poll_core(fds, nfds, Deadline::after_ms(timeout_ms), timeout_ms == 0, nullptr, nullptr, false, timeout_ms);
}

int ppoll_impl(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask) {
    bool ours = false;
    for (nfds_t i = 0; i < nfds && !ours; ++i) {
        ours = fd_table().has(fds[i].fd);
    }
    if (!ours) {
        return real().ppoll(fds, nfds, timeout, sigmask);
    }
    const bool zero = timeout != nullptr && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
    return poll_core(fds, nfds, deadline_of_ts(timeout), zero, timeout, sigmask, true, 0);
}

int select_impl(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, timeval* timeout) {
    if (nfds < 0 || nfds > FD_SETSIZE || !any_ours(nfds, readfds, writefds, exceptfds)) {
        return real().select(nfds, readfds, writefds, exceptfds, timeout);
    }
    Deadline deadline;
    int ms = -1;
    bool zero = false;
    if (timeout != nullptr) {
        if (timeout->tv_sec < 0 || timeout->tv_usec < 0) {
            errno = EINVAL;
            return -1;
        }
        const std::int64_t us = static_cast<std::int64_t>(timeout->tv_sec) * 1000000 + timeout->tv_usec;
        deadline = Deadline::after_usec(us);
        zero = us == 0;
        ms = static_cast<int>(std::min<std::int64_t>((us + 999) / 1000, INT32_MAX));
    }
    const int rc = select_core(nfds, readfds, writefds, exceptfds, deadline, zero, nullptr, nullptr, false, ms);
    if (timeout != nullptr && !zero) {
        // Linux writes back the time not slept.
        const timespec left = deadline.remaining();
        timeout->tv_sec = left.tv_sec;
        timeout->tv_usec = static_cast<suseconds_t>(left.tv_nsec / 1000);
    }
    return rc;
}

int pselect_impl(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, const timespec* timeout,
                 const sigset_t* sigmask) {
    if (nfds < 0 || nfds > FD_SETSIZE || !any_ours(nfds, readfds, writefds, exceptfds)) {
        return real().pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask);
    }
    const bool zero = timeout != nullptr && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
    return select_core(nfds, readfds, writefds, exceptfds, deadline_of_ts(timeout), zero, timeout, sigmask, true, 0);
}

} // namespace gazelle::posix
