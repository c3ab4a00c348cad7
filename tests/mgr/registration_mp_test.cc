// SPDX-License-Identifier: BSD-3-Clause
// gazelle-mgr's registration, with real processes: the daemon (--no-bus) on a private hugetlbfs
// mount and file prefix, and app actors (tests/mgr/app_actor.cc) that register with
// fabric/mgr_client, start EAL as secondaries with the arguments they got, and hold mbufs, rules
// and heartbeats. Covers: distinct queues and lcores, every refusal with its errno and message,
// identity by SO_PEERCRED only, crash reclaim (timed), clean detach, hung apps, apps that close
// their connection but live on, SIGTERM, and a second manager on the same socket or prefix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fabric/mgr_protocol.h"
#include "tests/mgr/mgr_test_support.h"

namespace gazelle::test {
namespace {

namespace proto = fabric::mgr_protocol;
using Clock = std::chrono::steady_clock;

class Registration : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(huge_.ok()) << huge_.error();
        ASSERT_FALSE(dir_.path().empty());
        config_.huge_dir = huge_.path();
        config_.file_prefix = eal_.prefix();
        config_.socket = dir_.path() + "/run/mgr.sock";
    }

    // Starts the manager and waits for "Ready:". Returns false (with a failure) if it did not get there.
    bool start_manager() {
        config_path_ = dir_.write("gazelle-mgr.conf", config_.text());
        mgr_.emplace(mgr_command(config_path_));
        if (!mgr_->running() || !mgr_->expect("Ready:", 30s)) {
            ADD_FAILURE() << "gazelle-mgr did not get ready; its output:\n" << mgr_->transcript();
            return false;
        }
        return true;
    }

    Child app(std::vector<std::string> args) {
        std::vector<std::string> argv = {bin_path("app_actor"), "--socket", config_.socket};
        argv.insert(argv.end(), args.begin(), args.end());
        return Child(std::move(argv));
    }

    // Next manager line starting with `prefix` that also contains `needle`.
    std::optional<std::string> mgr_line(const std::string& prefix, const std::string& needle,
                                        std::chrono::milliseconds timeout = 10s) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            auto line =
                mgr_->expect(prefix, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
            if (!line) {
                return std::nullopt;
            }
            if (line->find(needle) != std::string::npos) {
                return line;
            }
        }
        return std::nullopt;
    }

    void expect_group_reported(const std::vector<std::string>& launcher,
                               const std::function<std::string(pid_t)>& gamma_group);

    HugeMount huge_;
    TempDir dir_;
    EalInstance eal_{huge_, "mgr"};
    MgrConfig config_;
    std::string config_path_;
    std::optional<Child> mgr_;
};

struct Refusal {
    int code = 0;
    std::string message;
};

// The result of an actor that was refused ("REFUSED code= message=").
std::optional<Refusal> refusal(Child& actor) {
    auto line = actor.expect("", 10s);
    if (!line || line->rfind("REFUSED", 0) != 0) {
        ADD_FAILURE() << "expected a refusal, got: " << line.value_or("(nothing)");
        return std::nullopt;
    }
    return Refusal{static_cast<int>(field(*line, "code").value_or(0)), message_of(*line)};
}

TEST_F(Registration, AppsGetDistinctQueuesAndLcoresAndTheirEalArgumentsWork) {
    ASSERT_TRUE(start_manager());
    Child a = app({"--queues", "2", "--port", "veth0", "--program", "alpha"});
    auto a_attached = a.expect("ATTACHED");
    ASSERT_TRUE(a_attached) << a.transcript();
    Child b = app({"--program", "beta"}); // any port: veth0 is full, so veth1
    auto b_attached = b.expect("ATTACHED");
    ASSERT_TRUE(b_attached) << b.transcript();
    EXPECT_EQ(word(*a_attached, "slots"), "0,1");
    EXPECT_EQ(word(*b_attached, "slots"), "2");
    EXPECT_EQ(word(*a_attached, "port"), "0");
    EXPECT_EQ(word(*b_attached, "port"), "1");
    auto lcores = numbers(word(*a_attached, "lcores"));
    const auto b_lcores = numbers(word(*b_attached, "lcores"));
    lcores.insert(lcores.end(), b_lcores.begin(), b_lcores.end());
    std::sort(lcores.begin(), lcores.end());
    EXPECT_EQ(lcores.size(), 3u);
    EXPECT_EQ(std::adjacent_find(lcores.begin(), lcores.end()), lcores.end()) << "an lcore id was given twice";
    EXPECT_EQ(std::count(lcores.begin(), lcores.end(), 0), 0) << "the manager's main lcore was handed out";
    EXPECT_EQ(word(*a_attached, "prefix"), config_.file_prefix);
    EXPECT_EQ(word(*a_attached, "huge"), config_.huge_dir);
    // Both start EAL as secondaries with those arguments and find themselves in the registry.
    auto a_ready = a.expect("READY", 30s);
    auto b_ready = b.expect("READY", 30s);
    ASSERT_TRUE(a_ready && b_ready) << a.transcript() << b.transcript();
    EXPECT_EQ(field(*a_ready, "owner_ok"), 1);
    EXPECT_EQ(field(*b_ready, "owner_ok"), 1);
    EXPECT_EQ(field(*a_ready, "lcore"), numbers(word(*a_attached, "lcores")).front());
    EXPECT_TRUE(mgr_line("Attached app", "alpha[" + std::to_string(a.pid()) + "]"));
    EXPECT_TRUE(mgr_line("Attached app", "beta[" + std::to_string(b.pid()) + "]"));
    a.send("quit");
    b.send("quit");
    EXPECT_TRUE(a.wait_success());
    EXPECT_TRUE(b.wait_success());
    EXPECT_TRUE(mgr_line("Reclaimed app", "alpha[" + std::to_string(a.pid()) + "] queue 0:"));
}

