// SPDX-License-Identifier: BSD-3-Clause
// gazellectl against the real gazelle-mgr (private dbus-daemon, private hugetlbfs) with an
// application that holds mbufs, rules, a listener and stack memory: every view, JSON, the memory
// view against GetMemory, live rates, reclaim, and the manager going away.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mgr/bus_support.h"
#include "tests/tools/gazellectl_support.h"

namespace gazelle::test {
namespace {

std::string app_actor_path() {
#ifdef BUS_APP_ACTOR_BIN
    return BUS_APP_ACTOR_BIN;
#else
    return bin_path("../mgr/bus_app_actor");
#endif
}

class GazellectlMpTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(mount_.ok()) << mount_.error();
        bus_ = std::make_unique<DbusDaemon>();
        ASSERT_TRUE(bus_->ok()) << bus_->error();
        manager_ = std::make_unique<ManagerProcess>(mount_, bus_->address());
        ASSERT_TRUE(manager_->ok()) << manager_->error();
        app_ = std::make_unique<Child>(std::vector<std::string>{app_actor_path(), "--socket", manager_->socket(),
                                                                "--program", "ctl-test-app", "--hold"});
        const auto ready = app_->expect("READY", 30s);
        ASSERT_TRUE(ready) << app_->transcript();
        pid_ = std::to_string(app_->pid());
    }

    CommandResult ctl(std::vector<std::string> args) { return run_command(gazellectl(bus_->address(), args)); }

    HugeMount mount_;
    std::unique_ptr<DbusDaemon> bus_;
    std::unique_ptr<ManagerProcess> manager_;
    std::unique_ptr<Child> app_;
    std::string pid_;
};

TEST_F(GazellectlMpTest, EveryViewShowsTheApp) {
    const auto apps = ctl({"show", "apps"});
    ASSERT_EQ(apps.exit_code, 0) << apps.err;
    const auto app_lines = split_lines(apps.out);
    EXPECT_NE(app_lines[0].find("PID  UID  PROGRAM"), std::string::npos) << apps.out;
    EXPECT_NE(apps.out.find(pid_ + "    0  ctl-test-app  veth0  0:1                  20"), std::string::npos)
        << apps.out;
    std::string why;
    EXPECT_TRUE(columns_aligned(table_block(app_lines, 0), why)) << why;

    const auto queues = ctl({"show", "queues"});
    EXPECT_NE(queues.out.find("   0  veth0    0  owned  " + pid_ + "  ctl-test-app      1     20"), std::string::npos)
        << queues.out;
    EXPECT_NE(queues.out.find("3 queues, 1 owned"), std::string::npos) << queues.out;

    const auto rules = ctl({"show", "rules", "pid=" + pid_});
    EXPECT_EQ(rules.exit_code, 0) << rules.err;
    EXPECT_NE(rules.out.find("connection  tcp    198.18.0.1:5000  198.18.0.9:40000     0      1  " + pid_),
              std::string::npos)
        << rules.out;
    EXPECT_NE(rules.out.find("listener    tcp    0.0.0.0:7000"), std::string::npos) << rules.out;
    EXPECT_NE(rules.out.find("6 rules: 5 connections, 1 listener"), std::string::npos) << rules.out;
    EXPECT_NE(ctl({"show", "rules", "pid=1"}).out.find("0 rules"), std::string::npos);

    const auto conns = ctl({"show", "conns"});
    EXPECT_NE(conns.out.find("5 connections of 1 app"), std::string::npos) << conns.out;

    const auto stats = ctl({"show", "stats"});
    EXPECT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_NE(stats.out.find("Flow table: 6 keys of "), std::string::npos) << stats.out;

    TempDir dir;
    for (const char* what : {"apps", "queues", "rules", "conns", "stats", "memory"}) {
        const auto r = ctl({"--json", "show", what});
        ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
        EXPECT_TRUE(valid_json(dir, r.out, false, why)) << what << ": " << why << "\n" << r.out;
    }
}

TEST_F(GazellectlMpTest, MemoryViewMatchesGetMemory) {
    const auto r = ctl({"show", "memory"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const MemoryTotals want = memory_totals(manager_->bus());
    ASSERT_TRUE(want.ok);
    EXPECT_EQ(want.pools, 3u + 1u); // one per queue, and the fabric's L2 pool
    EXPECT_GE(want.in_use, 100u); // the app holds 100
    const auto lines = split_lines(r.out);
    EXPECT_FALSE(line_starting(lines, "   -  -      gz_mbuf_l2").empty()) << r.out;
    const std::string total_line = line_starting(lines, "             total");
    ASSERT_FALSE(total_line.empty()) << r.out;
    std::istringstream words(total_line);
    std::string label;
    unsigned long total = 0, in_use = 0, free = 0;
    words >> label >> total >> in_use >> free;
    EXPECT_EQ(total, want.size) << total_line;
    EXPECT_EQ(in_use, want.in_use) << total_line;
    EXPECT_EQ(free, want.size - want.in_use) << total_line;
    EXPECT_NE(total_line.find('['), std::string::npos) << total_line;
    EXPECT_NE(r.out.find("tcp_pcb"), std::string::npos) << r.out; // the app's stack memory
    EXPECT_NE(r.out.find(" " + pid_ + "  tcp_pcb"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mapped by the fabric"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("The fabric needs "), std::string::npos) << r.out;
    std::printf("%s", r.out.c_str());
}

TEST_F(GazellectlMpTest, LiveRatesPrintTwoSamples) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ctl({"show", "stats", "-r", "1", "--count", "2"});
    const double ms = ms_since(t0);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    unsigned samples = 0;
    for (const auto& line : split_lines(r.out)) {
        samples += line.find("rates over") != std::string::npos ? 1u : 0u;
    }
    EXPECT_EQ(samples, 2u) << r.out;
    EXPECT_GE(ms, 1900.0);
    std::printf("[ timing ] show stats -r 1 --count 2 against gazelle-mgr: %.0f ms\n", ms);
}

TEST_F(GazellectlMpTest, ReclaimKillsTheAppAndUnknownPidsAreRefused) {
    const auto unknown = ctl({"reclaim", "999999"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("no app with pid 999999 is registered with gazelle-mgr"), std::string::npos)
        << unknown.err;
    const auto nobody = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", pid_})));
    EXPECT_EQ(nobody.exit_code, 1);
    EXPECT_NE(nobody.err.find("Reclaim needs root"), std::string::npos) << nobody.err;
    EXPECT_TRUE(app_->running());
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ctl({"reclaim", pid_});
    std::printf("[ timing ] gazellectl reclaim of a DPDK app: %.0f ms\n", ms_since(t0));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("Reclaimed pid " + pid_ + ": 1 queue\n", 0), 0u) << r.out;
    // slot 0: 5 rules, its listener, its memp pool, the 100 mbufs it held.
    EXPECT_NE(r.out.find("   0      1      5          1  1 (64.0 KiB)    100"), std::string::npos) << r.out;
    const auto status = app_->wait(5s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFSIGNALED(*status));
    EXPECT_NE(ctl({"show", "apps"}).out.find("\n0 apps\n"), std::string::npos);
}

TEST_F(GazellectlMpTest, ManagerGoneIsExit1WithTheMessage) {
    ASSERT_TRUE(manager_->child().kill(SIGTERM));
    ASSERT_TRUE(manager_->child().wait(20s));
    const auto r = ctl({"show", "apps"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "gazellectl: cannot reach gazelle-mgr on the bus at " + bus_->address() +
                         " (org.openeuler.Gazelle1): is it running?\n");
}

} // namespace
} // namespace gazelle::test
