// SPDX-License-Identifier: BSD-3-Clause
// Application-level figures, each next to its baseline measured in the same run, through a real
// gazelle-mgr (on a private dbus-daemon, for gazellectl's counters and memory view) and
// unmodified programs preloaded with liblstack.so (servers on veth0 198.18.0.1, clients on veth1
// 198.18.0.2), against the same programs on kernel loopback:
//  - TCP request/response: sockperf ping-pong, p50/p99/p99.9 of its latency (half a round trip,
//    as sockperf reports it), fabric vs kernel.
//  - redis-benchmark SET and GET, ops/s and p50, at several client counts, fabric vs kernel.
//  - Mis-steering penalty: the same RR test from a client with two stacks, every reply steered
//    onto the other stack's queue (lstack.conf connect_port_policy = "other-queue", so the other
//    stack forwards each one) vs onto its own (own-queue). gazellectl's forwarding counters prove
//    which happened.
//  - Memory: hugepage memory (gazellectl show memory: DPDK heap allocated, pages mapped) an idle
//    preloaded stack adds, and what N idle TCP connections add (redis-benchmark -I, both ends
//    preloaded) for growing N (1k, then 10k: how memory grows with connections); CPU of the
//    idle stack (interrupt mode) from /proc/PID/stat.
// Output: "plot ..." lines (the latency percentiles, for tools/bench's gnuplot), then the table
// from its "figure" header on. --smoke: short runs and small counts for CI; it checks that every
// figure was measured and that the policies steer as they say, never timings.
//
//   apps_bench [--smoke] [--conns N[,N...]] [--seconds S] [gtest flags]
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include "tests/mgr/bus_support.h"
#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

struct Settings {
    bool smoke = false;
    int seconds = 3;      // per sockperf run
    std::vector<int> conns{1000, 10000}; // idle connection counts for the memory figure
    int redis_requests = 20000;
};
Settings g_set;

// Everything measured, printed by main() after the tests.
struct Results {
    std::map<std::string, std::map<std::string, double>> rr; // [run][percentile] = us
    struct Redis {
        double kernel_rps = 0, fabric_rps = 0, kernel_p50 = 0, fabric_p50 = 0;
    };
    std::map<std::pair<std::string, int>, Redis> redis; // [command, clients]
    std::uint64_t fwd_own = 0, fwd_other = 0;             // forwarded_out on veth1 during the runs
    double idle_heap = -1, idle_mapped = -1;              // bytes one idle stack adds
    struct Conns {
        int wanted = 0, done = 0;
        double heap = -1, mapped = -1; // hugepage bytes the `done` connections added (both ends)
        double rss = -1;               // resident bytes they added (both ends: sockets, rings, lwIP heap)
    };
    std::vector<Conns> conns;
    double idle_cpu_percent = -1;
    int idle_stacks = 0;
};
Results g_res;

// sockperf's "---> percentile 99.900 =   29.424" lines (and <MAX>/<MIN>), by percentile text.
std::map<std::string, double> sockperf_percentiles(const std::vector<std::string>& lines) {
    std::map<std::string, double> out;
    for (const auto& line : lines) {
        const auto at = line.find("---> percentile ");
        const auto eq = line.find(" = ");
        if (at != std::string::npos && eq != std::string::npos) {
            const auto name = line.substr(at + 16, eq - at - 16);
            out[name] = std::stod(line.substr(eq + 3));
        } else if (line.find("---> <MIN> observation =") != std::string::npos) {
            out["0.000"] = std::stod(line.substr(line.find('=') + 1));
        } else if (line.find("---> <MAX> observation =") != std::string::npos) {
            out["100.000"] = std::stod(line.substr(line.find('=') + 1));
        }
    }
    return out;
}

// redis-benchmark --csv: "SET","12345.68","0.123","0.040","0.111",... (test, rps, avg, min, p50, ...).
std::map<std::string, std::pair<double, double>> redis_csv(const std::vector<std::string>& lines) {
    std::map<std::string, std::pair<double, double>> out;
    for (const auto& line : lines) {
        std::vector<std::string> cells;
        std::string cell;
        std::istringstream in(line);
        while (std::getline(in, cell, ',')) {
            if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
                cell = cell.substr(1, cell.size() - 2);
            }
            cells.push_back(cell);
        }
        if (cells.size() < 5 || cells[0] == "test") {
            continue;
        }
        try {
            out[cells[0]] = {std::stod(cells[1]), std::stod(cells[4])};
        } catch (...) {
        }
    }
    return out;
}

