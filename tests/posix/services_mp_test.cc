// SPDX-License-Identifier: BSD-3-Clause
// Three unmodified services on one fabric port at once: redis-server, nginx (master + 2 workers)
// and memcached, all preloaded with liblstack.so and listening on veth0 (198.18.0.1), so their
// four stacks share that port's four queues (and forward each other's misdirected packets). One
// preloaded load client (services_load_actor) on veth1 keeps four connections to each busy and
// checks every reply. Under that load one service is SIGKILLed (each in turn, one test each):
// the manager must reclaim its queues, the two others must see no failed request at all, across
// the kill, the reclaim and the restart; the restarted service must serve again, without errors.
// At the end every process still running stops cleanly and must detach with nothing left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

using Clock = std::chrono::steady_clock;

const char* const k_services[] = {"redis", "http", "memcached"};
constexpr int k_connections = 4;    // per service
constexpr int k_request_timeout_ms = 10000; // a request slower than this is a failure

// One "REPORT" line of the load client.
struct Snapshot {
    std::map<std::string, long long> ok, fail, max_us, fresh;
    Clock::time_point at;
};

long long ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

// The number in "... in 123 us" at the end of a reclaim line.
long long reclaim_usec(const std::string& line) {
    const auto in = line.rfind(" in ");
    return in == std::string::npos ? -1 : std::atoll(line.c_str() + in + 4);
}

class Services : public PosixFabricTest, public ::testing::WithParamInterface<std::string> {
protected:
    int port(int offset) const { return 33000 + static_cast<int>(getpid() % 10000) + offset; }

    void SetUp() override {
        // Room for three services' lwIP memory within the memory preallocated at start
        // (dpdk.memory_mb): pages mapped or freed at run time, as a victim restarts or is
        // reclaimed, stalled its neighbours for seconds (doc/reliability.md).
        mgr_config_edits_.emplace_back("extra_args = [", "memory_mb = 1024; extra_args = [");
        PosixFabricTest::SetUp();
        if (HasFatalFailure()) {
            return;
        }
        redis_port_ = port(0);
        http_port_ = port(1);
        memcached_port_ = port(2);
        data_dir_ = dir_.path() + "/redis";
        ASSERT_EQ(mkdir(data_dir_.c_str(), 0755), 0);
        ASSERT_EQ(mkdir((dir_.path() + "/www").c_str(), 0755), 0);
        std::string page = "three services share veth0; this is nginx\n";
        for (int i = 0; i < 40; ++i) {
            page += "line " + std::to_string(i) + " of the page nginx serves under load\n";
        }
        page_path_ = dir_.write("www/page.html", page);
    }

    void TearDown() override {
        if (HasFailure() && killed_at_) {
            read_mgr_timed(0ms);
            read_servers();
            std::printf("%s", timeline(*killed_at_).c_str());
            // Lines read without a time (attach lines, read by wait_attached()).
            for (std::size_t i = mgr_log_.size() > 40 ? mgr_log_.size() - 40 : 0; i < mgr_log_.size(); ++i) {
                std::printf("mgr log: %s\n", mgr_log_[i].c_str());
            }
            // nginx's workers write liblstack.so's messages to its error log, not to the pipe.
            for (int run = 0; run < nginx_runs_; ++run) {
                const std::string log = dir_.path() + "/nginx" + std::to_string(run) + "/error.log";
                std::printf("--- %s\n", log.c_str());
                std::fflush(stdout);
                (void)std::system(("tail -n 30 " + sh_quote(log)).c_str());
            }
        }
    }

    // Each start returns at once; wait_attached() tells when the service is on the fabric.
    Child start_redis() {
        return Child(preloaded(server_conf_, {"/usr/bin/redis-server", "--bind", k_server_ip, "--port",
                                              std::to_string(redis_port_), "--save", "", "--appendonly", "no",
                                              "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
                                              "--dir", data_dir_}));
    }

    Child start_memcached() {
        return Child(preloaded(server_conf_, {"/usr/bin/memcached", "-u", "root", "-l", k_server_ip, "-p",
                                              std::to_string(memcached_port_), "-U", "0", "-t", "2", "-m", "16"}));
    }