std::string autogroup_of(const std::string& pid) {
    std::ifstream file("/proc/" + pid + "/autogroup");
    std::string group; // "/autogroup-52 nice 0"
    file >> group;
    return group.empty() ? group : group.substr(1);
}

bool autogroups_enabled() {
    std::ifstream enabled("/proc/sys/kernel/sched_autogroup_enabled");
    int on = 0;
    enabled >> on;
    return on == 1 && !autogroup_of("self").empty();
}

// An app in another CPU scheduling group than an app it shares a CPU with is reported once, at its
// attach, with both groups; an app of the same group is not. gamma is started by `launcher` (which
// puts it in another group, gamma_group(pid) names it); alpha and beta are in the test's group.
void Registration::expect_group_reported(const std::vector<std::string>& launcher,
                                         const std::function<std::string(pid_t)>& gamma_group) {
    ASSERT_TRUE(start_manager());
    Child alpha = app({"--queues", "2", "--port", "veth0", "--program", "alpha"}); // CPUs 0 and 1
    ASSERT_TRUE(alpha.expect("ATTACHED")) << alpha.transcript();
    {
        Child beta = app({"--port", "veth1", "--program", "beta"}); // alpha's group
        ASSERT_TRUE(beta.expect("ATTACHED")) << beta.transcript();
        ASSERT_TRUE(mgr_line("Attached app", "beta[")) << mgr_->transcript();
        beta.send("quit");
        EXPECT_TRUE(beta.wait_success());
        ASSERT_TRUE(mgr_line("Reclaimed app", "beta[")) << mgr_->transcript();
    }
    std::vector<std::string> argv = launcher;
    for (const std::string& arg : {bin_path("app_actor"), std::string("--socket"), config_.socket,
                                   std::string("--port"), std::string("veth1"), std::string("--program"),
                                   std::string("gamma")}) {
        argv.push_back(arg);
    }
    Child gamma(std::move(argv));
    ASSERT_TRUE(gamma.expect("ATTACHED")) << gamma.transcript();
    auto notice = mgr_line("App gamma[" + std::to_string(gamma.pid()) + "]", "CPU scheduling group");
    ASSERT_TRUE(notice) << mgr_->transcript();
    EXPECT_NE(notice->find("group " + gamma_group(gamma.pid()) + " and shares CPU"), std::string::npos) << *notice;
    EXPECT_NE(notice->find("with alpha[" + std::to_string(alpha.pid()) + "] in "), std::string::npos) << *notice;
    // gamma's is the first such line of the whole log: beta was not reported.
    const std::string log = mgr_->transcript();
    EXPECT_EQ(log.find("] runs in CPU scheduling group"), log.find(*notice) + notice->find("] runs"))
        << "beta shares alpha's group and was reported:\n" << log;
    alpha.send("quit");
    gamma.send("quit");
    EXPECT_TRUE(alpha.wait_success());
    EXPECT_TRUE(gamma.wait_success());
}

