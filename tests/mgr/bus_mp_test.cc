// SPDX-License-Identifier: BSD-3-Clause
// The D-Bus API of the real gazelle-mgr on a private dbus-daemon and a private hugetlbfs: every
// member answers sane data, hostile calls leave it running, an application's attach and SIGKILL
// are signalled (with what reclaim gave back, timed), Reclaim is root-only, both by the bus
// policy file and by the manager's own check.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "tests/mgr/bus_support.h"

namespace gazelle::test {
namespace {

std::string app_actor_path() {
#ifdef BUS_APP_ACTOR_BIN
    return BUS_APP_ACTOR_BIN;
#else
    return bin_path("bus_app_actor");
#endif
}

class BusMpTest : public ::testing::Test {
protected:
    virtual BusPolicy policy() const { return BusPolicy::permissive; }

    void SetUp() override {
        ASSERT_TRUE(mount_.ok()) << mount_.error();
        bus_ = std::make_unique<DbusDaemon>(policy());
        ASSERT_TRUE(bus_->ok()) << bus_->error();
        manager_ = std::make_unique<ManagerProcess>(mount_, bus_->address());
        ASSERT_TRUE(manager_->ok()) << manager_->error();
        std::printf("[ timing ] gazelle-mgr answered on D-Bus %.0f ms after start\n", manager_->start_ms());
    }

    sd_bus* client() const { return manager_->bus(); }

    void expect_alive() {
        ASSERT_TRUE(manager_->child().running()) << "gazelle-mgr died";
        const auto c = call_method(client(), "ListQueues");
        EXPECT_TRUE(c.ok()) << c.error_name << ": " << c.error_message;
    }

