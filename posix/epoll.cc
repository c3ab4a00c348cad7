// SPDX-License-Identifier: BSD-3-Clause
#include "posix/epoll.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "posix/fd_table.h"
#include "posix/log.h"
#include "posix/process.h"
#include "posix/real_calls.h"
#include "posix/socket.h"

namespace gazelle::posix {

namespace {

// The data of the set's own eventfd in the kernel epoll: the address of a private object, which
// no app can hold (apps store their fds, indices or pointers to their own objects).
const char g_wake_tag = 0;
const std::uint64_t k_wake_data = reinterpret_cast<std::uintptr_t>(&g_wake_tag);

// The event bits a registration can ask for (EPOLLET and friends are flags, not events).
constexpr std::uint32_t k_event_bits = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM |
                                       EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP;
constexpr std::uint32_t k_always = EPOLLERR | EPOLLHUP;

int fail(int code) {
    errno = code;
    return -1;
}

class EpollSet;

struct EpollReg final : Watcher {
    EpollSet* set = nullptr;
    PosixSocket* sock = nullptr;
    int fd = -1;
    std::uint32_t events = 0;
    epoll_data_t data{};
    bool kernel_mode = false; // registered in the kernel epoll (undecided socket)
    bool queued = false;      // on the ready list (under the set's mutex)
    bool disabled = false;    // EPOLLONESHOT fired
    bool linked = true;       // false: removed; the ready list frees it
    EpollReg* next = nullptr;

    bool notify(PosixSocket& socket, std::uint32_t poll_events) override;
    bool exclusive() const override { return (events & EPOLLEXCLUSIVE) != 0; }
};

std::mutex g_set_pool_mutex;
std::vector<EpollSet*> g_free_sets;

class EpollSet final : public FdObject {
public:
    static EpollSet* create(int kfd, bool counts_known);

    int kfd_ = -1;
    int wake_fd_ = -1;
    std::uint32_t fork_gen_ = 0;
    std::mutex mutex_;
    EpollReg* head_ = nullptr;
    EpollReg* tail_ = nullptr;
    std::unordered_map<int, EpollReg*> regs_; // stack sockets by fd (user space and kernel mode)
    std::atomic<int> sleepers_{0};
    std::atomic<bool> wake_pending_{false};
    std::atomic<bool> nested_{false};
    std::atomic<int> kernel_members_{0};

    void push_locked(EpollReg* r) {
        r->queued = true;
        r->next = nullptr;
        if (tail_ == nullptr) {
            head_ = tail_ = r;
        } else {
            tail_->next = r;
            tail_ = r;
        }
    }
    EpollReg* pop_locked() {
        EpollReg* r = head_;
        if (r != nullptr) {
            head_ = r->next;
            if (head_ == nullptr) {
                tail_ = nullptr;
            }
            r->next = nullptr;
            r->queued = false;
        }
        return r;
    }

    // Queues r if it is live (any thread). True if it is queued now.
    bool enqueue(EpollReg* r) {
        {
            std::lock_guard lock(mutex_);
            if (!r->linked || r->disabled || r->kernel_mode) {
                return false;
            }
            if (!r->queued) {
                push_locked(r);
            }
        }
        maybe_wake();
        return true;
    }

    void maybe_wake() {
        if ((sleepers_.load(std::memory_order_seq_cst) > 0 || nested_.load(std::memory_order_acquire)) &&
            !wake_pending_.exchange(true, std::memory_order_acq_rel)) {
            const std::uint64_t one = 1;
            (void)real().write(wake_fd_, &one, sizeof one);
        }
    }

    // Read first, then clear: cleared first, a maybe_wake() between the two could see the flag
    // clear, write, and have its write eaten by our read, leaving the flag set with the eventfd
    // empty: no wake-up would ever be written again (sleepers would only wake on timeouts).
    // This order is safe because every caller harvests after draining: an enqueue whose
    // maybe_wake() saw the flag still set is in the ready list by then.
    void drain_wake() {
        std::uint64_t v = 0;
        (void)real().read(wake_fd_, &v, sizeof v);
        wake_pending_.store(false, std::memory_order_seq_cst);
    }