// CPU seconds (user + system, all threads) of a process so far.
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    std::getline(in, text); // one line
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) {
        return -1;
    }
    std::istringstream fields(text.substr(paren + 2));
    std::vector<std::string> f;
    std::string w;
    while (fields >> w) {
        f.push_back(w);
    }
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based) -> indices 11, 12 here.
    if (f.size() < 13) {
        return -1;
    }
    return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Resident memory of a process (VmRSS), bytes; -1 when it is gone.
double rss_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stod(line.substr(6)) * 1024; // "VmRSS:    1234 kB"
        }
    }
    return -1;
}

class AppsBench : public PosixFabricTest {
protected:
    AppsBench() {
        mgr_args_ = "--bus '" + bus_.address() + "'";
        // The shipped defaults where the tests' small sizes would limit 10k connections opened at
        // once: two rules per connection (one at each end), the handshakes' mbufs, inbox lanes
        // and rx rings for the SYN burst.
        mgr_config_edits_ = {{"flow_table_size = 4096", "flow_table_size = 65536"},
                             {"mbufs_per_queue = 4095", "mbufs_per_queue = 8191"},
                             {"ring_size = 256", "ring_size = 1024"},
                             {"rx_ring_size = 512", "rx_ring_size = 1024"},
                             {"rx_ring_size = 512", "rx_ring_size = 1024"}};
    }

    void SetUp() override {
        ASSERT_TRUE(bus_.ok()) << bus_.error();
        PosixFabricTest::SetUp();
    }

    int port(int offset) const { return 24000 + static_cast<int>(getpid() % 8000) + offset; }

    // A value of gazellectl --json show WHAT, picked by a python3 expression over `d`.
    std::optional<double> ctl_number(const std::string& what, const std::string& expr) {
        const std::string cmd = sh_quote(gazellectl_path()) + " --bus " + sh_quote(bus_.address()) + " --json show " +
                                what + " | python3 -c " + sh_quote("import json,sys; d=json.load(sys.stdin); print(" + expr + ")");
        const auto r = run_command({"/bin/sh", "-c", cmd}, 20s);
        if (r.exit_code != 0) {
            ADD_FAILURE() << "gazellectl show " << what << ": " << r.err << r.out;
            return std::nullopt;
        }
        try {
            return std::stod(r.out);
        } catch (...) {
            ADD_FAILURE() << "gazellectl show " << what << " gave " << r.out;
            return std::nullopt;
        }
    }
    // forwarded_out summed over veth1's queues (the client side, where replies land).
    std::uint64_t client_forwarded() {
        return static_cast<std::uint64_t>(
            ctl_number("stats", "sum(q['forwarded_out'] for q in d['queues'] if q['port']=='veth1')").value_or(0));
    }

    std::vector<std::string> run_client(const std::vector<std::string>& argv, const std::string* conf,
                                        std::chrono::milliseconds timeout, bool* ok, pid_t* pid = nullptr,
                                        const std::string& extra_env = "") {
        Child client(conf != nullptr ? preloaded(*conf, argv, extra_env) : plain(argv));
        auto lines = lines_until(client, "", timeout);
        *ok = client.wait_success(5s);
        if (pid != nullptr) {
            *pid = client.pid();
        }
        drain_mgr();
        return lines;
    }

    DbusDaemon bus_;
};

// --- TCP request/response and the mis-steering penalty ------------------------------------------

