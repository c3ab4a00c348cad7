// SPDX-License-Identifier: BSD-3-Clause
// Real, unmodified programs from Debian, preloaded with liblstack.so: servers on veth0
// (198.18.0.1), clients on veth1 (198.18.0.2), through a real gazelle-mgr; the same commands on
// kernel loopback in the same run give the comparison numbers. Every run is bounded (small
// request counts, short durations, timeouts), every process is stopped, and every preloaded
// process must detach cleanly (the manager finds nothing to reclaim).
//
// Programs (installed by tools/setup): redis-server, redis-benchmark, redis-cli, nginx (light),
// curl, wrk, memcached (+ nc as its client), iperf3, sockperf.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

// "NAME: 1234.56 requests per second, ..." segments of redis-benchmark -q output (progress
// updates share the line, separated by '\r').
std::map<std::string, double> redis_rates(const std::vector<std::string>& lines) {
    std::map<std::string, double> rates;
    for (const auto& line : lines) {
        std::istringstream parts(line);
        std::string seg;
        while (std::getline(parts, seg, '\r')) {
            const auto at = seg.find(" requests per second");
            const auto colon = seg.find(": ");
            if (at == std::string::npos || colon == std::string::npos || colon > at) {
                continue;
            }
            std::string name = seg.substr(0, colon);
            name.erase(0, name.find_first_not_of(' '));
            rates[name] = std::stod(seg.substr(colon + 2, at - colon - 2));
        }
    }
    return rates;
}

// The first number after `key` in any line (e.g. "Requests/sec:", "avg-latency=").
std::optional<double> number_after(const std::vector<std::string>& lines, const std::string& key) {
    for (const auto& line : lines) {
        const auto at = line.find(key);
        if (at == std::string::npos) {
            continue;
        }
        std::size_t i = at + key.size();
        while (i < line.size() && (line[i] == ' ' || line[i] == '=')) {
            ++i;
        }
        try {
            return std::stod(line.substr(i));
        } catch (...) {
            continue;
        }
    }
    return std::nullopt;
}

class Apps : public PosixFabricTest {
protected:
    int port(int offset) const { return 22000 + static_cast<int>(getpid() % 10000) + offset; }

    // Runs a client to completion (bounded) and returns its output.
    std::vector<std::string> run_client(std::vector<std::string> argv, bool fabric, std::chrono::milliseconds timeout,
                                        bool* ok = nullptr, pid_t* pid = nullptr, const std::string& extra_env = "") {
        Child client(fabric ? preloaded(client_conf_, argv, extra_env) : plain(argv));
        auto lines = lines_until(client, "", timeout);
        const bool success = client.wait_success(5s);
        if (ok != nullptr) {
            *ok = success;
        }
        if (pid != nullptr) {
            *pid = client.pid();
        }
        drain_mgr();
        return lines;
    }
};

// --- redis ------------------------------------------------------------------------------------------