    std::unique_ptr<Child> start_app(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv = {app_actor_path(), "--socket", manager_->socket(), "--program", "bus-test-app"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        auto app = std::make_unique<Child>(argv);
        const auto line = app->expect("ATTACHED", 20s);
        EXPECT_TRUE(line) << app->transcript();
        return app;
    }

    // Number of elements of the reply's first array.
    static unsigned array_length(sd_bus_message* m, const char* contents, const char* element) {
        unsigned n = 0;
        if (sd_bus_message_enter_container(m, 'a', contents) <= 0) {
            return 0;
        }
        while (sd_bus_message_skip(m, element) > 0) {
            ++n;
        }
        (void)sd_bus_message_exit_container(m);
        return n;
    }

    HugeMount mount_;
    std::unique_ptr<DbusDaemon> bus_;
    std::unique_ptr<ManagerProcess> manager_;
};

// "Ready:" (and READY=1) is the promise that gazellectl works: the bus name must be owned by then.
// A manager that announced itself before the daemon answered its name request sent the first
// gazellectl after it to "name has no owner" (seen in CI).
TEST(BusMpReady, ReadyComesAfterTheBusNameIsOwnedAndTheFirstCallAnswers) {
    HugeMount mount;
    ASSERT_TRUE(mount.ok()) << mount.error();
    DbusDaemon bus(BusPolicy::permissive);
    ASSERT_TRUE(bus.ok()) << bus.error();
    TempDir dir;
    EalInstance eal(mount, "rdy");
    const auto config = write_manager_config(dir, mount, eal.prefix());
    auto client = connect_bus(bus.address());
    ASSERT_TRUE(client);
    Child mgr({"/bin/sh", "-c", "exec \"$0\" --config \"$1\" --bus \"$2\" 2>&1", gazelle_mgr_path(), config, bus.address()});
    ASSERT_TRUE(mgr.expect("Ready:", 30s)) << mgr.transcript();
    const auto c = call_method(client.get(), "ListQueues");
    EXPECT_TRUE(c.ok()) << "first call after Ready: " << c.error_name << ": " << c.error_message;
    EXPECT_NE(mgr.transcript().find("Acquired bus name"), std::string::npos)
        << "Ready: before the bus name was owned:\n" << mgr.transcript();
    mgr.kill(SIGTERM);
    EXPECT_TRUE(mgr.wait(10s));
}

TEST_F(BusMpTest, IntrospectionListsTheDocumentedMembers) {
    const auto r = run_command(busctl(bus_->address(), {"introspect", k_gz_name, k_gz_path}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* member : {".ListApps ", ".ListQueues ", ".ListRules ", ".ListConnections ", ".GetStats ",
                               ".GetMemory ", ".Reclaim ", ".AppAttached ", ".AppDetached ", ".AppCrashed ",
                               ".Version ", ".FilePrefix ", ".HugeDir ", ".Ports ", ".MaxApps ", ".MaxQueues "}) {
        EXPECT_NE(r.out.find(std::string("\n") + member), std::string::npos) << member << "\n" << r.out;
    }
}

TEST_F(BusMpTest, EveryMethodReturnsSaneData) {
    // Properties come from the configuration and the registry.
    const auto props = run_command(busctl(bus_->address(), {"get-property", k_gz_name, k_gz_path, k_gz_iface,
                                                            "FilePrefix", "HugeDir", "MaxApps", "MaxQueues", "Ports"}));
    ASSERT_EQ(props.exit_code, 0) << props.err;
    EXPECT_NE(props.out.find("s \"" + manager_->eal().prefix() + "\""), std::string::npos) << props.out;
    EXPECT_NE(props.out.find("s \"" + mount_.path() + "\""), std::string::npos) << props.out;
    EXPECT_NE(props.out.find("u 8\nu 8\n"), std::string::npos) << props.out;
    EXPECT_NE(props.out.find("a(ssssqq) 2 \"veth0\" \"user-veth\" \"02:00:00:00:00:01\" \"198.18.0.1/24\" 0 2 "
                             "\"veth1\" \"user-veth\" \"02:00:00:00:00:02\" \"198.18.0.2/24\" 2 1"),
              std::string::npos)
        << props.out;

    // Version is the daemon's own (needs GAZELLE_VERSION on the gazelle_mgr library, mgr/CMakeLists.txt).
    const auto version = run_command({gazelle_mgr_path(), "--version"});
    const auto property =
        run_command(busctl(bus_->address(), {"get-property", k_gz_name, k_gz_path, k_gz_iface, "Version"}));
    EXPECT_EQ("gazelle-mgr " + property.out.substr(3, property.out.size() - 5) + "\n", version.out) << property.out;

    auto apps = call_method(client(), "ListApps");
    ASSERT_TRUE(apps.ok());
    EXPECT_EQ(array_length(apps.reply.get(), "(uussa(qu)aqt)", "(uussa(qu)aqt)"), 0u);

    const auto queues = run_command(busctl_call(bus_->address(), "ListQueues"));
    EXPECT_EQ(queues.out, "a(qsqsuuqtb) 3 0 \"veth0\" 0 \"free\" 0 0 0 0 false 1 \"veth0\" 1 \"free\" 0 0 0 0 false "
                          "2 \"veth1\" 0 \"free\" 0 0 0 0 false\n")
        << queues.out;

    const auto rules = run_command(busctl_call(bus_->address(), "ListRules", {"s", ""}));
    EXPECT_EQ(rules.out, "a(sssqsqqutu) 0\n") << rules.err;

    auto stats = call_method(client(), "GetStats");
    ASSERT_TRUE(stats.ok()) << stats.error_message;
    std::uint64_t t = 0;
    ASSERT_GT(sd_bus_message_read(stats.reply.get(), "t", &t), 0);
    EXPECT_GT(t, 0u);
    EXPECT_EQ(array_length(stats.reply.get(), "(qsutttttttttttttttttttttt)", "(qsutttttttttttttttttttttt)"), 3u);

    auto memory = call_method(client(), "GetMemory");
    ASSERT_TRUE(memory.ok()) << memory.error_message;
    sd_bus_message* m = memory.reply.get();
    ASSERT_GT(sd_bus_message_enter_container(m, 'a', "(sqsuuuut)"), 0);
    unsigned pools = 0;
    const char* name = nullptr;
    const char* port = nullptr;
    std::uint16_t slot = 0;
    std::uint32_t size = 0, available = 0, in_use = 0, element = 0;
    std::uint64_t bytes = 0;
    while (sd_bus_message_read(m, "(sqsuuuut)", &name, &slot, &port, &size, &available, &in_use, &element, &bytes) >
           0) {
        // One pool per queue, and the fabric's L2 pool (no queue's: slot 0xffff, no port).
        EXPECT_EQ(std::string(name), slot == 0xffff ? std::string("gz_mbuf_l2") : "gz_mbuf_" + std::to_string(slot));
        EXPECT_EQ(size, 1023u);
        EXPECT_EQ(available + in_use, size);
        EXPECT_GE(element, 2176u); // data room plus headers
        EXPECT_GE(bytes, std::uint64_t{size} * element);
        ++pools;
    }
    ASSERT_GE(sd_bus_message_exit_container(m), 0);
    EXPECT_EQ(pools, 3u + 1u);
    EXPECT_EQ(array_length(m, "(qusst)", "(qusst)"), 0u); // no stack memory yet
    EXPECT_GE(array_length(m, "(st)", "(st)"), 5u);       // registry, flow table, inboxes, pools...
    std::uint64_t page = 0, mapped = 0, allocated = 0, heap_free = 0, total = 0, system_free = 0;
    ASSERT_GT(sd_bus_message_read(m, "(tttttt)", &page, &mapped, &allocated, &heap_free, &total, &system_free), 0);
    EXPECT_EQ(page, 2u << 20);
    EXPECT_GT(mapped, 3u * 1023u * 2176u);
    EXPECT_LE(allocated, mapped);
    EXPECT_GT(total, 0u);
    EXPECT_LE(system_free, total);
}

TEST_F(BusMpTest, HostileCallsAreErrorsAndTheManagerSurvives) {
    const std::vector<std::vector<std::string>> calls = {
        {"call", k_gz_name, k_gz_path, k_gz_iface, "ListRules", "u", "5"},
        {"call", k_gz_name, k_gz_path, k_gz_iface, "ListRules", "s", "slot=99"},
        {"call", k_gz_name, k_gz_path, k_gz_iface, "Reclaim", "s", "x"},
        {"call", k_gz_name, k_gz_path, k_gz_iface, "Reclaim", "u", "0"},
        {"call", k_gz_name, k_gz_path, k_gz_iface, "NoSuchMethod"},
        {"call", k_gz_name, "/org/openeuler/Gazelle1/nope", k_gz_iface, "ListApps"},
        {"call", k_gz_name, k_gz_path, "org.example.Nope", "ListApps"},
    };
    for (const auto& args : calls) {
        const auto r = run_command(busctl(bus_->address(), args));
        EXPECT_NE(r.exit_code, 0) << args[4] << " " << args.back();
        expect_alive();
    }
    const std::string huge(1 << 20, 'f');
    const auto t0 = std::chrono::steady_clock::now();
    const auto c = call_method(client(), "ListRules", "s", huge.c_str());
    std::printf("[ timing ] 1 MiB filter refused in %.1f ms\n", ms_since(t0));
    EXPECT_EQ(c.error_name, "org.freedesktop.DBus.Error.InvalidArgs");
    const auto unknown = call_method(client(), "Reclaim", "u", std::uint32_t{999999});
    EXPECT_EQ(unknown.error_name, "org.openeuler.Gazelle1.Error.NoSuchApp");
    // A burst of calls from many connections in a row.
    for (int i = 0; i < 20; ++i) {
        auto other = connect_bus(bus_->address());
        ASSERT_TRUE(other);
        EXPECT_TRUE(call_method(other.get(), "GetMemory").ok());
    }
    expect_alive();
}

TEST_F(BusMpTest, AttachedAppIsListedAndItsSigkillSignalledWithWhatReclaimReturned) {
    SignalRecorder signals(client());
    ASSERT_TRUE(signals.ok());
    auto app = start_app({"--hold"});
    const auto ready = app->expect("READY", 30s);
    ASSERT_TRUE(ready) << app->transcript();
    ASSERT_EQ(field(*ready, "rules"), 5) << *ready;
    ASSERT_EQ(field(*ready, "memp"), 1) << *ready;
    ASSERT_EQ(field(*ready, "in_hand"), 100) << *ready;

    const auto attached = signals.wait("AppAttached", 10s);
    ASSERT_TRUE(attached);
    std::uint32_t pid = 0;
    const char* program = nullptr;
    ASSERT_GT(sd_bus_message_read(attached->message.get(), "us", &pid, &program), 0);
    EXPECT_EQ(pid, static_cast<std::uint32_t>(app->pid()));
    EXPECT_STREQ(program, "bus-test-app");

    const std::string pid_text = std::to_string(app->pid());
    const auto apps = run_command(busctl_call(bus_->address(), "ListApps"));
    EXPECT_EQ(apps.out.rfind("a(uussa(qu)aqt) 1 " + pid_text + " 0 \"bus-test-app\" \"veth0\" 1 0 1 1 20 ", 0), 0u)
        << apps.out;
    const auto mine = run_command(busctl_call(bus_->address(), "ListRules", {"s", "pid=" + pid_text}));
    EXPECT_EQ(mine.out.rfind("a(sssqsqqutu) 6 ", 0), 0u) << mine.out; // 5 connections + its listener
    const auto conns = run_command(busctl_call(bus_->address(), "ListConnections"));
    EXPECT_EQ(conns.out.rfind("a(usa(qssqsq)) 1 " + pid_text + " \"bus-test-app\" 5 0 \"tcp\" \"198.18.0.1\" ", 0), 0u)
        << conns.out;
    const auto memps = run_command(busctl_call(bus_->address(), "GetMemory"));
    EXPECT_NE(memps.out.find(" 1 0 " + pid_text + " \""), std::string::npos) << memps.out; // its memp pool

    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(app->kill(SIGKILL));
    const auto crashed = signals.wait("AppCrashed", 20s);
    const double ms = ms_since(t0);
    ASSERT_TRUE(crashed) << manager_->child().transcript();
    std::printf("[ timing ] SIGKILL -> AppCrashed signal: %.1f ms\n", ms);
    const char* how = nullptr;
    ASSERT_GT(sd_bus_message_read(crashed->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_EQ(pid, static_cast<std::uint32_t>(app->pid()));
    EXPECT_STREQ(how, "exited");
    ReclaimTotals totals;
    ASSERT_GE(read_reclaim_reports(crashed->message.get(), totals), 0);
    EXPECT_EQ(totals.queues, 1u);
    EXPECT_EQ(totals.owned, 1u);
    EXPECT_EQ(totals.rules, 5u);
    EXPECT_EQ(totals.memp_pools, 1u);
    EXPECT_EQ(totals.mbufs, 100u);
    EXPECT_LT(ms, 5000.0);
    (void)app->wait(5s);

    // Everything is back.
    EXPECT_EQ(run_command(busctl_call(bus_->address(), "ListApps")).out, "a(uussa(qu)aqt) 0\n");
    EXPECT_EQ(run_command(busctl_call(bus_->address(), "ListRules", {"s", ""})).out, "a(sssqsqqutu) 0\n");
    const auto queues = run_command(busctl_call(bus_->address(), "ListQueues"));
    EXPECT_EQ(queues.out.rfind("a(qsqsuuqtb) 3 0 \"veth0\" 0 \"free\" 0 ", 0), 0u) << queues.out;
}

TEST_F(BusMpTest, CleanDetachIsAppDetached) {
    SignalRecorder signals(client());
    auto app = start_app();
    ASSERT_TRUE(signals.wait("AppAttached", 10s));
    ASSERT_TRUE(app->send("detach"));
    const auto detached_line = app->expect("DETACHED", 10s);
    ASSERT_TRUE(detached_line) << app->transcript();
    EXPECT_EQ(field(*detached_line, "rc"), 0);
    const auto detached = signals.wait("AppDetached", 10s);
    ASSERT_TRUE(detached);
    std::uint32_t pid = 0;
    const char* program = nullptr;
    const char* how = nullptr;
    ASSERT_GT(sd_bus_message_read(detached->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_EQ(pid, static_cast<std::uint32_t>(app->pid()));
    EXPECT_STREQ(how, "detached");
    EXPECT_FALSE(signals.wait("AppCrashed", 300ms));
}

TEST_F(BusMpTest, ReclaimIsRootOnlyAndForcesTheAppOut) {
    SignalRecorder signals(client());
    auto app = start_app();
    ASSERT_TRUE(signals.wait("AppAttached", 10s));
    const std::string pid_text = std::to_string(app->pid());
    // The bus lets nobody through here: the manager's own check refuses.
    const auto denied = run_command(as_nobody(busctl_call(bus_->address(), "Reclaim", {"u", pid_text})));
    EXPECT_NE(denied.exit_code, 0);
    EXPECT_NE(denied.err.find("Access denied"), std::string::npos) << denied.err;
    const auto why = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", pid_text})));
    EXPECT_EQ(why.exit_code, 1);
    EXPECT_NE(why.err.find("Reclaim needs root (caller uid 65534)"), std::string::npos) << why.err;
    EXPECT_TRUE(app->running());
    EXPECT_EQ(run_command(busctl_call(bus_->address(), "ListApps")).out.rfind("a(uussa(qu)aqt) 1 ", 0), 0u);

    const auto t0 = std::chrono::steady_clock::now();
    auto c = call_method(client(), "Reclaim", "u", static_cast<std::uint32_t>(app->pid()));
    std::printf("[ timing ] Reclaim(pid) call: %.1f ms\n", ms_since(t0));
    ASSERT_TRUE(c.ok()) << c.error_name << ": " << c.error_message;
    ReclaimTotals totals;
    ASSERT_GE(read_reclaim_reports(c.reply.get(), totals), 0);
    EXPECT_EQ(totals.queues, 1u);
    const auto crashed = signals.wait("AppCrashed", 10s);
    ASSERT_TRUE(crashed);
    std::uint32_t pid = 0;
    const char* program = nullptr;
    const char* how = nullptr;
    ASSERT_GT(sd_bus_message_read(crashed->message.get(), "uss", &pid, &program, &how), 0);
    EXPECT_STREQ(how, "forced");
    const auto status = app->wait(5s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
    EXPECT_EQ(call_method(client(), "Reclaim", "u", static_cast<std::uint32_t>(app->pid())).error_name,
              "org.openeuler.Gazelle1.Error.NoSuchApp");
    expect_alive();
}

class BusMpPolicyTest : public BusMpTest {
protected:
    BusPolicy policy() const override { return BusPolicy::project; }
};

TEST_F(BusMpPolicyTest, PolicyFileLetsEveryoneReadAndOnlyRootReclaim) {
    auto app = start_app();
    const std::string pid_text = std::to_string(app->pid());
    for (const char* member : {"ListApps", "ListQueues", "ListConnections", "GetStats", "GetMemory"}) {
        const auto r = run_command(as_nobody(busctl_call(bus_->address(), member)));
        EXPECT_EQ(r.exit_code, 0) << member << ": " << r.err;
    }
    const auto denied = run_command(as_nobody(busctl_call(bus_->address(), "Reclaim", {"u", pid_text})));
    EXPECT_NE(denied.exit_code, 0);
    EXPECT_NE(denied.err.find("Access denied"), std::string::npos) << denied.err;
    const auto why = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", pid_text})));
    EXPECT_NE(why.err.find("Rejected send message"), std::string::npos) << why.err; // the bus refused
    EXPECT_TRUE(app->running());
    const auto root = run_command(busctl_call(bus_->address(), "Reclaim", {"u", pid_text}));
    EXPECT_EQ(root.exit_code, 0) << root.err;
    EXPECT_TRUE(app->wait(5s));
    expect_alive();
}

} // namespace
} // namespace gazelle::test
