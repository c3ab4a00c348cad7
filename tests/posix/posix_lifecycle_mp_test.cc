// SPDX-License-Identifier: BSD-3-Clause
// liblstack.so's life cycle in a process: GAZELLE_BIND_PROCNAME, attach failures (both
// lstack.conf attach_failure policies, a manager that is absent or never answers: one message,
// bounded time, no hang), and exec (the process detaches cleanly before the new image runs).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

class PosixLifecycle : public PosixFabricTest {
protected:
    std::string actor() const { return bin_path("posix_calls_actor"); }
    int port() const { return 21000 + static_cast<int>(getpid() % 20000); }

    static std::size_t count_lines(const std::vector<std::string>& lines, const std::string& needle) {
        std::size_t n = 0;
        for (const auto& l : lines) {
            n += l.find(needle) != std::string::npos ? 1u : 0u;
        }
        return n;
    }
};

// Only the named program is accelerated: here the name does not match, so the program is left
// alone completely (no config read, no attach, no log line): binding a fabric address fails as it
// does on the kernel.
TEST_F(PosixLifecycle, BindProcnameLeavesOtherProgramsAlone) {
    Child app(preloaded(server_conf_, {actor(), "server", "attach", k_server_ip, std::to_string(port())},
                        "GAZELLE_BIND_PROCNAME=someone-else"));
    const auto lines = lines_until(app, "server done", 20s);
    EXPECT_TRUE(app.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "gazelle["), 0u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "bind: errno=EADDRNOTAVAIL"), 1u) << joined(lines);
    drain_mgr(200ms);
    EXPECT_EQ(count_lines(mgr_log_, "Attached app"), 0u);
}

// attach_failure = "kernel": one message, then the process runs on kernel sockets (the deferred
// listener is replayed on its kernel socket).
TEST_F(PosixLifecycle, AttachFailureFallsBackToTheKernelWithOneMessage) {
    const std::string bad = dir_.write("bad.conf", "mgr_socket = \"" + dir_.path() + "/nobody.sock\";\nstack_interrupt = 1;\n");
    Child app(preloaded(bad, {actor(), "server", "attach", "0.0.0.0", std::to_string(port())}));
    const auto lines = lines_until(app, "server done", 20s);
    EXPECT_TRUE(app.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "cannot attach to the fabric"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "attach_failure = \"kernel\""), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "accept: errno=EAGAIN"), 1u) << "a kernel listener now:\n" << joined(lines);
    EXPECT_EQ(count_lines(lines, "bounded=1"), 1u) << joined(lines);
}

// attach_failure = "error": one message, fabric calls fail with ENETDOWN.
TEST_F(PosixLifecycle, AttachFailureErrorPolicyFailsCallsWithEnetdown) {
    const std::string bad = dir_.write("bad.conf", "mgr_socket = \"" + dir_.path() +
                                                       "/nobody.sock\";\nstack_interrupt = 1;\nattach_failure = \"error\";\n");
    Child app(preloaded(bad, {actor(), "server", "attach", "0.0.0.0", std::to_string(port())}));
    const auto lines = lines_until(app, "server done", 20s);
    EXPECT_TRUE(app.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "cannot attach to the fabric"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "accept: errno=ENETDOWN"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "accept again: errno=ENETDOWN"), 1u) << joined(lines);
}

// A manager that accepts the connection but never answers: the attach gives up after its
// deadline (mgr_client's 5 s), with one message; no hang.
TEST_F(PosixLifecycle, SilentManagerTimesOut) {
    const std::string path = dir_.path() + "/silent.sock";
    const int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(listener, 4), 0);
    const std::string conf = dir_.write("silent.conf", "mgr_socket = \"" + path + "\";\nstack_interrupt = 1;\n");
    Child app(preloaded(conf, {actor(), "server", "attach", "0.0.0.0", std::to_string(port())}));
    const auto lines = lines_until(app, "server done", 30s);
    EXPECT_TRUE(app.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "cannot attach to the fabric"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "bounded=1"), 1u) << joined(lines);
    close(listener);
}

// exec: the stacks stop and the process detaches before the new program image starts; the manager
// finds nothing to reclaim, and the exec'd program runs (it inherits no fabric state).
TEST_F(PosixLifecycle, ExecDetachesCleanly) {
    Child server(preloaded(server_conf_, {actor(), "server", "exec", k_server_ip, std::to_string(port())}));
    ASSERT_TRUE(server.expect("READY", 30s)) << server.transcript();
    Child client(preloaded(client_conf_, {actor(), "client", "exec", k_server_ip, std::to_string(port())}));
    const auto lines = lines_until(client, "exec ok", 30s);
    EXPECT_TRUE(client.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "exec ok"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "read: rc=0"), 1u) << joined(lines);
    expect_clean_detach(client.pid());
    // The server sees the end of the stream (the connection was closed, not reset).
    const auto server_lines = lines_until(server, "server done", 20s);
    EXPECT_TRUE(server.wait_success()) << joined(server_lines);
    expect_clean_detach(server.pid());
}

// fork after attach: the child cannot use the parent's connection (EBADFD), its own sockets are
// kernel sockets, and the parent's connection is unaffected.
TEST_F(PosixLifecycle, ChildOfAnAttachedProcessUsesTheKernel) {
    Child server(preloaded(server_conf_, {actor(), "server", "forkchild", k_server_ip, std::to_string(port())}));
    ASSERT_TRUE(server.expect("READY", 30s)) << server.transcript();
    Child client(preloaded(client_conf_, {actor(), "client", "forkchild", k_server_ip, std::to_string(port())}));
    const auto lines = lines_until(client, "client done", 30s);
    EXPECT_TRUE(client.wait_success()) << joined(lines);
    EXPECT_EQ(count_lines(lines, "child write inherited: errno=EBADFD"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "child close inherited: rc=0"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "child connect loopback: errno=ECONNREFUSED"), 1u) << "a kernel socket:\n" << joined(lines);
    EXPECT_EQ(count_lines(lines, "child exited=0"), 1u) << joined(lines);
    EXPECT_EQ(count_lines(lines, "parent read after fork: rc=0"), 1u) << joined(lines);
    expect_clean_detach(client.pid());
    (void)lines_until(server, "server done", 20s);
    EXPECT_TRUE(server.wait_success());
    expect_clean_detach(server.pid());
}

} // namespace
} // namespace gazelle::test