    // nginx in a process group of its own (killed at once), in the test's session: see
    // Child::ProcessGroup for why not setsid. The master never attaches, each worker does.
    Child start_nginx() {
        const std::string run = std::to_string(nginx_runs_++);
        const std::string prefix = dir_.path() + "/nginx" + run;
        EXPECT_EQ(mkdir(prefix.c_str(), 0755), 0);
        EXPECT_EQ(mkdir((prefix + "/tmp").c_str(), 0755), 0);
        // keepalive_requests: the load client's connections stay up for the whole test (a server
        // that closes first and a client that connects again can meet the TIME_WAIT reset
        // doc/user-guide.md lists, which is not what this test measures).
        const std::string conf = "daemon off;\nmaster_process on;\nuser root;\nworker_processes 2;\n"
                                 "error_log " + prefix + "/error.log notice;\npid " + prefix + "/nginx.pid;\n"
                                 "events { worker_connections 512; }\n"
                                 "http { access_log off; keepalive_timeout 300; keepalive_requests 100000000;\n"
                                 "  client_body_temp_path " + prefix + "/tmp; proxy_temp_path " + prefix + "/tmp;\n"
                                 "  fastcgi_temp_path " + prefix + "/tmp; uwsgi_temp_path " + prefix + "/tmp;\n"
                                 "  scgi_temp_path " + prefix + "/tmp;\n"
                                 "  server { listen " + std::string(k_server_ip) + ":" + std::to_string(http_port_) +
                                 "; root " + dir_.path() + "/www; } }\n";
        const std::string conf_path = dir_.write("nginx" + run + ".conf", conf);
        return Child(preloaded(server_conf_, {"/usr/sbin/nginx", "-c", conf_path, "-p", prefix},
                               "GAZELLE_BIND_PROCNAME=nginx"),
                     Child::ProcessGroup::own);
    }

    // Asks the load client for its counters. "# fail" lines read on the way are kept.
    Snapshot snapshot(Child& load) {
        EXPECT_TRUE(load.send("report"));
        return read_report(load);
    }

    Snapshot read_report(Child& load) {
        Snapshot s;
        for (const auto& line : lines_until(load, "REPORT", 30s)) {
            if (line.rfind("# fail", 0) == 0) {
                failures_.push_back(line);
            }
            if (line.rfind("REPORT", 0) != 0) {
                continue;
            }
            for (const char* name : k_services) {
                const std::string n = name;
                s.ok[n] = field(line, n + "_ok").value_or(-1);
                s.fail[n] = field(line, n + "_fail").value_or(-1);
                s.max_us[n] = field(line, n + "_max_us").value_or(-1);
                s.fresh[n] = field(line, n + "_fresh").value_or(-1);
            }
        }
        s.at = Clock::now();
        EXPECT_EQ(s.ok.size(), 3u) << "no REPORT from the load client";
        read_mgr_timed(0ms);
        read_servers();
        return s;
    }

    // Reads the manager's lines (bounded by `wait`), noting when each arrived: the timeline of a
    // kill is printed if the test fails.
    void read_mgr_timed(std::chrono::milliseconds wait) {
        const auto deadline = Clock::now() + wait;
        do {
            // 10 ms, not less: read_line() rounds what is left down to whole ms before it polls.
            while (auto line = mgr_->read_line(10ms)) {
                mgr_log_.push_back(*line);
                timeline_.emplace_back(Clock::now(), "mgr: " + *line);
            }
        } while (Clock::now() < deadline);
    }

    // The services' own output (liblstack.so's messages among it), noted in the timeline.
    void read_servers() {
        for (auto [name, child] : {std::pair{"redis-server", &redis_}, std::pair{"nginx", &nginx_},
                                   std::pair{"memcached", &memcached_}}) {
            if (!child->has_value()) {
                continue;
            }
            while (auto line = (*child)->read_line(10ms)) {
                timeline_.emplace_back(Clock::now(), std::string(name) + ": " + *line);
            }
        }
    }

