// SPDX-License-Identifier: BSD-3-Clause
// gazelle-mgr's systemd notification protocol without systemd: the test plays the service
// manager's side, a unix datagram socket named by $NOTIFY_SOCKET, and checks READY=1 comes only
// once the registration socket accepts connections, that WATCHDOG=1 pings keep coming at half
// of WATCHDOG_USEC, that a WATCHDOG_PID naming another process turns them off, and STOPPING=1 on
// SIGTERM.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/mgr/mgr_test_support.h"

namespace gazelle::test {
namespace {

using Clock = std::chrono::steady_clock;

// The service manager's end of the protocol.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        bound_ = bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~NotifySocket() {
        close(fd_);
        unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    bool bound() const { return bound_; }

    std::optional<std::string> next(std::chrono::milliseconds timeout) {
        pollfd pfd{fd_, POLLIN, 0};
        if (poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) {
            return std::nullopt;
        }
        char buffer[4096];
        const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
        if (n < 0) {
            return std::nullopt;
        }
        return std::string(buffer, static_cast<std::size_t>(n));
    }

private:
    std::string path_;
    int fd_ = -1;
    bool bound_ = false;
};

// Sets environment variables for the children started while it lives.
class ScopedEnv {
public:
    ScopedEnv(std::vector<std::pair<std::string, std::optional<std::string>>> vars) {
        for (auto& [name, value] : vars) {
            const char* old = std::getenv(name.c_str());
            saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
            if (value) {
                setenv(name.c_str(), value->c_str(), 1);
            } else {
                unsetenv(name.c_str());
            }
        }
    }
    ~ScopedEnv() {
        for (auto& [name, value] : saved_) {
            if (value) {
                setenv(name.c_str(), value->c_str(), 1);
            } else {
                unsetenv(name.c_str());
            }
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

bool accepts_connections(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
}

class Notify : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(huge_.ok()) << huge_.error();
        config_.huge_dir = huge_.path();
        config_.file_prefix = eal_.prefix();
        config_.socket = dir_.path() + "/mgr.sock";
        config_path_ = dir_.write("gazelle-mgr.conf", config_.text());
    }

    HugeMount huge_;
    TempDir dir_;
    EalInstance eal_{huge_, "notify"};
    MgrConfig config_;
    std::string config_path_;
};

TEST_F(Notify, ReadyAfterTheSocketListensThenWatchdogPingsThenStopping) {
    NotifySocket notify(dir_.path() + "/notify");
    ASSERT_TRUE(notify.bound());
    std::optional<Child> mgr;
    {
        ScopedEnv env(
            {{"NOTIFY_SOCKET", dir_.path() + "/notify"}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", std::nullopt}});
        mgr.emplace(mgr_command(config_path_));
    }
    ASSERT_TRUE(mgr->running());
    // Everything before READY=1 (STATUS= progress lines) comes while the socket may not exist yet.
    std::vector<std::string> before;
    std::optional<std::string> ready;
    const auto deadline = Clock::now() + 30s;
    while (!ready && Clock::now() < deadline) {
        auto message = notify.next(1000ms);
        if (message && message->find("READY=1") != std::string::npos) {
            ready = message;
            // The manager sent READY=1: the registration socket must already accept apps.
            EXPECT_TRUE(is_socket(config_.socket));
            EXPECT_TRUE(accepts_connections(config_.socket));
        } else if (message) {
            before.push_back(*message);
        }
    }
    ASSERT_TRUE(ready) << "no READY=1; manager output:\n" << mgr->transcript();
    EXPECT_NE(ready->find("STATUS=Serving 0 apps, 0 of 3 queues owned"), std::string::npos) << *ready;
    EXPECT_FALSE(before.empty()) << "expected STATUS= lines while starting";
    for (const auto& m : before) {
        EXPECT_EQ(m.rfind("STATUS=", 0), 0u) << m;
    }
    // WATCHDOG_USEC=200 ms: a ping every 100 ms, never a gap near 200 ms.
    unsigned pings = 0;
    double worst_gap_ms = 0;
    auto last = Clock::now();
    const auto until = Clock::now() + 1500ms;
    while (Clock::now() < until) {
        auto message = notify.next(300ms);
        ASSERT_TRUE(message) << "the watchdog pings stopped";
        if (*message == "WATCHDOG=1") {
            const auto now = Clock::now();
            worst_gap_ms = std::max(worst_gap_ms, ms_between(last, now));
            last = now;
            ++pings;
        }
    }
    std::printf("watchdog: %u pings in 1.5 s, longest gap %.0f ms (WATCHDOG_USEC 200 ms)\n", pings, worst_gap_ms);
    EXPECT_GE(pings, 10u);
    EXPECT_LT(worst_gap_ms, 190.0);
    ASSERT_TRUE(mgr->kill(SIGTERM));
    std::optional<std::string> stopping;
    while (!stopping) {
        auto message = notify.next(10000ms);
        ASSERT_TRUE(message) << "no STOPPING=1";
        if (message->find("STOPPING=1") != std::string::npos) {
            stopping = message;
        }
    }
    EXPECT_TRUE(mgr->expect("gazelle-mgr stopped", 20s)) << mgr->transcript();
    EXPECT_TRUE(mgr->wait_success());
}

TEST_F(Notify, WatchdogOfAnotherPidIsNotOurs) {
    NotifySocket notify(dir_.path() + "/notify");
    ASSERT_TRUE(notify.bound());
    std::optional<Child> mgr;
    {
        // sd_watchdog_enabled(): WATCHDOG_PID names the process the watchdog is meant for.
        ScopedEnv env({{"NOTIFY_SOCKET", dir_.path() + "/notify"}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}});
        mgr.emplace(mgr_command(config_path_));
    }
    bool ready = false;
    unsigned pings = 0;
    const auto until = Clock::now() + 30s;
    while (Clock::now() < until) {
        auto message = notify.next(ready ? 600ms : 1000ms);
        if (!message) {
            if (ready) {
                break; // 600 ms of silence after READY=1: no pings
            }
            continue;
        }
        ready = ready || message->find("READY=1") != std::string::npos;
        pings += message->find("WATCHDOG=1") != std::string::npos ? 1u : 0u;
    }
    EXPECT_TRUE(ready) << mgr->transcript();
    EXPECT_EQ(pings, 0u);
    ASSERT_TRUE(mgr->kill(SIGTERM));
    EXPECT_TRUE(mgr->wait_success());
}

TEST_F(Notify, WithoutNotifySocketNothingIsSentAndTheDaemonRuns) {
    std::optional<Child> mgr;
    {
        ScopedEnv env({{"NOTIFY_SOCKET", std::nullopt}, {"WATCHDOG_USEC", "200000"}});
        mgr.emplace(mgr_command(config_path_));
    }
    EXPECT_TRUE(mgr->expect("Ready:", 30s)) << mgr->transcript();
    ASSERT_TRUE(mgr->kill(SIGTERM));
    EXPECT_TRUE(mgr->wait_success());
}

} // namespace
} // namespace gazelle::test
