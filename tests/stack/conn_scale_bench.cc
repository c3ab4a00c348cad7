// SPDX-License-Identifier: BSD-3-Clause
// Scaling with connections at the stack level (issue #7 figure 8, target "100k connections per
// stack"): what N established, idle TCP connections cost, N = 1k, 10k, 100k. Through POSIX apps
// this cannot reach 100k here (the sandbox's fd hard limit is 20000), so it uses the stack's
// native API (stack/api.h): no fds.
//
// Setup: the test primary (stack_primary_actor, flow table sized for two rules per connection),
// a server process with one stack on veth_a listening on k_ports ports (a client stack has only
// 16384 ephemeral ports per destination), a client process with one stack on veth_b that opens
// the connections ("hold": they stay open, nothing is sent). Levels are cumulative: the client
// opens up to N, the figures are taken, then it opens more up to the next N.
// For each N:
//   - open rate: connections/s of the opening up to N (handshakes, 256 connecting at a time);
//   - hugepage memory per connection, both ends: growth of the DPDK malloc heap (the fabric's
//     memory view, gazellectl show memory: lwIP arenas, flow rules) since before the first one;
//   - resident memory (VmRSS) per connection, both processes (sockets, their rings' touched pages);
//   - idle CPU of both processes with N open (lwIP's timers walk every pcb);
//   - request/response latency, 64 B, on one more connection while N are open (p50, p99).
// Printed at the end: a table from a "figure" header line (tools/bench shows it from there on),
// each figure against its N = 1k value. --smoke: N = 1k, 5k, short measurements; it checks that
// every connection was established, nothing else (no timing asserts).
//
//   conn_scale_bench [--smoke] [--conns N[,N...]] [gtest flags]
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/stack/stack_test_support.h"