// Sessions are CPU scheduling groups (autogroups) when the kernel has them on: setsid starts one.
TEST_F(Registration, AppsOfDifferentSessionsOnOneCpuAreReported) {
    if (!autogroups_enabled()) {
        GTEST_SKIP() << "kernel.sched_autogroup_enabled is not 1: sessions are not CPU scheduling groups here";
    }
    expect_group_reported({"/usr/bin/setsid"}, [](pid_t pid) {
        const std::string group = autogroup_of(std::to_string(pid));
        EXPECT_NE(group, autogroup_of("self")) << "setsid did not make a session of its own";
        return group;
    });
}

// A cpu cgroup of its own (cgroup v1's cpu hierarchy, as mounted on this machine) is a group too.
TEST_F(Registration, AppsOfDifferentCpuCgroupsOnOneCpuAreReported) {
    const std::string hierarchy = "/sys/fs/cgroup/cpu";
    if (access((hierarchy + "/cpu.shares").c_str(), W_OK) != 0) {
        GTEST_SKIP() << "no writable cgroup v1 cpu hierarchy at " << hierarchy;
    }
    const std::string name = "gz-test-" + std::to_string(getpid());
    ASSERT_EQ(mkdir((hierarchy + "/" + name).c_str(), 0755), 0) << std::strerror(errno);
    expect_group_reported({"/bin/sh", "-c", "echo $$ > " + hierarchy + "/" + name + "/cgroup.procs && exec \"$@\"", "sh"},
                          [&](pid_t) { return "cgroup /" + name; });
    EXPECT_EQ(rmdir((hierarchy + "/" + name).c_str()), 0) << std::strerror(errno);
}

TEST_F(Registration, RefusalsCarryTheRightErrnoAndSayWhatToChange) {
    ASSERT_TRUE(start_manager()); // max_apps 3; veth0 slots 0-1, veth1 slot 2
    Child first = app({"--no-eal", "--port", "veth0"});
    ASSERT_TRUE(first.expect("ATTACHED")) << first.transcript();

    Child too_many = app({"--no-eal", "--port", "veth0", "--queues", "2"});
    auto r = refusal(too_many);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EBUSY);
    EXPECT_NE(r->message.find("port veth0 has 1 free queue, app asked 2"), std::string::npos) << r->message;

    Child bad_ip = app({"--no-eal", "--ip", "198.18.9.9"});
    r = refusal(bad_ip);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EINVAL);
    EXPECT_NE(r->message.find("the port with IPv4 198.18.9.9"), std::string::npos) << r->message;
    EXPECT_NE(r->message.find("veth0 (198.18.0.1, 02:00:00:00:00:01), veth1 (198.18.0.2, 02:00:00:00:00:02)"),
              std::string::npos)
        << r->message;

    Child bad_mac = app({"--no-eal", "--mac", "02:00:00:00:00:99"});
    r = refusal(bad_mac);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EINVAL);
    EXPECT_NE(r->message.find("the port with MAC 02:00:00:00:00:99"), std::string::npos) << r->message;

    Child bad_name = app({"--no-eal", "--port", "veth7"});
    r = refusal(bad_name);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EINVAL);
    EXPECT_NE(r->message.find("port 'veth7'"), std::string::npos) << r->message;

    Child by_mac = app({"--no-eal", "--mac", "02:00:00:00:00:02"});
    auto line = by_mac.expect("ATTACHED");
    ASSERT_TRUE(line) << by_mac.transcript();
    EXPECT_EQ(word(*line, "slots"), "2");
    Child third = app({"--no-eal", "--ip", "198.18.0.1"});
    ASSERT_TRUE(third.expect("ATTACHED")) << third.transcript();

    Child full = app({"--no-eal"});
    r = refusal(full);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, ENOSPC);
    EXPECT_NE(r->message.find("manager is full: 3 apps (max_apps)"), std::string::npos) << r->message;

    // One registration per process, whatever the connection.
    first.send("again");
    line = first.expect("AGAIN");
    ASSERT_TRUE(line);
    EXPECT_EQ(field(*line, "ok"), 0);
    EXPECT_EQ(field(*line, "code"), EBUSY);
    EXPECT_NE(message_of(*line).find("already attached"), std::string::npos) << *line;

    // Room for an app again, but no free queue on veth0 / nowhere for two queues.
    by_mac.send("quit");
    EXPECT_TRUE(by_mac.wait_success());
    EXPECT_TRUE(mgr_line("Reclaimed app", "[" + std::to_string(by_mac.pid()) + "] queue 2:"));
    Child no_queue = app({"--no-eal", "--port", "veth0"});
    r = refusal(no_queue);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EBUSY);
    EXPECT_NE(r->message.find("port veth0 has 0 free queues, app asked 1"), std::string::npos) << r->message;
    Child two_anywhere = app({"--no-eal", "--queues", "2"});
    r = refusal(two_anywhere);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, EBUSY);
    EXPECT_NE(r->message.find("no port has 2 free queues (free queues: veth0 0, veth1 1)"), std::string::npos)
        << r->message;
    EXPECT_TRUE(mgr_line("Refused", "no port has 2 free queues"));
}