TEST_F(AppsBench, SockperfTcpPingPong) {
    if (!installed("/usr/bin/sockperf")) {
        GTEST_SKIP() << "sockperf is not installed (run tools/setup)";
    }
    const std::string two_own = lstack_conf("client2own", k_client_ip, "stack_num = 2;\n");
    const std::string two_other =
        lstack_conf("client2other", k_client_ip, "stack_num = 2;\nconnect_port_policy = \"other-queue\";\n");
    const std::string t = std::to_string(g_set.seconds);
    // Kernel loopback.
    {
        const std::string p = std::to_string(port(0));
        Child server(plain({"/usr/bin/sockperf", "sr", "--tcp", "-i", "127.0.0.1", "-p", p}));
        ASSERT_TRUE(server.expect("sockperf: [SERVER] listen on", 20s)) << server.transcript();
        std::this_thread::sleep_for(200ms);
        bool ok = false;
        auto out = run_client({"/usr/bin/sockperf", "pp", "--tcp", "-i", "127.0.0.1", "-p", p, "-t", t}, nullptr, 60s, &ok);
        EXPECT_TRUE(ok) << joined(out);
        g_res.rr["kernel"] = sockperf_percentiles(out);
        ASSERT_TRUE(server.kill(SIGINT));
        EXPECT_TRUE(server.wait_success(20s));
    }
    // Fabric: one preloaded server, then the clients one after the other.
    const std::string p = std::to_string(port(1));
    Child server(preloaded(server_conf_, {"/usr/bin/sockperf", "sr", "--tcp", "-i", k_server_ip, "-p", p}));
    ASSERT_TRUE(server.expect("sockperf: [SERVER] listen on", 20s)) << server.transcript();
    ASSERT_NO_FATAL_FAILURE(wait_attached("sockperf"));
    struct Run {
        const char* name;
        const std::string* conf;
    };
    for (const Run& run : {Run{"fabric", &client_conf_}, Run{"fabric 2 stacks own-queue", &two_own},
                           Run{"fabric 2 stacks other-queue", &two_other}}) {
        const std::uint64_t fwd0 = client_forwarded();
        bool ok = false;
        pid_t pid = 0;
        auto out = run_client({"/usr/bin/sockperf", "pp", "--tcp", "-i", k_server_ip, "-p", p, "-t", t}, run.conf, 60s,
                              &ok, &pid);
        EXPECT_TRUE(ok) << run.name << "\n" << joined(out);
        g_res.rr[run.name] = sockperf_percentiles(out);
        EXPECT_TRUE(g_res.rr[run.name].count("50.000")) << run.name << "\n" << joined(out);
        expect_clean_detach(pid); // its queues are free again for the next client
        const std::uint64_t fwd = client_forwarded() - fwd0;
        if (std::string(run.name).find("own-queue") != std::string::npos) {
            g_res.fwd_own = fwd;
        } else if (std::string(run.name).find("other-queue") != std::string::npos) {
            g_res.fwd_other = fwd;
        }
    }
    // The policy did what it says: own-queue forwards nothing (a few ARP or handshake packets
    // at most), other-queue forwards every reply (sockperf sends thousands per second).
    EXPECT_LT(g_res.fwd_own, 20u);
    EXPECT_GT(g_res.fwd_other, 1000u);
    ASSERT_TRUE(server.kill(SIGINT));
    EXPECT_TRUE(server.wait_success(20s)) << server.transcript();
    expect_clean_detach(server.pid());
}

// --- redis-benchmark -------------------------------------------------------------------------------

