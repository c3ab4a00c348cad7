// SPDX-License-Identifier: BSD-3-Clause
// Poller waits without sockets: timeouts are kept to the millisecond without spinning, and
// interrupt() ends a wait that has no timeout (the posix dispatcher's stop).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

#include <sys/resource.h>

#include "stack/api.h"

namespace {

namespace gs = gazelle::stack;
using Clock = std::chrono::steady_clock;

// Times this thread went to sleep (voluntary context switches).
long thread_sleeps() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_nvcsw;
}

TEST(Poller, TimeoutIsKeptWithoutSpinning) {
    gs::Poller poller;
    std::array<gs::Socket*, 4> out{};
    const long sleeps0 = thread_sleeps();
    const auto t0 = Clock::now();
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(poller.wait(out, 10), 0u);
    }
    const double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const long sleeps = thread_sleeps() - sleeps0;
    std::printf("20 waits of 10 ms: %.1f ms, %ld sleeps\n", elapsed_ms, sleeps);
    EXPECT_GE(elapsed_ms, 200.0);
    // One sleep per wait. A wait truncated to 0 ms in its last millisecond spun through futex
    // calls until the deadline, each a sleep of its own (each wake-up 70-300 us of CPU here).
    EXPECT_LE(sleeps, 25);
}

TEST(Poller, InterruptEndsAWaitWithoutTimeout) {
    gs::Poller poller;
    std::array<gs::Socket*, 4> out{};
    poller.interrupt(); // before the wait: the next one returns at once
    EXPECT_EQ(poller.wait(out, -1), 0u);

    unsigned got = 99;
    std::thread waiter([&] { got = poller.wait(out, -1); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto t0 = Clock::now();
    poller.interrupt();
    waiter.join();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    EXPECT_EQ(got, 0u);
    EXPECT_LT(ms, 500.0) << "the wait ended on its own 1 s re-check, not on the interrupt";
}

} // namespace