// Raw packets from this process: every malformed request gets an ErrorReply, then EOF.
class RawConnection {
public:
    explicit RawConnection(const std::string& path) : fd_(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        connected_ = connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~RawConnection() { close(fd_); }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool connected() const { return connected_; }
    bool send_bytes(const void* data, std::size_t size) {
        return send(fd_, data, size, MSG_NOSIGNAL) == static_cast<ssize_t>(size);
    }

    // The ErrorReply the manager answered, if the next packet is one.
    std::optional<proto::ErrorReply> error_reply() {
        pollfd pfd{fd_, POLLIN, 0};
        if (poll(&pfd, 1, 5000) != 1) {
            return std::nullopt;
        }
        proto::ErrorReply reply{};
        if (recv(fd_, &reply, sizeof reply, 0) != static_cast<ssize_t>(sizeof reply) ||
            reply.header.type != proto::MessageType::error_reply) {
            return std::nullopt;
        }
        return reply;
    }
    // True when the manager closed the connection (EOF within 5 s).
    bool closed_by_peer() {
        pollfd pfd{fd_, POLLIN, 0};
        char byte = 0;
        return poll(&pfd, 1, 5000) == 1 && recv(fd_, &byte, 1, 0) == 0;
    }

private:
    int fd_;
    bool connected_ = false;
};

TEST_F(Registration, MalformedMessagesGetEprotoOrEinvalAndTheConnectionIsClosed) {
    ASSERT_TRUE(start_manager());
    struct Case {
        const char* what;
        std::vector<std::byte> bytes;
        int code;
        const char* message;
    };
    const auto bytes_of = [](const auto& value, std::size_t size) {
        std::vector<std::byte> out(size);
        std::memcpy(out.data(), &value, std::min(size, sizeof value));
        return out;
    };
    proto::AttachRequest request;
    proto::AttachRequest bad_version = request;
    bad_version.header.version = 2;
    proto::AttachRequest zero_queues = request;
    zero_queues.queues = 0;
    proto::AttachRequest nine_queues = request;
    nine_queues.queues = 9;
    proto::AttachRequest bad_selector = request;
    bad_selector.selector = static_cast<proto::PortSelector>(7);
    proto::Header reply_type{proto::k_version, proto::MessageType::attach_reply};
    proto::Header unknown_type{proto::k_version, static_cast<proto::MessageType>(99)};
    const proto::DetachRequest detach;
    const std::vector<Case> cases = {
        {"garbage", {std::byte{1}, std::byte{2}, std::byte{3}}, EPROTO, "shorter than a header"},
        {"version", bytes_of(bad_version, sizeof bad_version), EPROTO,
         "protocol version 2, this gazelle-mgr speaks version 1"},
        {"size", bytes_of(request, sizeof request + 4), EPROTO, "attach request of 80 bytes, expected 76"},
        {"short", bytes_of(request, sizeof request - 6), EPROTO, "attach request of 70 bytes, expected 76"},
        {"reply type", bytes_of(reply_type, sizeof reply_type), EPROTO, "message type 2 is not a request"},
        {"unknown type", bytes_of(unknown_type, sizeof unknown_type), EPROTO, "message type 99 is not a request"},
        {"detach first", bytes_of(detach, sizeof detach), EPROTO, "detach request before any attach request"},
        {"0 queues", bytes_of(zero_queues, sizeof zero_queues), EINVAL, "app asked for 0 queues; an app may have 1..8"},
        {"9 queues", bytes_of(nine_queues, sizeof nine_queues), EINVAL, "app asked for 9 queues; an app may have 1..8"},
        {"selector", bytes_of(bad_selector, sizeof bad_selector), EINVAL, "unknown port selector 7"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        RawConnection connection(config_.socket);
        ASSERT_TRUE(connection.connected());
        ASSERT_TRUE(connection.send_bytes(c.bytes.data(), c.bytes.size()));
        auto reply = connection.error_reply();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->code, c.code);
        EXPECT_NE(std::string(reply->message).find(c.message), std::string::npos) << reply->message;
        EXPECT_TRUE(connection.closed_by_peer());
    }
    // None of them got anything: a real app still gets the first queue.
    Child a = app({"--no-eal"});
    auto line = a.expect("ATTACHED");
    ASSERT_TRUE(line) << a.transcript();
    EXPECT_EQ(word(*line, "slots"), "0");
}

TEST_F(Registration, IdentityIsThePeerCredentialNeverWhatTheMessageClaims) {
    ASSERT_TRUE(start_manager());
    // B names itself like A and asks for A's port: it gets a queue of its own, in its own name.
    Child a = app({"--port", "veth0", "--program", "alpha"});
    auto a_line = a.expect("ATTACHED");
    ASSERT_TRUE(a_line && a.expect("READY", 30s)) << a.transcript();
    Child b = app({"--port", "veth0", "--program", "alpha"});
    auto b_line = b.expect("ATTACHED");
    ASSERT_TRUE(b_line && b.expect("READY", 30s)) << b.transcript();
    const long a_slot = numbers(word(*a_line, "slots")).at(0);
    const long b_slot = numbers(word(*b_line, "slots")).at(0);
    EXPECT_NE(a_slot, b_slot);
    EXPECT_TRUE(mgr_line("Attached app", "alpha[" + std::to_string(a.pid()) + "]"));
    EXPECT_TRUE(mgr_line("Attached app", "alpha[" + std::to_string(b.pid()) + "]"));
    b.send("peek " + std::to_string(a_slot));
    auto peek = b.expect("PEEK");
    ASSERT_TRUE(peek);
    EXPECT_EQ(field(*peek, "owner"), a.pid());
    // B's detach ends B's registration only.
    b.send("detach");
    auto detached = b.expect("DETACHED");
    ASSERT_TRUE(detached);
    EXPECT_EQ(field(*detached, "ok"), 1) << *detached;
    auto reclaimed = mgr_line("Reclaimed app", "[" + std::to_string(b.pid()) + "]");
    ASSERT_TRUE(reclaimed);
    EXPECT_NE(reclaimed->find("queue " + std::to_string(b_slot) + ":"), std::string::npos) << *reclaimed;
    a.send("peek " + std::to_string(a_slot));
    peek = a.expect("PEEK");
    ASSERT_TRUE(peek);
    EXPECT_EQ(field(*peek, "owner"), a.pid());
    EXPECT_EQ(field(*peek, "state"), 1); // owned
    b.send("quit");
    a.send("quit");
    EXPECT_TRUE(a.wait_success());
    EXPECT_TRUE(b.wait_success());
}

TEST_F(Registration, KilledAppIsReclaimedFastAndItsQueueReused) {
    ASSERT_TRUE(start_manager());
    constexpr int k_rounds = 5;
    std::vector<double> times;
    for (int round = 0; round < k_rounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // Two queues: only possible if the previous victim's queue came back.
        Child victim = app({"--port", "veth0", "--queues", "2", "--program", "victim"});
        auto attached = victim.expect("ATTACHED");
        ASSERT_TRUE(attached && victim.expect("READY", 30s)) << victim.transcript() << mgr_->transcript();
        EXPECT_EQ(word(*attached, "slots"), "0,1");
        victim.send("hold 200");
        ASSERT_TRUE(victim.expect("HELD n=200"));
        victim.send("rules 20");
        ASSERT_TRUE(victim.expect("RULES n=20"));
        victim.send("run");
        ASSERT_TRUE(victim.expect("RUNNING"));
        ASSERT_TRUE(mgr_line("Attached app", "victim[" + std::to_string(victim.pid()) + "]"));
        const auto killed = Clock::now();
        ASSERT_TRUE(victim.kill(SIGKILL));
        auto line = mgr_line("Reclaimed app", "victim[" + std::to_string(victim.pid()) + "] queue 0:", 5s);
        const double ms = ms_between(killed, Clock::now());
        ASSERT_TRUE(line) << mgr_->transcript();
        times.push_back(ms);
        EXPECT_EQ(count_before(*line, "rules"), 20) << *line;
        EXPECT_GE(count_before(*line, "mbufs returned"), 200) << *line;
        ASSERT_TRUE(mgr_line("Reclaimed app", "victim[" + std::to_string(victim.pid()) + "] queue 1:", 5s));
        ASSERT_TRUE(mgr_line("App", "is gone without detaching"));
        auto status = victim.wait();
        ASSERT_TRUE(status);
        EXPECT_TRUE(WIFSIGNALED(*status));
    }
    std::sort(times.begin(), times.end());
    std::printf("kill -> reclaim log line: min %.1f ms, median %.1f ms, max %.1f ms (%d rounds, 200 mbufs + 20 "
                "rules held)\n",
                times.front(), times[times.size() / 2], times.back(), k_rounds);
    EXPECT_LT(times.back(), 1000.0);
}

TEST_F(Registration, CleanDetachLeavesNothingToReclaim) {
    ASSERT_TRUE(start_manager());
    Child a = app({"--port", "veth0", "--program", "tidy"});
    ASSERT_TRUE(a.expect("ATTACHED") && a.expect("READY", 30s)) << a.transcript();
    a.send("hold 50");
    ASSERT_TRUE(a.expect("HELD n=50"));
    a.send("rules 5");
    ASSERT_TRUE(a.expect("RULES n=5"));
    a.send("run");
    ASSERT_TRUE(a.expect("RUNNING"));
    a.send("detach"); // frees the mbufs, deletes the rules, parks, then detaches
    auto detached = a.expect("DETACHED");
    ASSERT_TRUE(detached);
    EXPECT_EQ(field(*detached, "ok"), 1) << *detached;
    EXPECT_TRUE(mgr_line("App", "tidy[" + std::to_string(a.pid()) + "] detached"));
    auto line = mgr_line("Reclaimed app", "tidy[" + std::to_string(a.pid()) + "] queue 0:");
    ASSERT_TRUE(line) << mgr_->transcript();
    EXPECT_EQ(count_before(*line, "rules"), 0) << *line;
    EXPECT_EQ(count_before(*line, "mbufs returned"), 0) << *line;
    EXPECT_TRUE(mgr_line("App", "detached and is gone"));
    a.send("quit");
    EXPECT_TRUE(a.wait_success());
}

TEST_F(Registration, HungAppIsKilledAndReclaimedParkedAppIsNot) {
    config_.heartbeat_timeout_ms = 400;
    ASSERT_TRUE(start_manager());
    Child parked = app({"--port", "veth1", "--program", "parked"});
    ASSERT_TRUE(parked.expect("ATTACHED") && parked.expect("READY", 30s)) << parked.transcript();
    Child a = app({"--port", "veth0", "--program", "spinner"});
    ASSERT_TRUE(a.expect("ATTACHED") && a.expect("READY", 30s)) << a.transcript();
    a.send("run");
    ASSERT_TRUE(a.expect("RUNNING"));
    // Three timeouts while beating (and while parked): nobody is touched.
    EXPECT_FALSE(mgr_line("App", "hung", 1200ms));
    EXPECT_FALSE(a.wait(0ms));
    EXPECT_FALSE(parked.wait(0ms));
    a.send("stall");
    ASSERT_TRUE(a.expect("STALLED"));
    const auto stalled = Clock::now();
    auto hung = mgr_line("App", "spinner[" + std::to_string(a.pid()) + "] hung", 5s);
    const double ms = ms_between(stalled, Clock::now());
    ASSERT_TRUE(hung) << mgr_->transcript();
    std::printf("heartbeat stopped -> killed: %.0f ms (timeout 400 ms, checked every 200 ms)\n", ms);
    EXPECT_GE(ms, 350.0);
    EXPECT_NE(hung->find("SIGKILL"), std::string::npos);
    EXPECT_TRUE(mgr_line("Reclaimed app", "spinner[" + std::to_string(a.pid()) + "] queue 0:"));
    EXPECT_TRUE(mgr_line("App", "hung and was killed"));
    auto status = a.wait();
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
    EXPECT_FALSE(parked.wait(0ms));
    parked.send("quit");
    EXPECT_TRUE(parked.wait_success());
}

TEST_F(Registration, AppThatClosesItsConnectionButLivesOnIsKilled) {
    ASSERT_TRUE(start_manager());
    Child a = app({"--no-eal", "--program", "leaver"});
    ASSERT_TRUE(a.expect("ATTACHED"));
    ASSERT_TRUE(mgr_line("Attached app", "leaver["));
    a.send("close");
    ASSERT_TRUE(a.expect("CLOSED"));
    const auto closed = Clock::now();
    auto line = mgr_line("App", "closed its registration connection without detaching", 5s);
    ASSERT_TRUE(line) << mgr_->transcript();
    EXPECT_GE(ms_between(closed, Clock::now()), 400.0);
    EXPECT_TRUE(mgr_line("Reclaimed app", "leaver[" + std::to_string(a.pid()) + "] queue 0:"));
    auto status = a.wait();
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

TEST_F(Registration, SigtermExitsCleanlyAndRemovesTheSocket) {
    ASSERT_TRUE(start_manager());
    Child a = app({"--no-eal"});
    ASSERT_TRUE(a.expect("ATTACHED"));
    EXPECT_TRUE(is_socket(config_.socket));
    ASSERT_TRUE(mgr_->kill(SIGTERM));
    EXPECT_TRUE(mgr_->expect("Received SIGTERM, shutting down", 10s)) << mgr_->transcript();
    EXPECT_TRUE(mgr_->expect("gazelle-mgr stopped", 20s)) << mgr_->transcript();
    EXPECT_TRUE(mgr_->wait_success(20s)) << mgr_->transcript();
    EXPECT_FALSE(std::filesystem::exists(config_.socket));
    EXPECT_FALSE(std::filesystem::exists("/var/run/dpdk/" + config_.file_prefix)) << "runtime files left";
    a.send("quit");
    EXPECT_TRUE(a.wait_success());
}

TEST_F(Registration, TapPortIsUpBeforeReadyAndGoneAfterStop) {
    const std::string iface = "gzm" + std::to_string(getpid() % 100000);
    config_.ports = R"(ports = (
    { name = "tap0"; type = "tap"; iface = ")" +
                    iface + R"("; mac = "02:00:00:00:07:01"; ipv4 = "198.18.7.1";
      netmask = "255.255.255.0"; queues = 2; rx_ring_size = 256; tx_ring_size = 256; }
);
)";
    ASSERT_TRUE(start_manager());
    EXPECT_TRUE(mgr_->transcript().find("--vdev=net_tap0,iface=" + iface + ",mac=02:00:00:00:07:01") !=
                std::string::npos)
        << mgr_->transcript();
    EXPECT_NE(mgr_->transcript().find("Started port 'tap0' (tap, DPDK port 0, driver net_tap, 2 queues)"),
              std::string::npos)
        << mgr_->transcript();
    EXPECT_TRUE(std::filesystem::exists("/sys/class/net/" + iface)) << "the tap interface is not there at READY";
    Child a = app({"--port", "tap0", "--queues", "2"});
    auto line = a.expect("ATTACHED");
    ASSERT_TRUE(line) << a.transcript();
    EXPECT_EQ(word(*line, "slots"), "0,1");
    auto ready = a.expect("READY", 30s);
    ASSERT_TRUE(ready) << a.transcript();
    EXPECT_EQ(field(*ready, "owner_ok"), 1);
    a.send("quit");
    EXPECT_TRUE(a.wait_success());
    EXPECT_TRUE(mgr_line("Reclaimed app", "queue 1:"));
    ASSERT_TRUE(mgr_->kill(SIGTERM));
    EXPECT_TRUE(mgr_->expect("gazelle-mgr stopped", 20s)) << mgr_->transcript();
    EXPECT_TRUE(mgr_->wait_success());
    EXPECT_FALSE(std::filesystem::exists("/sys/class/net/" + iface)) << "the tap interface outlived the manager";
}

