// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Process-private futex waits and wakes on 32-bit atomics (app thread <-> stack thread of one
// process). Cross-process doorbells live in fabric/inbox.h and stack/internal/doorbell.h.

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gazelle::stack::detail {

// Sleeps while *word == expected, at most timeout_ms (< 0: no limit). Spurious returns are
// allowed: callers re-check their condition in a loop.
inline void futex_wait_private(std::atomic<std::uint32_t>& word, std::uint32_t expected, int timeout_ms) {
    timespec timeout{};
    timespec* limit = nullptr;
    if (timeout_ms >= 0) {
        timeout.tv_sec = timeout_ms / 1000;
        timeout.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
        limit = &timeout;
    }
    (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, limit, nullptr, 0);
}

inline void futex_wake_private(std::atomic<std::uint32_t>& word) {
    (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// An event counter app threads wait on and the stack thread bumps. notify() makes a syscall only
// when someone waits.
class WaitWord {
public:
    std::uint32_t snapshot() const { return seq_.load(std::memory_order_acquire); }
    // Waits until the counter moved away from `seen` (or timeout / spurious wake-up).
    void wait(std::uint32_t seen, int timeout_ms) {
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        if (seq_.load(std::memory_order_seq_cst) == seen) {
            futex_wait_private(seq_, seen, timeout_ms);
        }
        waiters_.fetch_sub(1, std::memory_order_relaxed);
    }
    void notify() {
        seq_.fetch_add(1, std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_seq_cst) != 0) {
            futex_wake_private(seq_);
        }
    }

private:
    std::atomic<std::uint32_t> seq_{0};
    std::atomic<std::uint32_t> waiters_{0};
};

} // namespace gazelle::stack::detail