TEST_F(AppsBench, RedisSetGetByClients) {
    for (const char* program : {"/usr/bin/redis-server", "/usr/bin/redis-benchmark", "/usr/bin/redis-cli"}) {
        if (!installed(program)) {
            GTEST_SKIP() << program << " is not installed (run tools/setup)";
        }
    }
    const std::vector<int> clients = g_set.smoke ? std::vector<int>{1, 10} : std::vector<int>{1, 10, 50, 200};
    const std::string conf = lstack_conf("redis", k_server_ip, "tcp_conn_count = 2000;\n");
    const std::string client_conf = lstack_conf("redisc", k_client_ip, "tcp_conn_count = 2000;\n");
    for (const bool fabric : {false, true}) {
        const std::string ip = fabric ? k_server_ip : "127.0.0.1";
        const std::string p = std::to_string(port(fabric ? 11 : 10));
        const std::vector<std::string> argv{"/usr/bin/redis-server", "--bind", ip, "--port", p, "--save", "",
                                            "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                                            "--loglevel", "warning", "--dir", dir_.path()};
        Child server(fabric ? preloaded(conf, argv) : plain(argv));
        const std::string* cc = fabric ? &client_conf : nullptr;
        bool ok = false;
        bool up = false;
        for (int i = 0; i < 50 && !up; ++i) {
            std::this_thread::sleep_for(100ms);
            auto out = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "ping"}, cc, 10s, &ok);
            up = std::find(out.begin(), out.end(), "PONG") != out.end();
        }
        ASSERT_TRUE(up) << "redis-server did not answer" << (fabric ? " (fabric)" : "");
        for (const int c : clients) {
            // Fewer requests with one client: each is a full round trip.
            const int n = std::max(100, c == 1 ? g_set.redis_requests / 4 : g_set.redis_requests);
            auto out = run_client({"/usr/bin/redis-benchmark", "-h", ip, "-p", p, "-n", std::to_string(n), "-c",
                                   std::to_string(c), "-t", "set,get", "--csv"},
                                  cc, 120s, &ok);
            EXPECT_TRUE(ok) << joined(out);
            const auto rows = redis_csv(out);
            for (const std::string cmd : {"SET", "GET"}) {
                const auto it = rows.find(cmd);
                EXPECT_NE(it, rows.end()) << cmd << " -c " << c << "\n" << joined(out);
                if (it == rows.end()) {
                    continue;
                }
                auto& r = g_res.redis[{cmd, c}];
                (fabric ? r.fabric_rps : r.kernel_rps) = it->second.first;
                (fabric ? r.fabric_p50 : r.kernel_p50) = it->second.second;
            }
        }
        (void)run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "shutdown", "nosave"}, cc, 10s, &ok);
        EXPECT_TRUE(server.wait_success(20s)) << "redis-server did not exit cleanly";
        if (fabric) {
            expect_clean_detach(server.pid());
        }
    }
}

// --- memory and idle CPU ---------------------------------------------------------------------------

