// SPDX-License-Identifier: BSD-3-Clause
// gazellectl against the D-Bus object over canned data (bus_fake_actor; tests/mgr/bus_fake_backend.h
// says what the data is): tables, JSON, the memory view, live rates, reclaim, and its messages
// and exit codes. No DPDK.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mgr/bus_support.h"
#include "tests/tools/gazellectl_support.h"

namespace gazelle::test {
namespace {

std::string fake_actor_path() {
#ifdef BUS_FAKE_ACTOR_BIN
    return BUS_FAKE_ACTOR_BIN;
#else
    return bin_path("../mgr/bus_fake_actor");
#endif
}

class GazellectlTest : public ::testing::Test {
protected:
    void SetUp() override {
        bus_ = std::make_unique<DbusDaemon>();
        ASSERT_TRUE(bus_->ok()) << bus_->error();
        actor_ = std::make_unique<Child>(std::vector<std::string>{fake_actor_path(), "--bus", bus_->address()});
        ASSERT_TRUE(actor_->expect("READY", 10s)) << actor_->transcript();
    }

    CommandResult ctl(std::vector<std::string> args) { return run_command(gazellectl(bus_->address(), args)); }

    std::unique_ptr<DbusDaemon> bus_;
    std::unique_ptr<Child> actor_;
};

TEST(GazellectlCli, HelpVersionAndUsageErrors) {
    const auto help = run_command({gazellectl_path(), "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_EQ(help.out.rfind("Usage: gazellectl", 0), 0u) << help.out;
    for (const char* word : {"show apps", "show queues", "show rules", "show conns", "show stats", "show memory",
                             "reclaim PID", "--bus", "--json", "--count"}) {
        EXPECT_NE(help.out.find(word), std::string::npos) << word;
    }
    const auto version = run_command({gazellectl_path(), "--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_EQ(version.out.rfind("gazellectl ", 0), 0u) << version.out;
    EXPECT_EQ(version.out.find("unknown"), std::string::npos) << version.out;

    const std::vector<std::vector<std::string>> usage_errors = {
        {},
        {"show"},
        {"show", "everything"},
        {"show", "apps", "extra"},
        {"frobnicate"},
        {"reclaim"},
        {"reclaim", "abc"},
        {"reclaim", "0"},
        {"reclaim", "1", "2"},
        {"show", "stats", "--count", "2"},
        {"show", "apps", "-r"},
        {"show", "stats", "-r", "--count", "0"},
        {"--bus"},
        {"--frob", "show", "apps"},
    };
    for (const auto& args : usage_errors) {
        std::vector<std::string> argv = {gazellectl_path()};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r = run_command(argv);
        std::string joined;
        for (const auto& a : args) {
            joined += a + " ";
        }
        EXPECT_EQ(r.exit_code, 2) << joined << ": " << r.err;
        EXPECT_EQ(r.err.rfind("gazellectl: ", 0), 0u) << joined << ": " << r.err;
        EXPECT_TRUE(r.out.empty()) << joined;
    }
}

TEST(GazellectlCli, ManagerNotRunningIsExit1WithAClearMessage) {
    DbusDaemon bus; // nobody owns org.openeuler.Gazelle1 here
    ASSERT_TRUE(bus.ok()) << bus.error();
    const auto r = run_command(gazellectl(bus.address(), {"show", "apps"}));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "gazellectl: cannot reach gazelle-mgr on the bus at " + bus.address() +
                         " (org.openeuler.Gazelle1): is it running?\n");
    EXPECT_TRUE(r.out.empty());
    // No bus at all at that address: the same first line, and why.
    const auto nobus = run_command(gazellectl("unix:path=" + bus.dir().path() + "/none", {"show", "queues"}));
    EXPECT_EQ(nobus.exit_code, 1);
    EXPECT_EQ(nobus.err.rfind("gazellectl: cannot reach gazelle-mgr on the bus at unix:path=", 0), 0u) << nobus.err;
    EXPECT_NE(nobus.err.find("No such file or directory"), std::string::npos) << nobus.err;
    // The default is the system bus (none runs here, or no manager is on it).
    const auto system = run_command({gazellectl_path(), "show", "memory"});
    EXPECT_EQ(system.exit_code, 1);
    EXPECT_EQ(system.err.substr(0, system.err.find('\n')),
              "gazellectl: cannot reach gazelle-mgr on the system bus (org.openeuler.Gazelle1): is it running?");
}

TEST_F(GazellectlTest, TablesHaveHeadersAndAlignedColumns) {
    struct Case {
        std::vector<std::string> args;
        std::string header; // first line
        std::string summary;
    };
    const std::vector<Case> cases = {
        {{"show", "apps"}, "PID  UID  PROGRAM       PORT   QUEUES (SLOT:EPOCH)  LCORES  ATTACHED", "2 apps"},
        {{"show", "queues"},
         "SLOT  PORT   HWQ  STATE   PID  PROGRAM       EPOCH  LCORE  HEARTBEAT  PARKED",
         "6 queues, 4 owned"},
        {{"show", "rules"},
         "KIND        PROTO  LOCAL            REMOTE            SLOT  EPOCH   PID  LISTENERS",
         "6 rules: 4 connections, 2 listeners"},
        {{"show", "conns"}, "PID  PROGRAM       SLOT  PROTO  LOCAL            REMOTE", "4 connections of 3 apps"},
        {{"show", "stats"}, "SLOT  PORT    PID  RX-PKTS  RX-BYTES  TX-PKTS", ""},
    };
    for (const Case& c : cases) {
        const auto r = ctl(c.args);
        ASSERT_EQ(r.exit_code, 0) << c.args[1] << ": " << r.err;
        const auto lines = split_lines(r.out);
        ASSERT_FALSE(lines.empty());
        EXPECT_NE(lines[0].find(c.header), std::string::npos) << c.args[1] << ":\n" << r.out;
        const auto block = table_block(lines, 0);
        EXPECT_GE(block.size(), 3u) << r.out;
        std::string why;
        EXPECT_TRUE(columns_aligned(block, why)) << c.args[1] << ": " << why << "\n" << r.out;
        if (!c.summary.empty()) {
            EXPECT_NE(r.out.find("\n" + c.summary), std::string::npos) << r.out;
        }
    }
    // Content: the fake data's rows.
    const auto rules = ctl({"show", "rules"}).out;
    EXPECT_NE(rules.find("connection  tcp    198.18.0.1:6379  198.18.0.2:40001     0      3  1001  -"),
              std::string::npos)
        << rules;
    EXPECT_NE(rules.find("listener    tcp    198.18.0.1:6379  -                    -      -     -  0,1"),
              std::string::npos)
        << rules;
    const auto queues = ctl({"show", "queues"}).out;
    EXPECT_NE(queues.find("   5  veth1    1  owned  1003  ?"), std::string::npos) << queues; // not a registered app
    // The L2 pool's counters have their own table (slot 0 is owned in the fake data).
    const auto stats_text = ctl({"show", "stats"}).out;
    EXPECT_NE(stats_text.find("SLOT  L2-ALLOCS  L2-FAILED  SHED\n   0          7          1     2\n"), std::string::npos)
        << stats_text;
    // Every stats table is aligned too (traffic, drops, L2 pool, flow table).
    const auto stats = split_lines(stats_text);
    for (std::size_t i = 0; i < stats.size(); ++i) {
        if (stats[i].rfind("SLOT", 0) == 0 || stats[i].rfind("COUNTER", 0) == 0) {
            std::string why;
            EXPECT_TRUE(columns_aligned(table_block(stats, i), why)) << why;
        }
    }
}

TEST_F(GazellectlTest, RuleFiltersAreTheManagers) {
    const auto mine = ctl({"show", "rules", "pid=1001"});
    EXPECT_EQ(mine.exit_code, 0) << mine.err;
    EXPECT_NE(mine.out.find("3 rules: 2 connections, 1 listener matching 'pid=1001'"), std::string::npos) << mine.out;
    const auto two_words = ctl({"show", "rules", "proto=tcp", "kind=listener"});
    EXPECT_NE(two_words.out.find("2 rules: 0 connections, 2 listeners"), std::string::npos) << two_words.out;
    const auto bad = ctl({"show", "rules", "prot=tcp"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_NE(bad.err.find("bad filter term 'prot=tcp': unknown key 'prot'"), std::string::npos) << bad.err;
    EXPECT_TRUE(bad.out.empty());
}

TEST_F(GazellectlTest, JsonOfEveryShowParses) {
    TempDir dir;
    for (const char* what : {"apps", "queues", "rules", "conns", "stats", "memory"}) {
        const auto r = ctl({"--json", "show", what});
        ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
        std::string why;
        EXPECT_TRUE(valid_json(dir, r.out, false, why)) << what << ": " << why << "\n" << r.out;
    }
    const auto rules = ctl({"show", "rules", "slot=2", "--json"});
    EXPECT_NE(rules.out.find(R"({"kind":"connection","proto":"tcp","local_ip":"198.18.0.1","local_port":80,)"),
              std::string::npos)
        << rules.out;
    EXPECT_NE(rules.out.find(R"("listener_slots":[2])"), std::string::npos) << rules.out;
    const auto apps = ctl({"--json", "show", "apps"});
    EXPECT_NE(
        apps.out.find(
            R"({"pid":1001,"uid":0,"program":"redis-server","port":"veth0","queues":[{"slot":0,"epoch":3},{"slot":1,"epoch":4}],"lcores":[1,2],)"),
        std::string::npos)
        << apps.out;
    const auto reclaim = ctl({"--json", "reclaim", "1002"});
    std::string why;
    EXPECT_TRUE(valid_json(dir, reclaim.out, false, why)) << why << reclaim.out;
}

TEST_F(GazellectlTest, MemoryViewHasBarsAndTotalsThatMatchGetMemory) {
    const auto r = ctl({"show", "memory"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto lines = split_lines(r.out);
    // Totals from GetMemory itself.
    auto client = connect_bus(bus_->address());
    ASSERT_TRUE(client);
    const MemoryTotals want = memory_totals(client.get());
    ASSERT_TRUE(want.ok);
    EXPECT_EQ(want.pools, 6u);
    EXPECT_EQ(want.size, 6u * 1023u);
    EXPECT_EQ(want.in_use, 1642u);
    const std::string total_line = line_starting(lines, "             total");
    ASSERT_FALSE(total_line.empty()) << r.out;
    std::istringstream words(total_line);
    std::string label;
    unsigned long total = 0, in_use = 0, free = 0;
    words >> label >> total >> in_use >> free;
    EXPECT_EQ(total, want.size) << total_line;
    EXPECT_EQ(in_use, want.in_use) << total_line;
    EXPECT_EQ(free, want.size - want.in_use) << total_line;
    EXPECT_NE(total_line.find("26.8%"), std::string::npos) << total_line;
    EXPECT_NE(total_line.find("14.2 MiB"), std::string::npos) << total_line;
    // One bar per pool plus the total, each 20 wide, filled in proportion.
    const std::regex bar(R"(\[(#*)(\.*)\])");
    unsigned bars = 0;
    for (const auto& line : lines) {
        std::smatch m;
        if (std::regex_search(line, m, bar)) {
            EXPECT_EQ(m[1].length() + m[2].length(), 20) << line;
            ++bars;
        }
    }
    EXPECT_GE(bars, 7u + 2u) << r.out; // 6 pools, total, mapped, system
    EXPECT_NE(r.out.find("gz_mbuf_2   1023     512   511  [##########..........]   50.0%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("gz_mbuf_3   1023    1023     0  [####################]  100.0%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("gz_mbuf_5   1023       7  1016  [#...................]    0.7%"), std::string::npos)
        << r.out; // a little in use still shows
    // Stack memory, memzones, hugepages (with what to reserve).
    EXPECT_NE(r.out.find("tcp_pcb  gz_memp_0_1  64.0 KiB"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("total (3 memzones)   3.0 MiB"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mapped by the fabric  64.0 MiB     32  [#############.......]  62.5%"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("The fabric needs 32 hugepages of 2.0 MiB (64.0 MiB)"), std::string::npos) << r.out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].rfind("SLOT", 0) == 0 || lines[i].rfind("MEMZONE", 0) == 0 || lines[i].rfind("WHAT", 0) == 0) {
            std::string why;
            EXPECT_TRUE(columns_aligned(table_block(lines, i), why)) << why << "\n" << r.out;
        }
    }
}

TEST_F(GazellectlTest, StatsRatesPrintCountSamples) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ctl({"show", "stats", "-r", "1", "--count", "2"});
    const double ms = ms_since(t0);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto lines = split_lines(r.out);
    unsigned samples = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].find("rates over 1.00 s") != std::string::npos) {
            ++samples;
            std::string why;
            EXPECT_TRUE(columns_aligned(table_block(lines, i + 1), why)) << why;
        }
    }
    EXPECT_EQ(samples, 2u) << r.out;
    // The fake adds 1000 rx packets per reading and per slot index + 1, 1 s apart on its clock.
    EXPECT_NE(r.out.find("   0  veth0  1001      1000      64000       500      32000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("   5  veth1  1003      6000     384000"), std::string::npos) << r.out;
    EXPECT_GE(ms, 1900.0);
    EXPECT_LT(ms, 6000.0);
    std::printf("[ timing ] show stats -r 1 --count 2: %.0f ms\n", ms);

    const auto json = ctl({"--json", "show", "stats", "-r", "0.2", "--count", "3"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_EQ(split_lines(json.out).size(), 3u) << json.out;
    TempDir dir;
    std::string why;
    EXPECT_TRUE(valid_json(dir, json.out, true, why)) << why << "\n" << json.out;
    EXPECT_NE(json.out.find(R"("rx_packets_per_second":1000,)"), std::string::npos) << json.out;
}

TEST_F(GazellectlTest, StatsRatesStopOnCtrlC) {
    Child live(gazellectl(bus_->address(), {"show", "stats", "-r", "0.2"}));
    ASSERT_TRUE(live.expect("SLOT", 10s));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(live.kill(SIGINT));
    const auto status = live.wait(5s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
    EXPECT_LT(ms_since(t0), 1000.0);
}

TEST_F(GazellectlTest, ReclaimMessagesAndExitCodes) {
    const auto unknown = ctl({"reclaim", "4242"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_EQ(unknown.err, "gazellectl: no app with pid 4242 is registered with gazelle-mgr ('gazellectl show apps' "
                           "lists them)\n");
    const auto nobody = run_command(as_nobody(gazellectl(bus_->address(), {"reclaim", "1001"})));
    EXPECT_EQ(nobody.exit_code, 1);
    EXPECT_EQ(nobody.err.rfind("gazellectl: access denied: Reclaim needs root (run gazellectl reclaim as root)\n", 0),
              0u)
        << nobody.err;
    const auto root = ctl({"reclaim", "1001"});
    EXPECT_EQ(root.exit_code, 0) << root.err;
    EXPECT_EQ(root.out.rfind("Reclaimed pid 1001: 2 queues\n", 0), 0u) << root.out;
    std::string why;
    const auto lines = split_lines(root.out);
    EXPECT_TRUE(columns_aligned(table_block(lines, 1), why)) << why << "\n" << root.out;
    EXPECT_NE(ctl({"show", "apps"}).out.find("\n1 app\n"), std::string::npos);
}

} // namespace
} // namespace gazelle::test