TEST_F(Registration, SecondManagerIsRefusedAndSurvivorsOfADeadOneBlockARestart) {
    ASSERT_TRUE(start_manager());
    // Same socket.
    Child same_socket(mgr_command(config_path_));
    ASSERT_TRUE(same_socket.expect("another gazelle-mgr is listening on '" + config_.socket + "'"))
        << same_socket.transcript();
    auto status = same_socket.wait();
    ASSERT_TRUE(status);
    EXPECT_EQ(WEXITSTATUS(*status), 1);
    // Same file prefix, other socket.
    MgrConfig other = config_;
    other.socket = dir_.path() + "/other/mgr.sock";
    const std::string other_path = dir_.write("other.conf", other.text());
    Child same_prefix(mgr_command(other_path));
    ASSERT_TRUE(same_prefix.expect("another DPDK primary (pid " + std::to_string(mgr_->pid()) +
                                   " 'gazelle-mgr') runs "
                                   "with file prefix '" +
                                   config_.file_prefix + "'"))
        << same_prefix.transcript();
    status = same_prefix.wait();
    ASSERT_TRUE(status);
    EXPECT_EQ(WEXITSTATUS(*status), 1);
    EXPECT_TRUE(is_socket(config_.socket)) << "the refused manager touched the running one's socket";

    // The manager dies; its app keeps its memory and keeps running.
    Child a = app({"--port", "veth0", "--program", "survivor"});
    ASSERT_TRUE(a.expect("ATTACHED") && a.expect("READY", 30s)) << a.transcript();
    ASSERT_TRUE(mgr_->kill(SIGKILL));
    ASSERT_TRUE(mgr_->wait());
    a.send("hold 10");
    EXPECT_TRUE(a.expect("HELD n=10"));
    a.send("peek 0");
    auto peek = a.expect("PEEK");
    ASSERT_TRUE(peek);
    EXPECT_EQ(field(*peek, "owner"), a.pid());
    // A new manager would re-create the fabric under it: refused, naming the survivor.
    Child restart(mgr_command(config_path_));
    ASSERT_TRUE(restart.expect("1 process(es) of an earlier fabric with file prefix '" + config_.file_prefix +
                               "' still run (pids " + std::to_string(a.pid()) + " 'app_actor')"))
        << restart.transcript();
    status = restart.wait();
    ASSERT_TRUE(status);
    EXPECT_EQ(WEXITSTATUS(*status), 1);
    // Once it is gone, a manager starts (and removes the dead one's socket).
    a.send("quit");
    EXPECT_TRUE(a.wait_success());
    mgr_.reset();
    mgr_.emplace(mgr_command(config_path_));
    EXPECT_TRUE(mgr_->expect("Removed stale registration socket '" + config_.socket + "'", 30s)) << mgr_->transcript();
    EXPECT_TRUE(mgr_->expect("Ready:", 30s)) << mgr_->transcript();
}

