// SPDX-License-Identifier: BSD-3-Clause
#include "stack/internal/doorbell.h"

#include <cerrno>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gazelle::stack::detail {

std::atomic<std::uint32_t>* doorbell_word(const fabric::Inbox& inbox) { return inbox.doorbell_word(); }

bool DoorbellSet::add(fabric::Inbox& inbox) {
    if (count_ == k_max || !inbox.valid()) {
        return false;
    }
    inboxes_[count_] = &inbox;
    words_[count_] = inbox.doorbell_word();
    ++count_;
    return true;
}

void DoorbellSet::prepare() {
    for (unsigned i = 0; i < count_; ++i) {
        seen_[i] = inboxes_[i]->prepare_sleep();
    }
}

void DoorbellSet::finish() {
    for (unsigned i = 0; i < count_; ++i) {
        inboxes_[i]->finish_sleep();
    }
}

void DoorbellSet::wait(unsigned timeout_usec) {
    if (count_ == 0) {
        timespec t{static_cast<time_t>(timeout_usec / 1000000u), static_cast<long>(timeout_usec % 1000000u) * 1000L};
        (void)nanosleep(&t, nullptr);
        return;
    }
    if (count_ > 1 && vectored_) {
        futex_waitv waiters[k_max] = {};
        for (unsigned i = 0; i < count_; ++i) {
            waiters[i].val = seen_[i];
            waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(words_[i]);
            waiters[i].flags = FUTEX_32; // shared: producers are other processes
        }
        timespec deadline{};
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += static_cast<time_t>(timeout_usec / 1000000u);
        deadline.tv_nsec += static_cast<long>(timeout_usec % 1000000u) * 1000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        const long rc = syscall(SYS_futex_waitv, waiters, count_, 0, &deadline, CLOCK_MONOTONIC);
        if (rc >= 0 || errno != ENOSYS) {
            return; // woken, EAGAIN (rang before we slept), ETIMEDOUT or EINTR: poll again
        }
        vectored_ = false; // old kernel: fall back for good
    }
    // One word only: the others are covered by a short timeout.
    constexpr unsigned fallback_usec = 1000;
    inboxes_[0]->wait(seen_[0], count_ > 1 ? std::min(timeout_usec, fallback_usec) : timeout_usec);
}

} // namespace gazelle::stack::detail