    // The manager's reclaim lines of pid once its "is gone" line is there (bounded wait).
    std::vector<std::string> wait_reclaimed(pid_t pid, std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        const std::string gone = "[" + std::to_string(pid) + "] is gone without detaching";
        while (Clock::now() < deadline) {
            read_mgr_timed(2ms);
            for (const auto& line : mgr_log_) {
                if (line.find(gone) != std::string::npos) {
                    return reclaims_of(pid);
                }
            }
        }
        return {};
    }

    // What happened around the kill, in ms from it: manager lines and the load client's failures.
    std::string timeline(Clock::time_point kill_at) {
        std::vector<std::pair<long long, std::string>> events;
        for (const auto& [at, what] : timeline_) {
            events.emplace_back(ms_between(kill_at, at), what);
        }
        const long long kill_mono = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at.time_since_epoch()).count();
        for (const auto& f : failures_) {
            const auto t = field(f, "t");
            events.emplace_back(t ? *t - kill_mono : 0, "load: " + f);
        }
        std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        std::string out = "timeline (ms from the SIGKILL):\n";
        for (const auto& [ms, what] : events) {
            out += "  " + std::to_string(ms) + "  " + what + "\n";
        }
        return out;
    }

    // The "# fail" lines read so far, from the first-th on.
    std::string failures_text(std::size_t first = 0) const {
        std::string out;
        for (std::size_t i = first; i < failures_.size(); ++i) {
            out += failures_[i] + "\n";
        }
        return out;
    }

    int redis_port_ = 0, http_port_ = 0, memcached_port_ = 0;
    int nginx_runs_ = 0;
    std::string data_dir_;
    std::string page_path_;
    std::vector<std::string> failures_;
    std::vector<std::pair<Clock::time_point, std::string>> timeline_;
    std::optional<Clock::time_point> killed_at_;
    std::optional<Child> redis_, nginx_, memcached_;
};