TEST_F(Apps, RedisBenchmarkEveryCommandPipeliningManyClients) {
    REQUIRE_PROGRAM("/usr/bin/redis-server");
    REQUIRE_PROGRAM("/usr/bin/redis-benchmark");
    REQUIRE_PROGRAM("/usr/bin/redis-cli");
    struct Side {
        std::map<std::string, double> all, pipelined, many;
    };
    std::map<bool, Side> sides;
    for (const bool fabric : {false, true}) {
        const std::string ip = fabric ? k_server_ip : "127.0.0.1";
        const std::string p = std::to_string(port(fabric ? 1 : 0));
        const std::string data_dir = dir_.path() + (fabric ? "/redis-fabric" : "/redis-kernel");
        ASSERT_EQ(mkdir(data_dir.c_str(), 0755), 0);
        const std::vector<std::string> server_argv{"/usr/bin/redis-server", "--bind", ip, "--port", p, "--save", "",
                                                   "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                                                   "--loglevel", "warning", "--dir", data_dir};
        Child server(fabric ? preloaded(server_conf_, server_argv) : plain(server_argv));
        // redis-cli: a value round trip, 100 kB, checked.
        bool ok = false;
        std::vector<std::string> pong;
        for (int i = 0; i < 50 && pong.empty(); ++i) {
            std::this_thread::sleep_for(100ms);
            auto out = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "ping"}, fabric, 10s, &ok);
            for (const auto& l : out) {
                if (l == "PONG") {
                    pong.push_back(l);
                }
            }
        }
        ASSERT_FALSE(pong.empty()) << "redis-server did not answer" << (fabric ? " (fabric)" : "");
        const std::string big(100000, 'v');
        auto set = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "set", "big", big}, fabric, 10s, &ok);
        EXPECT_TRUE(ok);
        auto get = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "strlen", "big"}, fabric, 10s, &ok);
        EXPECT_NE(std::find(get.begin(), get.end(), "100000"), get.end()) << joined(get);
        // Every command of redis-benchmark -t (the default set), then pipelining, then many clients.
        auto all = run_client({"/usr/bin/redis-benchmark", "-h", ip, "-p", p, "-n", "2000", "-c", "20", "-q"}, fabric, 120s,
                              &ok);
        EXPECT_TRUE(ok) << joined(all);
        sides[fabric].all = redis_rates(all);
        auto piped = run_client({"/usr/bin/redis-benchmark", "-h", ip, "-p", p, "-n", "20000", "-c", "10", "-P", "16",
                                 "-t", "set,get", "-q"},
                                fabric, 60s, &ok);
        EXPECT_TRUE(ok) << joined(piped);
        sides[fabric].pipelined = redis_rates(piped);
        auto many = run_client({"/usr/bin/redis-benchmark", "-h", ip, "-p", p, "-n", "4000", "-c", "200", "-t", "ping,set",
                                "-q"},
                               fabric, 60s, &ok);
        EXPECT_TRUE(ok) << joined(many);
        sides[fabric].many = redis_rates(many);
        // BGSAVE: redis forks a child that writes the data set; on the fabric that child is the
        // child of an attached process (it only closes the sockets it inherited).
        auto bg = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "bgsave"}, fabric, 10s, &ok);
        EXPECT_NE(std::find(bg.begin(), bg.end(), "Background saving started"), bg.end()) << joined(bg);
        bool saved = false;
        for (int i = 0; i < 50 && !saved; ++i) {
            std::this_thread::sleep_for(100ms);
            auto info = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "info", "persistence"}, fabric, 10s, &ok);
            const bool idle = std::find(info.begin(), info.end(), "rdb_bgsave_in_progress:0\r") != info.end();
            const bool good = std::find(info.begin(), info.end(), "rdb_last_bgsave_status:ok\r") != info.end();
            saved = idle && good;
        }
        EXPECT_TRUE(saved) << "BGSAVE did not complete";
        struct stat rdb {};
        EXPECT_EQ(stat((data_dir + "/dump.rdb").c_str(), &rdb), 0) << "no dump.rdb";
        auto down = run_client({"/usr/bin/redis-cli", "-h", ip, "-p", p, "shutdown", "nosave"}, fabric, 10s, &ok);
        EXPECT_TRUE(server.wait_success(20s)) << "redis-server did not exit cleanly";
        if (fabric) {
            expect_clean_detach(server.pid());
            for (pid_t pid : attached_pids("redis-benchmark")) {
                expect_clean_detach(pid);
            }
        }
    }
    const auto& k = sides[false];
    const auto& f = sides[true];
    EXPECT_GE(k.all.size(), 18u) << "redis-benchmark's default test list";
    EXPECT_EQ(f.all.size(), k.all.size()) << "every command ran over the fabric";
    std::printf("redis-benchmark requests/s     kernel loopback    fabric (preloaded)\n");
    for (const auto& [name, rate] : k.all) {
        const auto it = f.all.find(name);
        std::printf("  %-36s %10.0f %12.0f\n", name.c_str(), rate, it == f.all.end() ? 0.0 : it->second);
        EXPECT_NE(it, f.all.end()) << name << " missing over the fabric";
    }
    for (const auto& [name, rate] : k.pipelined) {
        const auto it = f.pipelined.find(name);
        std::printf("  %-36s %10.0f %12.0f\n", ("-P 16 " + name).c_str(), rate, it == f.pipelined.end() ? 0.0 : it->second);
        EXPECT_NE(it, f.pipelined.end());
    }
    for (const auto& [name, rate] : k.many) {
        const auto it = f.many.find(name);
        std::printf("  %-36s %10.0f %12.0f\n", ("-c 200 " + name).c_str(), rate, it == f.many.end() ? 0.0 : it->second);
        EXPECT_NE(it, f.many.end());
    }
}

