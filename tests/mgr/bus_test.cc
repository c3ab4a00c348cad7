// SPDX-License-Identifier: BSD-3-Clause
// The D-Bus object of gazelle-mgr (mgr/bus.h) on a private dbus-daemon, over canned data
// (bus_fake_actor + tests/mgr/bus_fake_backend.h): every member, the errors, hostile calls, the
// signals, and both access checks (the policy file and the in-process uid check). No DPDK.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/mgr/bus_support.h"

namespace gazelle::test {
namespace {

class BusTest : public ::testing::Test {
protected:
    void start(BusPolicy policy = BusPolicy::permissive) {
        bus_ = std::make_unique<DbusDaemon>(policy);
        ASSERT_TRUE(bus_->ok()) << bus_->error();
        actor_ =
            std::make_unique<Child>(std::vector<std::string>{bin_path("bus_fake_actor"), "--bus", bus_->address()});
        const auto ready = actor_->expect("READY", 10s);
        ASSERT_TRUE(ready) << actor_->transcript();
        client_ = connect_bus(bus_->address());
        ASSERT_TRUE(client_);
    }
    void SetUp() override { start(); }

    // The object still answers (after a hostile call).
    void expect_alive() {
        ASSERT_TRUE(actor_->running());
        const auto c = call_method(client_.get(), "ListApps");
        EXPECT_TRUE(c.ok()) << c.error_name << ": " << c.error_message;
    }

    std::string command(const std::string& line) {
        EXPECT_TRUE(actor_->send(line));
        return actor_->expect("OK", 10s).value_or("(no answer)");
    }