// The trust boundary of the fabric's memory (doc/security.md): whoever maps it can read and write
// every packet and every other app's state, so only the manager's user may. EAL makes the hugepage
// files and its runtime directory owner-only; this checks it stays so (no umask or option of ours
// widens them), and that the registration socket is 0660.
TEST_F(Registration, FabricMemoryAndRuntimeFilesAreOwnerOnly) {
    ASSERT_TRUE(start_manager());
    unsigned checked = 0;
    auto expect_private = [&](const std::filesystem::path& path, bool dir) {
        struct stat st {};
        ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
        EXPECT_EQ(st.st_uid, geteuid()) << path;
        if (dir || !S_ISSOCK(st.st_mode)) { // EAL's mp sockets are 0755, behind a 0700 directory
            EXPECT_EQ(st.st_mode & 077, 0u) << path << " mode " << std::oct << (st.st_mode & 07777);
        }
        ++checked;
    };
    const std::filesystem::path runtime = "/var/run/dpdk/" + config_.file_prefix;
    expect_private(runtime, true);
    for (const auto& e : std::filesystem::directory_iterator(runtime)) {
        expect_private(e.path(), false);
    }
    unsigned pages = 0;
    for (const auto& e : std::filesystem::directory_iterator(config_.huge_dir)) {
        expect_private(e.path(), false);
        ++pages;
    }
    EXPECT_GT(pages, 0u) << "no hugepage file in " << config_.huge_dir;
    struct stat sock {};
    ASSERT_EQ(stat(config_.socket.c_str(), &sock), 0);
    EXPECT_EQ(sock.st_mode & 0777, 0660u);
    EXPECT_GT(checked, pages);
}