// --- nginx ------------------------------------------------------------------------------------------

TEST_F(Apps, NginxWorkersServeCurlAndWrk) {
    REQUIRE_PROGRAM("/usr/sbin/nginx");
    if (sanitizer_preload()) {
        GTEST_SKIP() << "curl hangs in setlocale() with the ASan runtime preloaded (liblstack.so or not)";
    }
    REQUIRE_PROGRAM("/usr/bin/curl");
    REQUIRE_PROGRAM("/usr/bin/wrk");
    const std::string root = dir_.path() + "/www";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    (void)dir_.write("www/index.html", "hello from nginx on the fabric\n");
    std::string big;
    for (int i = 0; i < 200000; ++i) {
        big += static_cast<char>('a' + (i * 7 + i / 26) % 26);
    }
    (void)dir_.write("www/big.txt", big);
    std::map<bool, double> small_rate;
    std::map<bool, double> big_rate;
    for (const bool fabric : {false, true}) {
        const std::string ip = fabric ? k_server_ip : "127.0.0.1";
        const std::string p = std::to_string(port(fabric ? 11 : 10));
        const std::string prefix = dir_.path() + (fabric ? "/ngf" : "/ngk");
        ASSERT_EQ(mkdir(prefix.c_str(), 0755), 0);
        ASSERT_EQ(mkdir((prefix + "/tmp").c_str(), 0755), 0);
        // Workers run as root: the manager's socket is for root and its group.
        const std::string conf = "daemon off;\nmaster_process on;\nuser root;\nworker_processes 2;\n"
                                 "error_log " + prefix + "/error.log notice;\npid " + prefix + "/nginx.pid;\n"
                                 "events { worker_connections 512; }\n"
                                 "http { access_log off; sendfile on; tcp_nopush on; keepalive_timeout 30;\n"
                                 "  keepalive_requests 100;\n" // nginx closes first, wrk connects again: many times
                                 "  client_body_temp_path " + prefix + "/tmp; proxy_temp_path " + prefix + "/tmp;\n"
                                 "  fastcgi_temp_path " + prefix + "/tmp; uwsgi_temp_path " + prefix + "/tmp;\n"
                                 "  scgi_temp_path " + prefix + "/tmp;\n"
                                 "  server { listen " + ip + ":" + p + "; root " + root + "; } }\n";
        const std::string conf_path = dir_.write(std::string(fabric ? "ngf" : "ngk") + ".conf", conf);
        // In a process group of its own (not a session: see Child::ProcessGroup): the group,
        // master and workers, is killed if the test fails.
        const std::vector<std::string> argv{"/usr/sbin/nginx", "-c", conf_path, "-p", prefix};
        Child master(fabric ? preloaded(server_conf_, argv, "GAZELLE_BIND_PROCNAME=nginx") : plain(argv),
                     Child::ProcessGroup::own);
        GroupKiller group{master.pid()};
        const std::string url = "http://" + ip + ":" + p;
        bool ok = false;
        std::vector<std::string> page;
        for (int i = 0; i < 50; ++i) {
            std::this_thread::sleep_for(100ms);
            page = run_client({"/usr/bin/curl", "-s", "--max-time", "5", url + "/index.html"}, fabric, 10s, &ok);
            if (ok) {
                break;
            }
        }
        ASSERT_TRUE(ok) << "nginx did not answer" << (fabric ? " (fabric)" : "") << joined(page);
        EXPECT_NE(std::find(page.begin(), page.end(), "hello from nginx on the fabric"), page.end()) << joined(page);
        const std::string out = dir_.path() + (fabric ? "/big.fabric" : "/big.kernel");
        (void)run_client({"/usr/bin/curl", "-s", "--max-time", "10", "-o", out, url + "/big.txt"}, fabric, 15s, &ok);
        EXPECT_TRUE(ok);
        std::string got;
        if (FILE* f = std::fopen(out.c_str(), "rb"); f != nullptr) {
            char chunk[65536];
            std::size_t n = 0;
            while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
                got.append(chunk, n);
            }
            std::fclose(f);
        }
        EXPECT_EQ(got.size(), big.size());
        EXPECT_TRUE(got == big) << "the 200 kB file (sendfile) arrived intact";
        auto w1 = run_client({"/usr/bin/wrk", "-t1", "-c16", "-d2s", url + "/index.html"}, fabric, 30s, &ok);
        EXPECT_TRUE(ok) << joined(w1);
        small_rate[fabric] = number_after(w1, "Requests/sec:").value_or(0);
        // Every 100th response closes its connection (server first: its end waits in TIME_WAIT)
        // and wrk connects again from a new port; none of those connects may fail.
        EXPECT_EQ(std::find_if(w1.begin(), w1.end(),
                               [](const std::string& line) { return line.find("Socket errors") != std::string::npos; }),
                  w1.end())
            << joined(w1);
        auto w2 = run_client({"/usr/bin/wrk", "-t1", "-c8", "-d2s", "--timeout", "4s", url + "/big.txt"}, fabric, 30s, &ok);
        EXPECT_TRUE(ok) << joined(w2);
        big_rate[fabric] = number_after(w2, "Requests/sec:").value_or(0);
        std::printf("wrk %s:\n%s", fabric ? "fabric" : "kernel", joined(w1).c_str());
        EXPECT_GT(small_rate[fabric], 0) << joined(w1);
        EXPECT_GT(big_rate[fabric], 0) << joined(w2);
        const std::vector<pid_t> workers = fabric ? attached_pids("nginx") : std::vector<pid_t>{};
        ASSERT_TRUE(master.kill(SIGQUIT)); // graceful shutdown
        EXPECT_TRUE(master.wait_success(20s)) << "nginx did not exit cleanly";
        if (fabric) {
            EXPECT_EQ(workers.size(), 2u) << "each worker attaches on its own; the master never does";
            for (pid_t pid : workers) {
                expect_clean_detach(pid);
            }
            for (pid_t pid : attached_pids("curl")) {
                expect_clean_detach(pid);
            }
            for (pid_t pid : attached_pids("wrk")) {
                expect_clean_detach(pid);
            }
        }
    }
    std::printf("nginx (2 workers) + wrk       kernel loopback    fabric (preloaded)\n");
    std::printf("  index.html requests/s        %10.0f %12.0f\n", small_rate[false], small_rate[true]);
    std::printf("  200 kB file requests/s       %10.0f %12.0f\n", big_rate[false], big_rate[true]);
}