    bool ready_empty() {
        std::lock_guard lock(mutex_);
        return head_ == nullptr;
    }

    // Ready stack sockets, at most max. Never blocks.
    int harvest(epoll_event* out, int max);
    // Removes the wake-up entry from kernel results (draining it); returns the count left.
    int filter(epoll_event* out, int n);
    int wait(epoll_event* out, int max, int timeout_ms, const sigset_t* sigmask, bool pwait);
    int ctl_socket(int op, int fd, PosixSocket& p, epoll_event* event);

    void last_ref_dropped() override;

private:
    EpollSet() : FdObject(FdKind::epoll) {}
    ~EpollSet() = default;
};

bool EpollReg::notify(PosixSocket& /*socket*/, std::uint32_t poll_events) {
    if (kernel_mode || (poll_events & ((events & k_event_bits) | k_always)) == 0) {
        return false;
    }
    return set->enqueue(this);
}

EpollSet* EpollSet::create(int kfd, bool counts_known) {
    const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0) {
        return nullptr;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = k_wake_data;
    if (real().epoll_ctl(kfd, EPOLL_CTL_ADD, wake, &ev) != 0) {
        const int saved = errno;
        (void)real().close(wake);
        errno = saved;
        return nullptr;
    }
    EpollSet* s = nullptr;
    {
        std::lock_guard lock(g_set_pool_mutex);
        if (!g_free_sets.empty()) {
            s = g_free_sets.back();
            g_free_sets.pop_back();
        }
    }
    if (s == nullptr) {
        s = new (std::nothrow) EpollSet;
        if (s == nullptr) {
            (void)real().close(wake);
            errno = ENOMEM;
            return nullptr;
        }
    }
    s->kfd_ = kfd;
    s->wake_fd_ = wake;
    s->fork_gen_ = process().fork_gen();
    s->head_ = s->tail_ = nullptr;
    s->regs_.clear();
    s->sleepers_.store(0);
    s->wake_pending_.store(false);
    s->nested_.store(false);
    // A set made for an epoll fd we did not create may already hold kernel descriptors.
    s->kernel_members_.store(counts_known ? 0 : 1);
    s->revive();
    return s;
}

int EpollSet::harvest(epoll_event* out, int max) {
    FabricCall call;
    if (!call || fork_gen_ != process().fork_gen()) {
        return 0;
    }
    std::lock_guard lock(mutex_);
    int n = 0;
    // Each registration is looked at once per call (level-triggered ones go back to the tail).
    EpollReg* last = tail_;
    while (n < max && head_ != nullptr) {
        EpollReg* r = pop_locked();
        const bool was_last = r == last;
        if (!r->linked) {
            delete r;
        } else if (!r->disabled && !r->kernel_mode) {
            const std::uint32_t ev = r->sock->poll_events() & ((r->events & k_event_bits) | k_always);
            if (ev != 0) {
                out[n].events = ev;
                out[n].data = r->data;
                ++n;
                if ((r->events & EPOLLONESHOT) != 0) {
                    r->disabled = true;
                } else if ((r->events & EPOLLET) == 0) {
                    push_locked(r);
                }
            }
        }
        if (was_last) {
            break;
        }
    }
    if (head_ == nullptr && wake_pending_.load(std::memory_order_acquire) && nested_.load(std::memory_order_acquire)) {
        drain_wake();
    }
    return n;
}

int EpollSet::filter(epoll_event* out, int n) {
    int kept = 0;
    for (int i = 0; i < n; ++i) {
        if (out[i].data.u64 == k_wake_data) {
            if (!nested_.load(std::memory_order_acquire) || ready_empty()) {
                drain_wake();
            }
            continue;
        }
        out[kept++] = out[i];
    }
    return kept;
}

int EpollSet::wait(epoll_event* out, int max, int timeout_ms, const sigset_t* sigmask, bool pwait) {
    if (max <= 0 || out == nullptr) {
        return fail(EINVAL);
    }
    const Deadline deadline = Deadline::after_ms(timeout_ms);
    for (;;) {
        int n = harvest(out, max);
        if (n < max && kernel_members_.load(std::memory_order_relaxed) > 0) {
            const int k = real().epoll_wait(kfd_, out + n, max - n, 0);
            if (k > 0) {
                n += filter(out + n, k);
            }
        }
        if (n > 0) {
            return n;
        }
        if (timeout_ms == 0 || deadline.expired()) {
            return 0;
        }
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (!ready_empty()) {
            sleepers_.fetch_sub(1, std::memory_order_seq_cst);
            continue;
        }
        const int ms = deadline.remaining_ms();
        const int k = pwait ? real().epoll_pwait(kfd_, out, max, ms, sigmask) : real().epoll_wait(kfd_, out, max, ms);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        if (k < 0) {
            return -1; // EINTR and friends, as the kernel said
        }
        const int kept = filter(out, k);
        if (kept > 0) {
            return kept + harvest(out + kept, max - kept);
        }
        if (k == 0) {
            return harvest(out, max); // timed out
        }
    }
}

int EpollSet::ctl_socket(int op, int fd, PosixSocket& p, epoll_event* event) {
    if (op != EPOLL_CTL_DEL && event == nullptr) {
        return fail(EFAULT);
    }
    const bool kernel_mode = p.state() == SockState::undecided;
    std::lock_guard socket_lock(p.watchers_mutex_);
    std::unique_lock lock(mutex_);
    const auto it = regs_.find(fd);
    EpollReg* r = it == regs_.end() ? nullptr : it->second;
    switch (op) {
    case EPOLL_CTL_ADD: {
        if (r != nullptr) {
            return fail(EEXIST);
        }
        if (kernel_mode) {
            if (const int rc = real().epoll_ctl(kfd_, op, fd, event); rc != 0) {
                return rc;
            }
        }
        r = new (std::nothrow) EpollReg;
        if (r == nullptr) {
            return fail(ENOMEM);
        }
        r->set = this;
        r->sock = &p;
        r->fd = fd;
        r->events = event->events;
        r->data = event->data;
        r->kernel_mode = kernel_mode;
        regs_[fd] = r;
        p.watchers_.push_back(r);
        break;
    }
    case EPOLL_CTL_MOD: {
        if (r == nullptr) {
            return fail(ENOENT);
        }
        if ((event->events & EPOLLEXCLUSIVE) != 0 || (r->events & EPOLLEXCLUSIVE) != 0) {
            return fail(EINVAL); // as Linux: EPOLLEXCLUSIVE registrations cannot be modified
        }
        if (r->kernel_mode) {
            if (const int rc = real().epoll_ctl(kfd_, op, fd, event); rc != 0) {
                return rc;
            }
        }
        r->events = event->events;
        r->data = event->data;
        r->disabled = false;
        break;
    }
    case EPOLL_CTL_DEL: {
        if (r == nullptr) {
            return fail(ENOENT);
        }
        if (r->kernel_mode) {
            (void)real().epoll_ctl(kfd_, op, fd, event);
        }
        regs_.erase(it);
        const auto w = std::find(p.watchers_.begin(), p.watchers_.end(), static_cast<Watcher*>(r));
        if (w != p.watchers_.end()) {
            *w = p.watchers_.back();
            p.watchers_.pop_back();
        }
        if (r->queued) {
            r->linked = false; // the ready list frees it
        } else {
            delete r;
        }
        return 0;
    }
    default: return fail(EINVAL);
    }
    if (r->kernel_mode) {
        return 0;
    }
    // Current readiness counts at once, as in Linux (also for EPOLLET).
    lock.unlock();
    std::uint32_t ev = 0;
    {
        FabricCall call;
        if (call) {
            ev = p.poll_events();
        }
    }
    if ((ev & ((r->events & k_event_bits) | k_always)) != 0) {
        (void)enqueue(r);
    }
    return 0;
}

void EpollSet::last_ref_dropped() {
    // Registrations go from their sockets first (lock order: socket, then set).
    if (fork_gen_ == process().fork_gen()) {
        for (;;) {
            PosixSocket* p = nullptr;
            {
                std::lock_guard lock(mutex_);
                if (regs_.empty()) {
                    break;
                }
                p = regs_.begin()->second->sock;
                if (!p->try_ref()) {
                    p = nullptr; // the socket is going away and takes its registration with it
                }
            }
            if (p == nullptr) {
                std::this_thread::yield();
                continue;
            }
            {
                std::lock_guard socket_lock(p->watchers_mutex_);
                std::lock_guard lock(mutex_);
                for (auto it = regs_.begin(); it != regs_.end();) {
                    EpollReg* r = it->second;
                    if (r->sock != p) {
                        ++it;
                        continue;
                    }
                    const auto w = std::find(p->watchers_.begin(), p->watchers_.end(), static_cast<Watcher*>(r));
                    if (w != p->watchers_.end()) {
                        *w = p->watchers_.back();
                        p->watchers_.pop_back();
                    }
                    it = regs_.erase(it);
                    if (r->queued) {
                        r->linked = false;
                    } else {
                        delete r;
                    }
                }
            }
            p->unref();
        }
        std::lock_guard lock(mutex_);
        while (EpollReg* r = pop_locked()) {
            if (!r->linked) {
                delete r;
            }
        }
    }
    (void)real().close(wake_fd_);
    wake_fd_ = -1;
    std::lock_guard lock(g_set_pool_mutex);
    g_free_sets.push_back(this);
}

Ref<EpollSet> set_of(int epfd) {
    Ref<FdObject> obj = fd_table().get(epfd);
    if (!obj || obj->kind() != FdKind::epoll) {
        return {};
    }
    return Ref<EpollSet>::adopt(static_cast<EpollSet*>(obj.release()));
}

// The set for epfd, made now if the epoll fd was created behind our back.
Ref<EpollSet> ensure_set(int epfd) {
    if (Ref<EpollSet> s = set_of(epfd)) {
        return s;
    }
    EpollSet* fresh = EpollSet::create(epfd, false);
    if (fresh == nullptr) {
        return {};
    }
    if (!fd_table().install(epfd, fresh)) {
        fresh->unref();
        return set_of(epfd);
    }
    return Ref<EpollSet>::adopt(fresh);
}

} // namespace

bool is_epoll_watcher(const Watcher* w) { return dynamic_cast<const EpollReg*>(w) != nullptr; }

void detach_epoll_watcher(Watcher* w, PosixSocket& /*socket*/) {
    auto* r = static_cast<EpollReg*>(w);
    EpollSet* s = r->set;
    std::lock_guard lock(s->mutex_);
    if (r->kernel_mode) {
        // The kernel removes its own registration when the file closes.
    }
    const auto it = s->regs_.find(r->fd);
    if (it != s->regs_.end() && it->second == r) {
        s->regs_.erase(it);
    }
    if (r->queued) {
        r->linked = false;
    } else {
        delete r;
    }
}

void epoll_socket_placed(PosixSocket& p, bool on_fabric) {
    std::vector<EpollReg*> moved;
    {
        std::lock_guard socket_lock(p.watchers_mutex_);
        for (std::size_t i = 0; i < p.watchers_.size();) {
            auto* r = dynamic_cast<EpollReg*>(p.watchers_[i]);
            if (r == nullptr || !r->kernel_mode) {
                ++i;
                continue;
            }
            EpollSet* s = r->set;
            std::lock_guard lock(s->mutex_);
            if (on_fabric) {
                epoll_event none{};
                (void)real().epoll_ctl(s->kfd_, EPOLL_CTL_DEL, r->fd, &none);
                r->kernel_mode = false;
                moved.push_back(r);
                ++i;
                continue;
            }
            // A kernel socket now for good: the kernel registration is the real one.
            const auto it = s->regs_.find(r->fd);
            if (it != s->regs_.end() && it->second == r) {
                s->regs_.erase(it);
            }
            s->kernel_members_.fetch_add(1, std::memory_order_relaxed);
            p.watchers_[i] = p.watchers_.back();
            p.watchers_.pop_back();
            if (r->queued) {
                r->linked = false;
            } else {
                delete r;
            }
        }
    }
    if (!moved.empty()) {
        p.dispatch(); // queues the moved registrations that are ready now
    }
}

bool mark_epoll_nested(int fd) {
    Ref<EpollSet> s = set_of(fd);
    if (!s) {
        return false;
    }
    if (!s->nested_.exchange(true, std::memory_order_acq_rel) && !s->ready_empty()) {
        s->maybe_wake();
    }
    return true;
}

int epoll_create_impl(int flags, bool legacy, int size) {
    const int epfd = legacy ? real().epoll_create(size) : real().epoll_create1(flags);
    if (epfd < 0 || !process().enabled() || internal_call()) {
        return epfd;
    }
    EpollSet* s = EpollSet::create(epfd, true);
    if (s == nullptr) {
        return epfd; // stays a plain kernel epoll; a set is made if a stack socket joins it
    }
    if (!fd_table().install(epfd, s)) {
        s->unref();
        return epfd;
    }
    s->unref();
    return epfd;
}

int epoll_ctl_impl(int epfd, int op, int fd, epoll_event* event) {
    Ref<FdObject> target = fd_table().get(fd);
    if (!target) {
        const int rc = real().epoll_ctl(epfd, op, fd, event);
        if (rc == 0 && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_DEL)) {
            if (Ref<EpollSet> s = set_of(epfd)) {
                s->kernel_members_.fetch_add(op == EPOLL_CTL_ADD ? 1 : -1, std::memory_order_relaxed);
            }
        }
        return rc;
    }
    if (epfd == fd) {
        return fail(EINVAL);
    }
    if (target->kind() == FdKind::epoll) {
        (void)mark_epoll_nested(fd);
        const int rc = real().epoll_ctl(epfd, op, fd, event);
        if (rc == 0 && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_DEL)) {
            if (Ref<EpollSet> s = set_of(epfd)) {
                s->kernel_members_.fetch_add(op == EPOLL_CTL_ADD ? 1 : -1, std::memory_order_relaxed);
            }
        }
        return rc;
    }
    auto* p = static_cast<PosixSocket*>(target.get());
    if (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) {
        const int prepared = ops::prepare_for_readiness(*p);
        if (prepared < 0) {
            return fail(-prepared);
        }
    }
    const SockState st = p->state();
    if (st == SockState::kernel || st == SockState::orphan ||
        ((st == SockState::fabric || st == SockState::deferred) && p->fork_gen_ != process().fork_gen())) {
        // Kernel sockets, and orphans (their kernel socket reports them as hung up).
        if (st == SockState::kernel) {
            if (Ref<EpollSet> s = set_of(epfd); s && op == EPOLL_CTL_ADD) {
                s->kernel_members_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        return real().epoll_ctl(epfd, op, fd, event);
    }
    Ref<EpollSet> s = ensure_set(epfd);
    if (!s) {
        return -1;
    }
    return s->ctl_socket(op, fd, *p, event);
}

int epoll_wait_impl(int epfd, epoll_event* events, int max, int timeout_ms, const sigset_t* sigmask, bool pwait) {
    Ref<EpollSet> s = set_of(epfd);
    if (!s) {
        return pwait ? real().epoll_pwait(epfd, events, max, timeout_ms, sigmask)
                     : real().epoll_wait(epfd, events, max, timeout_ms);
    }
    return s->wait(events, max, timeout_ms, sigmask, pwait);
}

} // namespace gazelle::posix
