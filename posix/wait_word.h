// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// A futex-backed event counter for app threads blocked in a socket call (recv, accept, connect,
// send on a blocking socket). The readiness dispatcher bumps it on every readiness change of the
// socket; a syscall is made only when a thread sleeps.
//
// Signals: an untimed wait is the kernel's FUTEX_WAIT without a timeout, which the kernel restarts
// after a handler installed with SA_RESTART and interrupts (EINTR) otherwise; a timed wait
// (SO_RCVTIMEO/SO_SNDTIMEO) is always interrupted. These are exactly Linux's rules for blocking
// socket calls (signal(7) "Interruption of system calls"), so the caller just returns EINTR.

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gazelle::posix {

class WaitWord {
public:
    std::uint32_t snapshot() const { return seq_.load(std::memory_order_acquire); }

    // Sleeps while the counter equals `seen`; until `timeout` (relative) when not null.
    // 0 (woken, changed or spurious), -ETIMEDOUT, -EINTR.
    int wait(std::uint32_t seen, const timespec* timeout) {
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        int rc = 0;
        if (seq_.load(std::memory_order_seq_cst) == seen) {
            if (syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&seq_), FUTEX_WAIT_PRIVATE, seen, timeout, nullptr,
                        0) != 0) {
                rc = errno == EINTR ? -EINTR : errno == ETIMEDOUT ? -ETIMEDOUT : 0;
            }
        }
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return rc;
    }

    void notify() {
        seq_.fetch_add(1, std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_seq_cst) != 0) {
            (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&seq_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
                          nullptr, 0);
        }
    }

    bool has_waiters() const { return waiters_.load(std::memory_order_seq_cst) != 0; }

private:
    std::atomic<std::uint32_t> seq_{0};
    std::atomic<std::uint32_t> waiters_{0};
};

} // namespace gazelle::posix