// --- memcached ----------------------------------------------------------------------------------------

TEST_F(Apps, MemcachedWithThreadsAnswersNc) {
    REQUIRE_PROGRAM("/usr/bin/memcached");
    REQUIRE_PROGRAM("/usr/bin/nc");
    const std::string p = std::to_string(port(20));
    const std::vector<std::string> argv{"/usr/bin/memcached", "-u", "root", "-l", k_server_ip, "-p", p, "-U", "0",
                                        "-t", "2", "-m", "16"};
    Child server(preloaded(server_conf_, argv));
    const std::string script = dir_.write("mc.txt", "set k 0 0 5\r\nhello\r\nget k\r\nset n 0 0 1\r\n5\r\n"
                                                      "incr n 10\r\ndelete k\r\nget k\r\nquit\r\n");
    std::vector<std::string> out;
    bool ok = false;
    for (int i = 0; i < 50; ++i) {
        std::this_thread::sleep_for(100ms);
        out = run_client({"/bin/sh", "-c", "exec /usr/bin/nc -q 2 " + std::string(k_server_ip) + " " + p + " < " + script},
                         true, 15s, &ok, nullptr, "GAZELLE_BIND_PROCNAME=nc");
        if (std::find(out.begin(), out.end(), "STORED\r") != out.end()) {
            break;
        }
    }
    // nc through /bin/sh (for its stdin): GAZELLE_BIND_PROCNAME=nc keeps the shell inert.
    EXPECT_NE(std::find(out.begin(), out.end(), "STORED\r"), out.end()) << joined(out);
    EXPECT_NE(std::find(out.begin(), out.end(), "hello\r"), out.end()) << joined(out);
    EXPECT_NE(std::find(out.begin(), out.end(), "15\r"), out.end()) << joined(out);
    EXPECT_NE(std::find(out.begin(), out.end(), "DELETED\r"), out.end()) << joined(out);
    // Many connections at once (4 threads x 8 connections, set + get checked), from one process:
    // each preloaded process holds its own queue, and veth1 has two.
    pid_t load_pid = 0;
    auto load = run_client({bin_path("posix_calls_actor"), "client", "memcache", k_server_ip, p}, true, 60s, &ok, &load_pid);
    EXPECT_TRUE(ok) << joined(load);
    EXPECT_NE(std::find(load.begin(), load.end(), "memcache threads=4 connections=32 ok=4"), load.end()) << joined(load);
    expect_clean_detach(load_pid);
    ASSERT_TRUE(server.kill(SIGINT));
    EXPECT_TRUE(server.wait_success(20s)) << "memcached did not exit cleanly";
    expect_clean_detach(server.pid());
    for (pid_t pid : attached_pids("nc")) {
        expect_clean_detach(pid);
    }
}