// A clean stop (SIGTERM, systemctl stop) with apps still attached must not free the fabric's
// objects: EAL would unmap their pages in every secondary (hot-unplug is synchronous across
// processes) under stacks that still poll them. Measured before the fix: a preloaded redis-server
// crashed in rte_rcu_qsbr_thread_register() when its manager stopped.
TEST_F(Registration, CleanStopLeavesTheFabricsMemoryToRunningApps) {
    ASSERT_TRUE(start_manager());
    Child a = app({"--port", "veth0", "--program", "survivor"});
    ASSERT_TRUE(a.expect("ATTACHED") && a.expect("READY", 30s)) << a.transcript();
    a.send("rules 100");
    ASSERT_TRUE(a.expect("RULES")) << a.transcript();
    ASSERT_TRUE(mgr_->kill(SIGTERM));
    ASSERT_TRUE(mgr_->expect("1 process(es) still run on the fabric: leaving its shared memory and ports to them"))
        << mgr_->transcript();
    auto status = mgr_->wait();
    ASSERT_TRUE(status);
    EXPECT_EQ(WEXITSTATUS(*status), 0) << mgr_->transcript();
    // Pools, registry and flow table are still there, and usable.
    a.send("hold 10");
    EXPECT_TRUE(a.expect("HELD n=10")) << a.transcript();
    a.send("peek 0");
    auto peek = a.expect("PEEK");
    ASSERT_TRUE(peek) << a.transcript();
    EXPECT_EQ(field(*peek, "owner"), a.pid());
    a.send("rules 100");
    EXPECT_TRUE(a.expect("RULES")) << a.transcript();
    a.send("quit");
    EXPECT_TRUE(a.wait_success()) << a.transcript();
}

} // namespace
} // namespace gazelle::test