TEST_F(AppsBench, MemoryPerStackAndPerConnectionIdleCpu) {
    for (const char* program : {"/usr/bin/redis-server", "/usr/bin/redis-benchmark", "/usr/bin/redis-cli"}) {
        if (!installed(program)) {
            GTEST_SKIP() << program << " is not installed (run tools/setup)";
        }
    }
    auto memory = [&](double& heap, double& mapped) {
        heap = ctl_number("memory", "d['hugepages']['heap_allocated']").value_or(-1);
        mapped = ctl_number("memory", "d['hugepages']['mapped']").value_or(-1);
    };
    const int most = *std::max_element(g_set.conns.begin(), g_set.conns.end());
    const std::string limits = "tcp_conn_count = 20000;\n";
    const std::string conf = lstack_conf("memsrv", k_server_ip, limits);
    const std::string client_conf = lstack_conf("memcli", k_client_ip, limits);
    double heap0 = 0, mapped0 = 0;
    memory(heap0, mapped0);
    // Each round: redis-server (an idle stack: listening, nothing connected; its descriptors: as
    // many as the hard limit allows), then one preloaded redis-benchmark -I opening N idle
    // connections, then both gone. One client per round: with two client processes on veth1,
    // each would own one of its two queues, and own-queue ports (RSS) would cap each at half of
    // the 16384 ephemeral ports per destination.
    const std::string p = std::to_string(port(20));
    const std::string server_cmd = "ulimit -n $(ulimit -Hn) && exec /usr/bin/redis-server --bind " + std::string(k_server_ip) +
                                   " --port " + p + " --save '' --appendonly no --protected-mode no --daemonize no"
                                   " --loglevel warning --maxclients " + std::to_string(most + 100) + " --dir " +
                                   sh_quote(dir_.path());
    auto server_connections = [&] {
        return static_cast<int>(
            ctl_number("stats", "sum(q['connections'] for q in d['queues'] if q['port']=='veth0')").value_or(-1));
    };
    bool ok = false;
    for (std::size_t round = 0; round < g_set.conns.size(); ++round) {
        const int conns = g_set.conns[round];
        Child server(preloaded(conf, {"/bin/sh", "-c", server_cmd}, "GAZELLE_BIND_PROCNAME=redis-server"));
        ASSERT_NO_FATAL_FAILURE(wait_attached("redis-server", round + 1));
        std::this_thread::sleep_for(g_set.smoke ? 300ms : 1000ms); // the stack settles into its idle back-off
        const pid_t pid = attached_pids("redis-server").back();
        double heap1 = 0, mapped1 = 0;
        memory(heap1, mapped1);
        const double server_rss0 = rss_bytes(pid);
        if (round == 0) {
            g_res.idle_heap = heap1 - heap0;
            g_res.idle_mapped = mapped1 - mapped0;
            g_res.idle_stacks = 1;
            // Idle CPU of the whole process (its stack thread and redis's own timers).
            const double c0 = cpu_seconds(pid);
            const auto t0 = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(g_set.smoke ? 500ms : 3000ms);
            const double c1 = cpu_seconds(pid);
            const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            EXPECT_GE(c0, 0);
            g_res.idle_cpu_percent = 100.0 * (c1 - c0) / wall;
        }
        // What the connections add at both ends: the growth minus the client's own idle stack
        // (the same configuration as the server's, so the idle figure). Counted by the server's
        // stack (gazellectl: connections of veth0's queues).
        const std::string client_cmd = "ulimit -n $(ulimit -Hn) && exec /usr/bin/redis-benchmark -h " +
                                       std::string(k_server_ip) + " -p " + p + " -c " + std::to_string(conns) + " -I";
        Child client(preloaded(client_conf, {"/bin/sh", "-c", client_cmd}, "GAZELLE_BIND_PROCNAME=redis-benchmark"));
        ASSERT_NO_FATAL_FAILURE(wait_attached("redis-benchmark", round + 1));
        const double client_rss0 = rss_bytes(client.pid()); // its stack is up, few connections yet
        int connected = 0;
        const auto deadline = std::chrono::steady_clock::now() + (g_set.smoke ? 30s : 120s);
        while (std::chrono::steady_clock::now() < deadline && connected < conns && client.running()) {
            std::this_thread::sleep_for(300ms);
            connected = server_connections();
        }
        EXPECT_EQ(connected, conns) << "idle connections established (client output:\n" << client.transcript() << ")";
        Results::Conns r;
        r.wanted = conns;
        if (connected == conns && client.running()) {
            double heap2 = 0, mapped2 = 0;
            memory(heap2, mapped2);
            r.done = connected;
            r.heap = heap2 - heap1 - g_res.idle_heap;
            r.mapped = mapped2 - mapped1 - g_res.idle_mapped;
            r.rss = rss_bytes(pid) - server_rss0 + rss_bytes(client.pid()) - client_rss0;
        }
        g_res.conns.push_back(r);
        // redis-benchmark -I never closes its connections: SIGKILLed, the manager reclaims its
        // queue (the server keeps the dead peers' connections until it exits).
        EXPECT_TRUE(client.kill(SIGKILL));
        (void)client.wait(30s);
        const auto reclaimed_by = std::chrono::steady_clock::now() + 20s;
        while (reclaims_of(client.pid()).empty() && std::chrono::steady_clock::now() < reclaimed_by) {
            drain_mgr(50ms);
        }
        EXPECT_FALSE(reclaims_of(client.pid()).empty()) << "the killed client's queue was not reclaimed";
        (void)run_client({"/usr/bin/redis-cli", "-h", k_server_ip, "-p", p, "shutdown", "nosave"}, &client_conf, 10s, &ok);
        EXPECT_TRUE(server.wait_success(30s)) << "redis-server did not exit cleanly";
        if (r.done == 0) {
            break;
        }
    }
}

// --- the table -------------------------------------------------------------------------------------

std::string ratio(double measured, double baseline) {
    char text[32];
    if (measured <= 0 || baseline <= 0) {
        return "-";
    }
    std::snprintf(text, sizeof text, "%.2fx", measured / baseline);
    return text;
}