// --- iperf3 -------------------------------------------------------------------------------------------

TEST_F(Apps, Iperf3TcpBothEndsPreloaded) {
    REQUIRE_PROGRAM("/usr/bin/iperf3");
    std::map<bool, double> gbps;
    for (const bool fabric : {false, true}) {
        const std::string ip = fabric ? k_server_ip : "127.0.0.1";
        const std::string p = std::to_string(port(fabric ? 31 : 30));
        const std::vector<std::string> server_argv{"/usr/bin/iperf3", "-s", "-1", "--forceflush", "-B", ip, "-p", p};
        Child server(fabric ? preloaded(server_conf_, server_argv) : plain(server_argv));
        ASSERT_TRUE(server.expect("Server listening", 20s)) << server.transcript();
        if (fabric) {
            wait_attached("iperf3");
        }
        bool ok = false;
        pid_t client_pid = 0;
        auto out = run_client({"/usr/bin/iperf3", "-c", ip, "-p", p, "-t", "2", "-f", "g"}, fabric, 30s, &ok, &client_pid);
        EXPECT_TRUE(ok) << joined(out);
        for (const auto& line : out) {
            const auto unit = line.find(" Gbits/sec");
            if (line.find("sender") != std::string::npos && unit != std::string::npos) {
                const auto start = line.rfind(' ', unit - 1);
                gbps[fabric] = std::stod(line.substr(start + 1, unit - start - 1));
            }
        }
        EXPECT_GT(gbps[fabric], 0.0) << joined(out);
        EXPECT_TRUE(server.wait_success(20s)) << server.transcript();
        if (fabric) {
            expect_clean_detach(server.pid());
            expect_clean_detach(client_pid);
        }
    }
    std::printf("iperf3 TCP, 2 s                kernel loopback %6.2f Gbit/s, fabric (preloaded) %6.2f Gbit/s\n",
                gbps[false], gbps[true]);
}