namespace gazelle::test {
namespace {

constexpr unsigned k_ports = 8;          // listening ports: 8 x 16384 ephemeral ports > 100k
constexpr unsigned k_first_port = 7000;
constexpr unsigned k_connecting = 256;   // handshakes in flight

struct Settings {
    bool smoke = false;
    std::vector<unsigned> conns{1000, 10000, 100000};
    unsigned rtt_rounds = 2000;
    int idle_seconds = 2;
};
Settings g_set;

struct Level {
    unsigned wanted = 0;
    unsigned held = 0;       // established, both counted by the client
    unsigned accepted = 0;   // by the server
    double open_per_s = 0;   // of the connections opened for this level
    double heap_per_conn = 0;
    double rss_per_conn = 0;
    double idle_cpu_pct = 0; // both processes, % of one CPU
    double rtt_p50 = 0, rtt_p99 = 0;
    int first_error = 0;
};
std::vector<Level> g_levels;

// Resident memory of a process, bytes; -1 when it is gone.
double rss_bytes(pid_t pid) {
    const long long kib = resident_kib(pid);
    return kib < 0 ? -1 : static_cast<double>(kib) * 1024;
}

double dfield(const std::string& line, const std::string& key) {
    const auto at = line.find(" " + key + "=");
    return at == std::string::npos ? -1 : std::atof(line.c_str() + at + key.size() + 2);
}

std::uint32_t flow_rules_for(unsigned conns) {
    std::uint32_t rules = 8192;
    while (rules < conns * 2 + conns / 4 + 1024) { // two per connection, rte_hash fills to ~90%
        rules *= 2;
    }
    return rules;
}

class ConnScaleBench : public StackFabricTest {};

TEST_F(ConnScaleBench, IdleConnectionsCost) {
    const unsigned most = *std::max_element(g_set.conns.begin(), g_set.conns.end());
    start_primary({"veth", "1", "1", std::to_string(flow_rules_for(most))});
    auto server = start_app({{0, 10}}); // veth_a 198.18.0.1
    auto client = start_app({{1, 11}}); // veth_b 198.18.1.2
    ASSERT_TRUE(server && client);
    for (unsigned p = 0; p < k_ports; ++p) {
        const auto serving = ask(*server, "echo " + std::to_string(k_first_port + p) + " 0", "SERVING");
        ASSERT_EQ(field(serving, "ok"), 1) << serving;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const double heap0 = dfield(ask_primary("heap", "HEAP"), "allocated");
    const double rss0 = rss_bytes(server->pid()) + rss_bytes(client->pid());
    unsigned held = 0;
    for (const unsigned wanted : g_set.conns) {
        Level level;
        level.wanted = wanted;
        if (wanted > held) {
            const unsigned more = wanted - held;
            const unsigned timeout_s = 60 + more / 200; // generous: the figure is the rate, not a limit
            const auto hold = ask(*client,
                                  "hold 198.18.0.1 " + std::to_string(k_first_port) + " " + std::to_string(k_ports) + " " +
                                      std::to_string(more) + " " + std::to_string(k_connecting) + " " +
                                      std::to_string(timeout_s),
                                  "HOLD", std::chrono::seconds(timeout_s + 30));
            std::printf("N=%u: %s\n", wanted, hold.c_str());
            held = static_cast<unsigned>(field(hold, "held").value_or(0));
            level.first_error = static_cast<int>(field(hold, "first_error").value_or(0));
            const double usec = dfield(hold, "usec");
            level.open_per_s = usec > 0 ? static_cast<double>(field(hold, "done").value_or(0)) * 1e6 / usec : 0;
        }
        level.held = held;
        // The server accepts in its own threads: wait until it has taken them all.
        std::string servers;
        for (int i = 0; i < 100; ++i) {
            servers = ask(*server, "servers", "SERVERS");
            if (field(servers, "accepted").value_or(0) >= held) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        level.accepted = static_cast<unsigned>(field(servers, "accepted").value_or(0));
        std::this_thread::sleep_for(g_set.smoke ? std::chrono::milliseconds(300) : std::chrono::milliseconds(1000));
        const double heap = dfield(ask_primary("heap", "HEAP"), "allocated");
        const double rss = rss_bytes(server->pid()) + rss_bytes(client->pid());
        level.heap_per_conn = held > 0 ? (heap - heap0) / held : 0;
        level.rss_per_conn = held > 0 ? (rss - rss0) / held : 0;
        const long long cpu0 = cpu_ns(server->pid()) + cpu_ns(client->pid());
        std::this_thread::sleep_for(std::chrono::seconds(g_set.idle_seconds));
        level.idle_cpu_pct =
            static_cast<double>(cpu_ns(server->pid()) + cpu_ns(client->pid()) - cpu0) / (1e7 * g_set.idle_seconds);
        const auto rtt = ask(*client, "rtt 198.18.0.1 " + std::to_string(k_first_port) + " " +
                                          std::to_string(g_set.rtt_rounds) + " 64",
                             "RTT", 60s);
        std::printf("N=%u: %s\n", wanted, rtt.c_str());
        level.rtt_p50 = dfield(rtt, "p50_us");
        level.rtt_p99 = dfield(rtt, "p99_us");
        if (g_set.smoke) {
            // The one real check: every connection asked for was established at both ends.
            EXPECT_EQ(level.held, wanted) << "first_error=" << level.first_error;
            EXPECT_GE(level.accepted, wanted);
            EXPECT_EQ(field(rtt, "ok"), 1) << rtt;
        }
        g_levels.push_back(level);
    }
    std::printf("%s\n", ask_primary("usage", "USAGE").c_str());
    stop_app(*client);
    stop_app(*server);
}

void print_results() {
    if (g_levels.empty()) {
        return;
    }
    const Level& base = g_levels.front();
    auto row = [&](const char* name, double Level::*value, int decimals) {
        for (const Level& l : g_levels) {
            char cell[32], basecell[32];
            std::snprintf(cell, sizeof cell, "%.*f", decimals, l.*value);
            std::snprintf(basecell, sizeof basecell, "%.*f", decimals, base.*value);
            const double b = base.*value;
            std::printf("%-40s %7u %12s %12s %8.2fx%s\n", name, l.wanted, cell, basecell, b != 0 ? l.*value / b : 0.0,
                        l.held == l.wanted ? "" : "  (NOT all established)");
        }
    };
    std::printf("\nfigure                                         conns        value     baseline    ratio\n");
    row("open rate, connections/s", &Level::open_per_s, 0);
    row("hugepages per connection, B (both ends)", &Level::heap_per_conn, 0);
    row("resident per connection, B (both ends)", &Level::rss_per_conn, 0);
    row("idle CPU, % of one CPU (both processes)", &Level::idle_cpu_pct, 2);
    row("RR 64 B p50, us (N open)", &Level::rtt_p50, 1);
    row("RR 64 B p99, us (N open)", &Level::rtt_p99, 1);
    std::printf("baseline = the first N (%u); one stack per process, levels cumulative; established:", base.wanted);
    for (const Level& l : g_levels) {
        std::printf(" %u/%u", l.held, l.wanted);
    }
    std::printf("; shared 2-CPU machine.\n");
    std::printf("hugepages: the heap grows by the lwIP arenas' 4 MiB chunks (the first one is reserved at start, so\n"
                "small N show 0); flow rules live in the table, allocated in full when the fabric is created.\n");
}

} // namespace
} // namespace gazelle::test

int main(int argc, char** argv) {
    using gazelle::test::g_set;
    ::testing::InitGoogleTest(&argc, argv);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--smoke") {
            g_set.smoke = true;
            g_set.conns = {1000, 5000};
            g_set.rtt_rounds = 500;
            g_set.idle_seconds = 1;
        } else if (a == "--conns" && i + 1 < argc) {
            g_set.conns.clear();
            std::istringstream list(argv[++i]);
            for (std::string n; std::getline(list, n, ',');) {
                g_set.conns.push_back(static_cast<unsigned>(std::atoi(n.c_str())));
            }
        }
    }
    const int rc = RUN_ALL_TESTS();
    std::fflush(stdout);
    gazelle::test::print_results();
    return rc;
}