    std::unique_ptr<DbusDaemon> bus_;
    std::unique_ptr<Child> actor_;
    TestBusPtr client_;
};

TEST_F(BusTest, IntrospectionListsEveryDocumentedMember) {
    const auto r = run_command(busctl(bus_->address(), {"introspect", k_gz_name, k_gz_path}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::vector<std::pair<std::string, std::string>> members = {
        {".ListApps", "a(uussa(qu)aqt)"},
        {".ListQueues", "a(qsqsuuqtb)"},
        {".ListRules", "a(sssqsqqutu)"},
        {".ListConnections", "a(usa(qssqsq))"},
        {".GetStats", "ta(qsutttttttttttttttttttttt)(tttttttttttttuu)"},
        {".GetMemory", "a(sqsuuuut)a(qusst)a(st)(tttttt)"},
        {".Reclaim", "a(quubbuuutuuuuud)"},
        {".AppAttached", "usaq"},
        {".AppDetached", "ussa(quubbuuutuuuuud)"},
        {".AppCrashed", "ussa(quubbuuutuuuuud)"},
        {".Version", "s"},
        {".FilePrefix", "s"},
        {".HugeDir", "s"},
        {".Ports", "a(ssssqq)"},
        {".MaxApps", "u"},
        {".MaxQueues", "u"},
    };
    for (const auto& [name, signature] : members) {
        const auto at = r.out.find("\n" + name + " ");
        ASSERT_NE(at, std::string::npos) << name << " missing:\n" << r.out;
        const std::string line = r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
        EXPECT_NE(line.find(signature), std::string::npos) << line;
    }
    EXPECT_NE(r.out.find("org.openeuler.Gazelle1.Manager"), std::string::npos);
    // Argument names are in the XML.
    const auto xml = run_command(busctl(bus_->address(), {"introspect", "--xml-interface", k_gz_name, k_gz_path}));
    EXPECT_NE(xml.out.find("name=\"filter\""), std::string::npos) << xml.out;
    EXPECT_NE(xml.out.find("name=\"reclaimed\""), std::string::npos);
}

TEST_F(BusTest, PropertiesAreConstAndReadable) {
    const auto r = run_command(busctl(bus_->address(), {"get-property", k_gz_name, k_gz_path, k_gz_iface, "Version",
                                                        "FilePrefix", "HugeDir", "MaxApps", "MaxQueues", "Ports"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("s \"0.0-test\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("s \"gz-fake\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("u 32"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("u 16"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("a(ssssqq) 2 \"veth0\" \"user-veth\" \"02:00:00:00:00:01\" \"198.18.0.1/24\" 0 4"),
              std::string::npos)
        << r.out;
}

TEST_F(BusTest, ListAppsReturnsStructs) {
    auto c = call_method(client_.get(), "ListApps");
    ASSERT_TRUE(c.ok()) << c.error_message;
    sd_bus_message* m = c.reply.get();
    ASSERT_GT(sd_bus_message_enter_container(m, 'a', "(uussa(qu)aqt)"), 0);
    std::vector<std::uint32_t> pids;
    while (sd_bus_message_enter_container(m, 'r', "uussa(qu)aqt") > 0) {
        std::uint32_t pid = 0, uid = 0;
        const char* program = nullptr;
        const char* port = nullptr;
        ASSERT_GT(sd_bus_message_read(m, "uuss", &pid, &uid, &program, &port), 0);
        ASSERT_GT(sd_bus_message_enter_container(m, 'a', "(qu)"), 0);
        std::vector<std::pair<std::uint16_t, std::uint32_t>> queues;
        std::uint16_t slot = 0;
        std::uint32_t epoch = 0;
        while (sd_bus_message_read(m, "(qu)", &slot, &epoch) > 0) {
            queues.emplace_back(slot, epoch);
        }
        ASSERT_GE(sd_bus_message_exit_container(m), 0);
        const void* lcores = nullptr;
        std::size_t bytes = 0;
        ASSERT_GE(sd_bus_message_read_array(m, 'q', &lcores, &bytes), 0);
        std::uint64_t attached = 0;
        ASSERT_GT(sd_bus_message_read(m, "t", &attached), 0);
        ASSERT_GE(sd_bus_message_exit_container(m), 0);
        pids.push_back(pid);
        if (pid == 1001) {
            EXPECT_STREQ(program, "redis-server");
            EXPECT_STREQ(port, "veth0");
            EXPECT_EQ(queues, (std::vector<std::pair<std::uint16_t, std::uint32_t>>{{0, 3}, {1, 4}}));
            EXPECT_EQ(bytes, 2 * sizeof(std::uint16_t));
            const auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                            std::chrono::system_clock::now().time_since_epoch())
                                                            .count());
            EXPECT_NEAR(static_cast<double>(now - attached) / 1e6, 90.0, 5.0);
        }
    }
    EXPECT_EQ(pids, (std::vector<std::uint32_t>{1001, 1002}));
}

TEST_F(BusTest, EveryMethodAnswersWithTheDocumentedShape) {
    // busctl prints the reply with its signature first; the counts come from the fake data.
    const auto queues = run_command(busctl_call(bus_->address(), "ListQueues"));
    ASSERT_EQ(queues.exit_code, 0) << queues.err;
    EXPECT_EQ(queues.out.rfind("a(qsqsuuqtb) 6 0 \"veth0\" 0 \"owned\" 1001 1 1 1000 false", 0), 0u) << queues.out;
    const auto rules = run_command(busctl_call(bus_->address(), "ListRules", {"s", ""}));
    ASSERT_EQ(rules.exit_code, 0) << rules.err;
    EXPECT_EQ(rules.out.rfind(
                  "a(sssqsqqutu) 6 \"connection\" \"tcp\" \"198.18.0.1\" 6379 \"198.18.0.2\" 40001 0 3 0 1001", 0),
              0u)
        << rules.out;
    EXPECT_NE(rules.out.find("\"listener\" \"tcp\" \"0.0.0.0\" 80 \"0.0.0.0\" 0 65535 0 4 0"), std::string::npos)
        << rules.out;
    const auto mine = run_command(busctl_call(bus_->address(), "ListRules", {"s", "pid=1001"}));
    EXPECT_EQ(mine.out.rfind("a(sssqsqqutu) 3 ", 0), 0u) << mine.out; // 2 connections + the 6379 listener
    const auto listeners = run_command(busctl_call(bus_->address(), "ListRules", {"s", "kind=listener proto=tcp"}));
    EXPECT_EQ(listeners.out.rfind("a(sssqsqqutu) 2 ", 0), 0u) << listeners.out;
    const auto conns = run_command(busctl_call(bus_->address(), "ListConnections"));
    ASSERT_EQ(conns.exit_code, 0) << conns.err;
    EXPECT_EQ(conns.out.rfind("a(usa(qssqsq)) 3 1001 \"redis-server\" 2 0 \"tcp\"", 0), 0u) << conns.out;
    EXPECT_NE(conns.out.find("1003 \"\" 1 5 \"tcp\""), std::string::npos) << conns.out; // owner not registered
    const auto stats = run_command(busctl_call(bus_->address(), "GetStats"));
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_EQ(stats.out.rfind("ta(qsutttttttttttttttttttttt)(tttttttttttttuu) 6000000 6 0 \"veth0\" 1001 1000 64000", 0), 0u)
        << stats.out;
    EXPECT_NE(stats.out.find("40 0 0 0 36 0 35 3 0 2 0 0 1 6 65536"), std::string::npos) << stats.out;
    const auto memory = run_command(busctl_call(bus_->address(), "GetMemory"));
    ASSERT_EQ(memory.exit_code, 0) << memory.err;
    EXPECT_EQ(
        memory.out.rfind("a(sqsuuuut)a(qusst)a(st)(tttttt) 6 \"gz_mbuf_0\" 0 \"veth0\" 1023 1023 0 2432 2487936", 0),
        0u)
        << memory.out;
    EXPECT_NE(memory.out.find("1 0 1001 \"gz_memp_0_1\" \"tcp_pcb\" 65536"), std::string::npos) << memory.out;
    EXPECT_NE(memory.out.find("2097152 67108864 41943040 25165824 2147483648 1073741824"), std::string::npos)
        << memory.out;
}

TEST_F(BusTest, BadFilterIsInvalidArgsNamingTheBadPart) {
    const auto c = call_method(client_.get(), "ListRules", "s", "pid=1 prot=tcp");
    EXPECT_EQ(c.error_name, "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_NE(c.error_message.find("'prot=tcp'"), std::string::npos) << c.error_message;
    expect_alive();
}

TEST_F(BusTest, WrongTypesUnknownObjectsAndMembersAreErrorsAndTheObjectSurvives) {
    struct Case {
        std::vector<std::string> args;
        std::string error; // part of busctl's message
    };
    const std::vector<Case> cases = {
        {{"call", k_gz_name, k_gz_path, k_gz_iface, "ListRules", "u", "5"}, "Invalid argument"},
        {{"call", k_gz_name, k_gz_path, k_gz_iface, "ListRules"}, "Invalid argument"},
        {{"call", k_gz_name, k_gz_path, k_gz_iface, "Reclaim", "s", "1001"}, "Invalid argument"},
        {{"call", k_gz_name, k_gz_path, k_gz_iface, "ListApps", "s", "extra"}, "Invalid argument"},
        {{"call", k_gz_name, k_gz_path, k_gz_iface, "NoSuchMethod"}, "Unknown method"},
        {{"call", k_gz_name, "/org/openeuler/Nope", k_gz_iface, "ListApps"}, "Unknown object"},
        {{"call", k_gz_name, k_gz_path, "org.openeuler.Nope", "ListApps"}, "Unknown"},
        {{"get-property", k_gz_name, k_gz_path, k_gz_iface, "NoSuchProperty"}, "property NoSuchProperty"},
        {{"set-property", k_gz_name, k_gz_path, k_gz_iface, "MaxApps", "u", "1"}, "writable"},
    };
    for (const Case& c : cases) {
        const auto r = run_command(busctl(bus_->address(), c.args));
        EXPECT_NE(r.exit_code, 0) << c.args[4];
        EXPECT_NE(r.err.find(c.error), std::string::npos) << c.args.back() << ": " << r.err;
        expect_alive();
    }
    // The same as D-Bus error names.
    const auto unknown = call_method(client_.get(), "NoSuchMethod");
    EXPECT_EQ(unknown.error_name, "org.freedesktop.DBus.Error.UnknownMethod");
    const auto wrong = call_method(client_.get(), "Reclaim", "s", "1001");
    EXPECT_EQ(wrong.error_name, "org.freedesktop.DBus.Error.InvalidArgs");
    expect_alive();
}

TEST_F(BusTest, HugeArgumentsAreRefusedAndTheObjectSurvives) {
    const std::string huge(1 << 20, 'p');
    const auto t0 = std::chrono::steady_clock::now();
    const auto c = call_method(client_.get(), "ListRules", "s", huge.c_str());
    std::printf("[ timing ] 1 MiB filter refused in %.1f ms\n", ms_since(t0));
    EXPECT_EQ(c.error_name, "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_NE(c.error_message.find("1048576 bytes"), std::string::npos) << c.error_message;
    EXPECT_LT(c.error_message.size(), 200u);
    // Many terms just under the limit.
    std::string many;
    while (many.size() < 1000) {
        many += "port=1 ";
    }
    EXPECT_TRUE(call_method(client_.get(), "ListRules", "s", many.c_str()).ok());
    // A reclaim of an absurd pid.
    EXPECT_EQ(call_method(client_.get(), "Reclaim", "u", std::uint32_t{0xffffffff}).error_name,
              "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_EQ(call_method(client_.get(), "Reclaim", "u", std::uint32_t{0}).error_name,
              "org.freedesktop.DBus.Error.InvalidArgs");
    expect_alive();
}

TEST_F(BusTest, ReclaimOfAnUnknownPidIsNoSuchApp) {
    const auto c = call_method(client_.get(), "Reclaim", "u", std::uint32_t{4242});
    EXPECT_EQ(c.error_name, "org.openeuler.Gazelle1.Error.NoSuchApp");
    EXPECT_NE(c.error_message.find("4242"), std::string::npos) << c.error_message;
    expect_alive();
}

TEST_F(BusTest, ReclaimReturnsReportsAndSignalsAppCrashedForced) {
    SignalRecorder signals(client_.get());
    ASSERT_TRUE(signals.ok());
    auto c = call_method(client_.get(), "Reclaim", "u", std::uint32_t{1001});
    ASSERT_TRUE(c.ok()) << c.error_name << ": " << c.error_message;
    ReclaimTotals totals;
    ASSERT_GE(read_reclaim_reports(c.reply.get(), totals), 0);
    EXPECT_EQ(totals.queues, 2u);
    EXPECT_EQ(totals.rules, 2u);
    EXPECT_EQ(totals.mbufs, 200u);
    const auto s = signals.wait("AppCrashed", 5s);
    ASSERT_TRUE(s);
    std::uint32_t pid = 0;
    const char* program = nullptr;
    const char* how = nullptr;
    ASSERT_GT(sd_bus_message_read(s->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_EQ(pid, 1001u);
    EXPECT_STREQ(program, "redis-server");
    EXPECT_STREQ(how, "forced");
    // Gone from ListApps; a second reclaim finds nothing.
    EXPECT_EQ(call_method(client_.get(), "Reclaim", "u", std::uint32_t{1001}).error_name,
              "org.openeuler.Gazelle1.Error.NoSuchApp");
}

TEST_F(BusTest, AttachCrashAndDetachAreSignalled) {
    SignalRecorder signals(client_.get());
    ASSERT_TRUE(signals.ok());
    EXPECT_EQ(command("attach 2001 demo 3,4"), "OK attach");
    auto attached = signals.wait("AppAttached", 5s);
    ASSERT_TRUE(attached);
    std::uint32_t pid = 0;
    const char* program = nullptr;
    ASSERT_GT(sd_bus_message_read(attached->message.get(), "us", &pid, &program), 0);
    const void* slots = nullptr;
    std::size_t bytes = 0;
    ASSERT_GE(sd_bus_message_read_array(attached->message.get(), 'q', &slots, &bytes), 0);
    EXPECT_EQ(pid, 2001u);
    EXPECT_STREQ(program, "demo");
    ASSERT_EQ(bytes, 2 * sizeof(std::uint16_t));
    EXPECT_EQ(static_cast<const std::uint16_t*>(slots)[0], 3);
    EXPECT_EQ(static_cast<const std::uint16_t*>(slots)[1], 4);

    EXPECT_EQ(command("crash 2001"), "OK crash");
    auto crashed = signals.wait("AppCrashed", 5s);
    ASSERT_TRUE(crashed);
    const char* how = nullptr;
    ASSERT_GT(sd_bus_message_read(crashed->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_EQ(pid, 2001u);
    EXPECT_STREQ(how, "exited");
    ReclaimTotals totals;
    ASSERT_GE(read_reclaim_reports(crashed->message.get(), totals), 0);
    EXPECT_EQ(totals.queues, 2u);
    EXPECT_EQ(totals.mbufs, 600u);

    EXPECT_EQ(command("detach 1002"), "OK detach");
    auto detached = signals.wait("AppDetached", 5s);
    ASSERT_TRUE(detached);
    ASSERT_GT(sd_bus_message_read(detached->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_EQ(pid, 1002u);
    EXPECT_STREQ(program, "nginx");
    EXPECT_STREQ(how, "detached");
    EXPECT_FALSE(signals.wait("AppCrashed", 200ms)); // a detach is not a crash
}

TEST_F(BusTest, InProcessCheckRefusesReclaimFromNonRootOnAPermissiveBus) {
    // The bus lets anyone send anything here: only the object's own uid check stands.
    // (busctl shows every AccessDenied as "Access denied"; gazellectl prints the object's message,
    // which only the in-process check writes.)
    const auto denied = run_command(as_nobody(busctl_call(bus_->address(), "Reclaim", {"u", "1001"})));
    EXPECT_NE(denied.exit_code, 0);
    EXPECT_NE(denied.err.find("Access denied"), std::string::npos) << denied.err;
    const auto why = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", "1001"})));
    EXPECT_EQ(why.exit_code, 1);
    EXPECT_NE(why.err.find("Reclaim needs root (caller uid 65534)"), std::string::npos) << why.err;
    // Read-only methods are for everyone; the app is still there.
    const auto apps = run_command(as_nobody(busctl_call(bus_->address(), "ListApps")));
    EXPECT_EQ(apps.exit_code, 0) << apps.err;
    EXPECT_EQ(apps.out.rfind("a(uussa(qu)aqt) 2 1001 ", 0), 0u) << apps.out;
    // D-Bus error name as a client sees it.
    const auto as_root = call_method(client_.get(), "Reclaim", "u", std::uint32_t{4242});
    EXPECT_EQ(as_root.error_name, "org.openeuler.Gazelle1.Error.NoSuchApp"); // root passes the check
}

TEST_F(BusTest, ReconnectsWhenTheBusDaemonRestarts) {
    client_.reset();
    bus_->stop();
    const auto lost = actor_->expect("DISCONNECTED", 10s);
    ASSERT_TRUE(lost) << actor_->transcript();
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(bus_->restart()) << bus_->error();
    ASSERT_TRUE(actor_->expect("READY", 15s)) << actor_->transcript();
    std::printf("[ timing ] name owned again %.0f ms after the bus daemon restarted\n", ms_since(t0));
    client_ = connect_bus(bus_->address());
    ASSERT_TRUE(client_);
    expect_alive();
    // Signals flow on the new connection.
    SignalRecorder signals(client_.get());
    EXPECT_EQ(command("attach 3001 again 3"), "OK attach");
    EXPECT_TRUE(signals.wait("AppAttached", 5s));
}

class BusPolicyTest : public BusTest {
protected:
    void SetUp() override { start(BusPolicy::project); }
};

TEST_F(BusPolicyTest, NonRootMayReadButNotReclaim) {
    for (const char* member : {"ListApps", "ListQueues", "ListConnections", "GetStats", "GetMemory"}) {
        const auto r = run_command(as_nobody(busctl_call(bus_->address(), member)));
        EXPECT_EQ(r.exit_code, 0) << member << ": " << r.err;
    }
    const auto rules = run_command(as_nobody(busctl_call(bus_->address(), "ListRules", {"s", "slot=0"})));
    EXPECT_EQ(rules.exit_code, 0) << rules.err;
    const auto introspect = run_command(as_nobody(busctl(bus_->address(), {"introspect", k_gz_name, k_gz_path})));
    EXPECT_EQ(introspect.exit_code, 0) << introspect.err;
    const auto props =
        run_command(as_nobody(busctl(bus_->address(), {"get-property", k_gz_name, k_gz_path, k_gz_iface, "Version"})));
    EXPECT_EQ(props.exit_code, 0) << props.err;

    // Reclaim is stopped by the bus itself, before it reaches the object (the refusal is the
    // daemon's "Rejected send message", not the object's "caller uid").
    const auto denied = run_command(as_nobody(busctl_call(bus_->address(), "Reclaim", {"u", "1001"})));
    EXPECT_NE(denied.exit_code, 0);
    EXPECT_NE(denied.err.find("Access denied"), std::string::npos) << denied.err;
    const auto why = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", "1001"})));
    EXPECT_EQ(why.exit_code, 1);
    EXPECT_NE(why.err.find("Rejected send message"), std::string::npos) << why.err;
    EXPECT_EQ(why.err.find("caller uid"), std::string::npos) << why.err;
    EXPECT_EQ(actor_->transcript().find("ERR"), std::string::npos);
    // Root may.
    const auto root = run_command(busctl_call(bus_->address(), "Reclaim", {"u", "1002"}));
    EXPECT_EQ(root.exit_code, 0) << root.err;
    EXPECT_EQ(root.out.rfind("a(quubbuuutuuuuud) 1 2 1002 1 true false", 0), 0u) << root.out;
}

TEST_F(BusPolicyTest, OnlyRootMayOwnTheName) {
    auto intruder = std::make_unique<Child>(as_nobody({bin_path("bus_fake_actor"), "--bus", bus_->address()}));
    const auto line = intruder->expect("", 10s);
    ASSERT_TRUE(line) << intruder->transcript();
    EXPECT_EQ(*line, "REFUSED");
    // The root-owned object still answers.
    expect_alive();
}

} // namespace
} // namespace gazelle::test