void print_results() {
    // The latency distributions, for the plot.
    for (const auto& [run, pct] : g_res.rr) {
        for (const auto& [p, us] : pct) {
            std::printf("plot rr \"%s\" %s %.3f\n", run.c_str(), p.c_str(), us);
        }
    }
    std::printf("figure                                             baseline     measured     ratio   note\n");
    const auto& k = g_res.rr["kernel"];
    const auto& f = g_res.rr["fabric"];
    for (const auto& [p, label] : std::vector<std::pair<std::string, std::string>>{
             {"50.000", "p50"}, {"99.000", "p99"}, {"99.900", "p99.9"}}) {
        const double kv = k.count(p) ? k.at(p) : 0;
        const double fv = f.count(p) ? f.at(p) : 0;
        std::string note = "kernel loopback = baseline";
        if (label == "p50") {
            note = fv > 0 && kv > 0 && fv <= 0.25 * kv ? "target <= 0.25x: met" : "target <= 0.25x: missed";
        }
        std::printf("TCP RR %-6s latency, us (sockperf, fabric)  %8.1f     %8.1f  %8s   %s\n", label.c_str(), kv, fv,
                    ratio(fv, kv).c_str(), note.c_str());
    }
    for (const auto& [key, r] : g_res.redis) {
        std::printf("redis %-3s -c %-3d ops/s (fabric)               %9.0f    %9.0f  %8s   kernel loopback = baseline\n",
                    key.first.c_str(), key.second, r.kernel_rps, r.fabric_rps, ratio(r.fabric_rps, r.kernel_rps).c_str());
        std::printf("redis %-3s -c %-3d p50 latency, ms (fabric)     %9.3f    %9.3f  %8s\n", key.first.c_str(),
                    key.second, r.kernel_p50, r.fabric_p50, ratio(r.fabric_p50, r.kernel_p50).c_str());
    }
    const auto& own = g_res.rr["fabric 2 stacks own-queue"];
    const auto& other = g_res.rr["fabric 2 stacks other-queue"];
    for (const auto& [p, label] : std::vector<std::pair<std::string, std::string>>{
             {"50.000", "p50"}, {"99.000", "p99"}, {"99.900", "p99.9"}}) {
        const double ov = own.count(p) ? own.at(p) : 0;
        const double xv = other.count(p) ? other.at(p) : 0;
        std::printf("mis-steering penalty, RR %-6s us               %8.1f     %8.1f  %8s   %s\n", label.c_str(), ov, xv,
                    ratio(xv, ov).c_str(), label == "p50" ? "all replies forwarded vs none (client: 2 stacks)" : "");
    }
    std::printf("  forwarded replies (veth1 forwarded_out): own-queue %llu, other-queue %llu\n",
                static_cast<unsigned long long>(g_res.fwd_own), static_cast<unsigned long long>(g_res.fwd_other));
    std::printf("hugepages per idle stack, KiB (heap allocated)            %10.1f             redis-server, 1 stack\n",
                g_res.idle_heap / 1024);
    std::printf("hugepages per idle stack, KiB (pages mapped)              %10.1f\n", g_res.idle_mapped / 1024);
    for (const auto& c : g_res.conns) {
        const double per10k = c.done > 0 ? 10000.0 / c.done : 0;
        std::printf("hugepages per 10k connections, MiB (heap), %6d conns   %10.2f             both ends%s\n",
                    c.wanted, c.heap * per10k / 1048576, c.done == c.wanted ? "" : " (NOT all established)");
        std::printf("hugepages per 10k connections, MiB (mapped), %6d conns %10.2f\n", c.wanted,
                    c.mapped * per10k / 1048576);
        std::printf("resident memory per 10k connections, MiB, %6d conns   %10.2f             both ends, all memory\n",
                    c.wanted, c.rss * per10k / 1048576);
    }
    std::printf("CPU of an idle stack, %% of one CPU                         %10.2f             stack_interrupt = 1\n",
                g_res.idle_cpu_percent);
    std::printf("sockperf latency is half a round trip; ratio = measured / baseline; same run, shared 2-CPU machine.\n");
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
            g_set.seconds = 1;
            g_set.conns = {100, 200};
            g_set.redis_requests = 400;
        } else if (a == "--conns" && i + 1 < argc) {
            g_set.conns.clear();
            std::istringstream list(argv[++i]);
            for (std::string n; std::getline(list, n, ',');) {
                g_set.conns.push_back(std::atoi(n.c_str()));
            }
        } else if (a == "--seconds" && i + 1 < argc) {
            g_set.seconds = std::atoi(argv[++i]);
        }
    }
    const int rc = RUN_ALL_TESTS();
    std::fflush(stdout);
    gazelle::test::print_results();
    return rc;
}
