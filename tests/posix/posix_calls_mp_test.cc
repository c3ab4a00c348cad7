// SPDX-License-Identifier: BSD-3-Clause
// Each family of POSIX calls, run twice by the same unmodified program (posix_calls_actor): once
// on kernel loopback, once preloaded with liblstack.so over the fabric (server on veth0, client
// on veth1, through a real gazelle-mgr). Both runs must print the same results, and every
// preloaded process must detach cleanly (the manager finds nothing to reclaim).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

struct CallsRun {
    std::vector<std::string> server;
    std::vector<std::string> client;
    pid_t server_pid = 0;
    pid_t client_pid = 0;
    bool server_ok = false;
    bool client_ok = false;
};

class PosixCalls : public PosixFabricTest {
protected:
    // One run of a family; fabric = preloaded on the fabric addresses, else kernel loopback.
    CallsRun run(const std::string& family, bool fabric, int port) {
        CallsRun r;
        const std::string actor = bin_path("posix_calls_actor");
        const std::string ip = fabric ? k_server_ip : "127.0.0.1";
        const std::vector<std::string> server_argv{actor, "server", family, ip, std::to_string(port)};
        const std::vector<std::string> client_argv{actor, "client", family, ip, std::to_string(port)};
        Child server(fabric ? preloaded(server_conf_, server_argv) : plain(server_argv));
        const auto ready = server.expect("READY", 30s);
        if (!ready) {
            ADD_FAILURE() << family << (fabric ? " (fabric)" : " (kernel)") << ": server not ready:\n"
                          << server.transcript();
            return r;
        }
        Child client(fabric ? preloaded(client_conf_, client_argv) : plain(client_argv));
        r.client = lines_until(client, "client done", 60s);
        r.server = lines_until(server, "server done", 30s);
        r.client_ok = client.wait_success(20s);
        r.server_ok = server.wait_success(20s);
        r.server_pid = server.pid();
        r.client_pid = client.pid();
        drain_mgr();
        return r;
    }

    CallsRun compare(const std::string& family) {
        const int port = 20000 + static_cast<int>(getpid() % 20000);
        const CallsRun kernel = run(family, false, port);
        EXPECT_TRUE(kernel.client_ok && kernel.server_ok) << "kernel run failed:\n"
                                                          << joined(kernel.server) << "---\n"
                                                          << joined(kernel.client);
        if (!kernel.client_ok || !kernel.server_ok) {
            return kernel;
        }
        const CallsRun fabric = run(family, true, port);
        std::printf("%s over the fabric:\n%s", family.c_str(), joined(fabric.client).c_str());
        EXPECT_EQ(joined(comparable(fabric.client)), joined(comparable(kernel.client))) << "client transcripts differ";
        EXPECT_EQ(joined(comparable(fabric.server)), joined(comparable(kernel.server))) << "server transcripts differ";
        EXPECT_TRUE(fabric.client_ok) << joined(fabric.client);
        EXPECT_TRUE(fabric.server_ok) << joined(fabric.server);
        if (family != "fork") {
            expect_clean_detach(fabric.server_pid);
        }
        expect_clean_detach(fabric.client_pid);
        return fabric;
    }
};

TEST_F(PosixCalls, StreamBlockingCalls) { compare("stream"); }
TEST_F(PosixCalls, NonBlockingConnectAcceptRecv) { compare("nonblock"); }
TEST_F(PosixCalls, EpollLevelEdgeOneshotMixedNested) { compare("epoll"); }
TEST_F(PosixCalls, PollPpollSelectPselect) { compare("poll"); }
TEST_F(PosixCalls, UdpDatagrams) { compare("udp"); }
TEST_F(PosixCalls, SignalsInterruptBlockingCalls) { compare("signals"); }
TEST_F(PosixCalls, ThreadsShareSocketsAndStacks) { compare("threads"); }
TEST_F(PosixCalls, ConcurrentWakeupsAreNeverLost) { compare("wakeups"); }

// The server forks two workers after creating its listener (it never attaches itself); each
// worker attaches on first use and gets its own queue, the fabric shares the listener.
TEST_F(PosixCalls, DupAndForkedWorkersShareAListener) {
    const CallsRun fabric = compare("fork");
    drain_mgr(500ms);
    std::size_t attached = 0;
    std::size_t reclaimed = 0;
    for (const auto& line : mgr_log_) {
        if (line.rfind("Attached app posix_calls_actor", 0) == 0 && line.find("port veth0") != std::string::npos) {
            ++attached;
        }
        if (line.rfind("Reclaimed app posix_calls_actor", 0) == 0 && line.find("port veth0") == std::string::npos) {
            ++reclaimed;
            EXPECT_EQ(count_before(line, "mbufs returned"), 0) << line;
            EXPECT_EQ(count_before(line, "rules,"), 0) << line;
        }
    }
    EXPECT_EQ(attached, 2u) << "each worker attaches on its own, the parent never";
    EXPECT_EQ(reclaimed, 3u) << "two workers and the client";
    bool both = false;
    for (const auto& line : fabric.client) {
        both = both || line == "# answered by 2 worker(s)";
    }
    EXPECT_TRUE(both) << "the fabric shares the listener between both workers:\n" << joined(fabric.client);
}

} // namespace
} // namespace gazelle::test