// iperf3 -u: its server connect()s the UDP socket the first datagram reached and binds a second
// one to the same port (SO_REUSEADDR) for the next stream: several UDP sockets of one stack share
// a port, datagrams go to the connected one whose peer sent them.
TEST_F(Apps, Iperf3UdpBothEndsPreloaded) {
    REQUIRE_PROGRAM("/usr/bin/iperf3");
    const std::string p = std::to_string(port(32));
    Child server(preloaded(server_conf_, {"/usr/bin/iperf3", "-s", "-1", "--forceflush", "-B", k_server_ip, "-p", p}));
    ASSERT_TRUE(server.expect("Server listening", 20s)) << server.transcript();
    wait_attached("iperf3");
    bool ok = false;
    pid_t client_pid = 0;
    auto out = run_client({"/usr/bin/iperf3", "-c", k_server_ip, "-p", p, "-u", "-b", "200M", "-t", "2", "--forceflush"},
                          true, 30s, &ok, &client_pid);
    EXPECT_TRUE(ok) << joined(out);
    // The receiver's summary: "... 0.00-2.00 sec  47.7 MBytes  200 Mbits/sec  0.010 ms  12/34567 (0.035%)  receiver"
    std::string receiver;
    for (const auto& l : out) {
        if (l.find("receiver") != std::string::npos) {
            receiver = l;
        }
    }
    ASSERT_FALSE(receiver.empty()) << "no receiver summary: the datagrams never reached the server's stream socket\n"
                                   << joined(out);
    const auto slash = receiver.rfind('/');
    const auto space = receiver.rfind(' ', slash);
    ASSERT_NE(slash, std::string::npos);
    const long lost = std::strtol(receiver.c_str() + space + 1, nullptr, 10);
    const long total = std::strtol(receiver.c_str() + slash + 1, nullptr, 10);
    EXPECT_GT(total, 10000) << receiver; // 200 Mbit/s of 1448-byte datagrams for 2 s: about 34000
    EXPECT_LT(lost * 10, total) << "more than 10% of the datagrams lost: " << receiver;
    std::printf("iperf3 UDP, 2 s at 200 Mbit/s, fabric (preloaded): %s\n", receiver.c_str());
    EXPECT_TRUE(server.wait_success(20s)) << server.transcript();
    expect_clean_detach(server.pid());
    expect_clean_detach(client_pid);
}

// --- sockperf -------------------------------------------------------------------------------------------

TEST_F(Apps, SockperfPingPongUdpAndTcp) {
    REQUIRE_PROGRAM("/usr/bin/sockperf");
    std::map<std::string, double> usec;
    for (const bool tcp : {false, true}) {
        for (const bool fabric : {false, true}) {
            const std::string ip = fabric ? k_server_ip : "127.0.0.1";
            const std::string p = std::to_string(port(40 + (fabric ? 1 : 0) + (tcp ? 2 : 0)));
            std::vector<std::string> server_argv{"/usr/bin/sockperf", "sr", "-i", ip, "-p", p};
            std::vector<std::string> client_argv{"/usr/bin/sockperf", "pp", "-i", ip, "-p", p, "-t", "2"};
            if (tcp) {
                server_argv.emplace_back("--tcp");
                client_argv.emplace_back("--tcp");
            }
            Child server(fabric ? preloaded(server_conf_, server_argv) : plain(server_argv));
            ASSERT_TRUE(server.expect("sockperf: [SERVER] listen on", 20s)) << server.transcript();
            if (fabric) {
                wait_attached("sockperf", tcp ? 3 : 1); // the UDP round attached a server and a client
            }
            std::this_thread::sleep_for(300ms);
            bool ok = false;
            pid_t client_pid = 0;
            auto out = run_client(client_argv, fabric, 30s, &ok, &client_pid);
            EXPECT_TRUE(ok) << joined(out);
            const auto avg = number_after(out, "Summary: Latency is");
            EXPECT_TRUE(avg.has_value()) << joined(out);
            usec[std::string(tcp ? "tcp" : "udp") + (fabric ? " fabric" : " kernel")] = avg.value_or(0);
            ASSERT_TRUE(server.kill(SIGINT));
            EXPECT_TRUE(server.wait_success(20s)) << server.transcript();
            if (fabric) {
                expect_clean_detach(server.pid());
                expect_clean_detach(client_pid);
            }
        }
    }
    std::printf("sockperf ping-pong avg latency  kernel loopback    fabric (preloaded)\n");
    std::printf("  UDP                           %8.1f us %12.1f us\n", usec["udp kernel"], usec["udp fabric"]);
    std::printf("  TCP                           %8.1f us %12.1f us\n", usec["tcp kernel"], usec["tcp fabric"]);
}

} // namespace
} // namespace gazelle::test