TEST_P(Services, KillOneUnderLoadOthersSeeNoError) {
    REQUIRE_PROGRAM("/usr/bin/redis-server");
    REQUIRE_PROGRAM("/usr/sbin/nginx");
    REQUIRE_PROGRAM("/usr/bin/memcached");
    const std::string victim = GetParam(); // "redis", "http" (nginx) or "memcached"

    auto& redis = redis_;
    auto& nginx = nginx_;
    auto& memcached = memcached_;
    redis.emplace(start_redis());
    wait_attached("redis-server");
    nginx.emplace(start_nginx());
    GroupKiller nginx_group{nginx->pid()};
    wait_attached("nginx", 2);
    memcached.emplace(start_memcached());
    wait_attached("memcached");
    ASSERT_FALSE(HasFatalFailure());
    std::vector<pid_t> victim_pids = victim == "redis" ? std::vector<pid_t>{redis->pid()}
                                     : victim == "memcached" ? std::vector<pid_t>{memcached->pid()}
                                                             : attached_pids("nginx");
    ASSERT_EQ(attached_pids("nginx").size(), 2u) << "each worker attaches on its own; the master never does";

    Child load(preloaded(client_conf_, {bin_path("services_load_actor"), k_server_ip, std::to_string(redis_port_),
                                        std::to_string(http_port_), std::to_string(memcached_port_),
                                        std::to_string(k_connections), std::to_string(k_request_timeout_ms),
                                        page_path_}));
    // S0: every service has answered.
    Snapshot s0;
    const auto up_deadline = Clock::now() + 30s;
    do {
        std::this_thread::sleep_for(200ms);
        s0 = snapshot(load);
    } while ((s0.ok["redis"] <= 0 || s0.ok["http"] <= 0 || s0.ok["memcached"] <= 0) && Clock::now() < up_deadline);
    for (const char* name : k_services) {
        ASSERT_GT(s0.ok[name], 0) << name << " never answered\n" << failures_text() << load.transcript();
    }
    std::this_thread::sleep_for(3s);
    Snapshot s1 = snapshot(load);

    // SIGKILL the victim (nginx: master and both workers at once), then wait for the reclaim.
    const auto killed_at = Clock::now();
    killed_at_ = killed_at;
    if (victim == "http") {
        ASSERT_EQ(kill(-nginx->pid(), SIGKILL), 0);
        (void)nginx->wait(10s);
        nginx_group.group = 0;
        nginx.reset();
    } else {
        std::optional<Child>& server = victim == "redis" ? redis : memcached;
        ASSERT_TRUE(server->kill(SIGKILL));
        (void)server->wait(10s);
        server.reset();
    }
    // Dead now: a socket the load client connects from here on reaches the restarted server.
    ASSERT_TRUE(load.send("mark"));
    std::vector<std::string> reclaim_lines;
    long long reclaim_us = 0;
    for (pid_t pid : victim_pids) {
        auto lines = wait_reclaimed(pid, 20s);
        ASSERT_FALSE(lines.empty()) << "no reclaim of the killed " << victim << " pid " << pid;
        for (const auto& line : lines) {
            // "(grace wait timed out)" is possible on a loaded machine (a live stack not scheduled
            // for 200 ms); it is shown with the figures, the fabric's own tests judge it.
            reclaim_us += reclaim_usec(line);
            reclaim_lines.push_back(line);
        }
    }
    const auto reclaimed_at = Clock::now();
    // The others go on while the victim is away.
    std::this_thread::sleep_for(1s);
    Snapshot s2 = snapshot(load);

    // Restart it: it takes back the reclaimed queue(s) of veth0 (the four are in use otherwise).
    const auto restarted_at = Clock::now();
    GroupKiller new_group;
    if (victim == "redis") {
        redis.emplace(start_redis());
        wait_attached("redis-server", 2);
    } else if (victim == "memcached") {
        memcached.emplace(start_memcached());
        wait_attached("memcached", 2);
    } else {
        nginx.emplace(start_nginx());
        new_group.group = nginx->pid();
        wait_attached("nginx", 4);
    }
    ASSERT_FALSE(HasFatalFailure());
    Snapshot s3;
    const auto serve_deadline = Clock::now() + 40s; // the victim's old connections may sit in a 10 s timeout
    do {
        std::this_thread::sleep_for(100ms);
        s3 = snapshot(load);
    } while (s3.ok[victim] <= s2.ok[victim] && Clock::now() < serve_deadline);
    ASSERT_GT(s3.ok[victim], s2.ok[victim]) << victim << " does not serve again after its restart\n" << failures_text();
    const Snapshot s3_at_serving = s3;
    // Every load connection of the victim has been made again and answered by the restarted
    // server: one that was open to the killed server fails (reset, or its receive timeout) only
    // when it next sends, which may be after another connection was answered already. From here
    // on, no failure is expected.
    while (s3.fresh[victim] < k_connections && Clock::now() < serve_deadline) {
        std::this_thread::sleep_for(100ms);
        s3 = snapshot(load);
    }
    ASSERT_EQ(s3.fresh[victim], k_connections)
        << victim << ": not every load connection was answered again after the restart\n" << failures_text();
    ASSERT_TRUE(load.send("reprint")); // any failure from here on is a finding: show it
    const std::size_t failures_before_serving = failures_.size();
    std::this_thread::sleep_for(3s);
    Snapshot s4 = snapshot(load);
    ASSERT_TRUE(load.send("stop"));
    Snapshot s5 = read_report(load);
    EXPECT_TRUE(load.expect("load done", 30s)) << load.transcript();
    EXPECT_TRUE(load.wait_success(20s));

    // The two others: not one failed request, from the first connection to the last, and they
    // kept serving in every window (across the kill, while the victim was away, after its restart).
    for (const char* name : k_services) {
        if (name == victim) {
            continue;
        }
        EXPECT_EQ(s5.fail[name], 0) << name << " saw failures (the victim was " << victim << ")\n" << failures_text();
        EXPECT_GT(s2.ok[name], s1.ok[name]) << name << " stalled while " << victim << " was killed and reclaimed";
        EXPECT_GT(s3.ok[name], s2.ok[name]) << name << " stalled while " << victim << " restarted";
        EXPECT_GT(s5.ok[name], s3.ok[name]) << name << " stalled after " << victim << " restarted";
    }
    // The victim: served before the kill, failed only between the kill and serving again.
    EXPECT_EQ(s1.fail[victim], 0) << failures_text();
    EXPECT_GT(s1.ok[victim], s0.ok[victim]);
    EXPECT_GT(s4.ok[victim], s3.ok[victim]) << victim << " stopped serving after its restart";
    EXPECT_EQ(s5.fail[victim], s3.fail[victim])
        << victim << " failed requests after it served again:\n"
        << failures_text(failures_before_serving) << "every failure:\n"
        << failures_text();

    // Every process still running stops cleanly and leaves nothing behind.
    std::vector<pid_t> detach;
    detach.push_back(load.pid());
    detach.push_back(redis->pid());
    detach.push_back(memcached->pid());
    for (pid_t pid : attached_pids("nginx")) {
        if (std::find(victim_pids.begin(), victim_pids.end(), pid) == victim_pids.end()) {
            detach.push_back(pid);
        }
    }
    ASSERT_TRUE(redis->kill(SIGTERM));
    EXPECT_TRUE(redis->wait_success(20s)) << "redis-server did not exit cleanly";
    ASSERT_TRUE(memcached->kill(SIGINT));
    EXPECT_TRUE(memcached->wait_success(20s)) << "memcached did not exit cleanly";
    ASSERT_TRUE(nginx->kill(SIGQUIT));
    EXPECT_TRUE(nginx->wait_success(20s)) << "nginx did not exit cleanly";
    for (pid_t pid : detach) {
        expect_clean_detach(pid);
    }

    // Figures. Windows: before the kill (s0..s1), from the kill to the victim serving again
    // (s1..s3), after that (s3..s5).
    const std::string shown = victim == "http" ? "nginx" : victim;
    std::printf("SIGKILL of %s under load (veth0: redis-server, nginx 2 workers, memcached; %d connections each)\n",
                shown.c_str(), k_connections);
    std::printf("  reclaimed %zu queue(s) %lld ms after the kill (manager's reclaim work %lld us in all)\n",
                reclaim_lines.size(), ms_between(killed_at, reclaimed_at), reclaim_us);
    for (const auto& line : reclaim_lines) {
        std::printf("    %s\n", line.c_str());
    }
    std::printf("  restarted %lld ms after the kill; serving again %lld ms after the restart\n",
                ms_between(killed_at, restarted_at), ms_between(restarted_at, s3_at_serving.at));
    std::printf("  %-10s %18s %22s %18s %16s\n", "service", "before kill ok/err", "kill..serving ok/err",
                "after ok/err", "slowest in kill");
    for (const char* name : k_services) {
        const std::string label = std::string(name) == "http" ? "nginx" : name;
        const std::string before = std::to_string(s1.ok[name] - s0.ok[name]) + "/" + std::to_string(s1.fail[name]);
        const std::string during =
            std::to_string(s3.ok[name] - s1.ok[name]) + "/" + std::to_string(s3.fail[name] - s1.fail[name]);
        const std::string after =
            std::to_string(s5.ok[name] - s3.ok[name]) + "/" + std::to_string(s5.fail[name] - s3.fail[name]);
        const std::string slowest = std::to_string(std::max(s2.max_us[name], 0LL) / 1000) + " ms";
        std::printf("  %-10s %18s %22s %18s %16s\n", label.c_str(), before.c_str(), during.c_str(), after.c_str(),
                    name == victim ? "-" : slowest.c_str());
    }
    if (!failures_.empty()) {
        std::printf("  first failures seen by the load client:\n");
        for (const auto& f : failures_) {
            std::printf("    %s\n", f.c_str());
        }
    }
}

// Each service as the victim, in CI. (redis and nginx as victims were disabled while two of their
// runs in three failed on a stack starved by the kernel's group scheduling: see start_nginx().)
INSTANTIATE_TEST_SUITE_P(EachVictim, Services, ::testing::Values("redis", "http", "memcached"),
                         [](const ::testing::TestParamInfo<std::string>& victim_info) {
                             return victim_info.param == "http" ? std::string("nginx") : victim_info.param;
                         });

} // namespace
} // namespace gazelle::test
