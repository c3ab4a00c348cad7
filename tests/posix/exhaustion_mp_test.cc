// SPDX-License-Identifier: BSD-3-Clause
// Exhaustion (issue #8): each resource a preloaded application can run out of, through the real
// liblstack.so and a real gazelle-mgr (on a private dbus-daemon, for gazellectl's counters):
// the application gets a clean errno, a counter shows it, nothing crashes, and service resumes
// when the resource comes back. exhaustion_actor is the application (a command-driven server and
// client, see its header). Every case prints its figures ("[ exhaustion ] ..." lines).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "tests/mgr/bus_support.h"
#include "tests/posix/posix_test_support.h"

namespace gazelle::test {
namespace {

using Clock = std::chrono::steady_clock;

// "key=value" fields of an actor's reply line.
std::map<std::string, std::string> fields(const std::string& line) {
    std::map<std::string, std::string> out;
    std::istringstream in(line);
    std::string word;
    while (in >> word) {
        if (const auto eq = word.find('='); eq != std::string::npos) {
            out[word.substr(0, eq)] = word.substr(eq + 1);
        }
    }
    return out;
}

long num(const std::map<std::string, std::string>& f, const std::string& key) {
    const auto it = f.find(key);
    return it == f.end() ? -1 : std::stol(it->second);
}

std::string text(const std::map<std::string, std::string>& f, const std::string& key) {
    const auto it = f.find(key);
    return it == f.end() ? "" : it->second;
}

long ms_since(Clock::time_point t) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// One exhaustion_actor process, preloaded; commands answered with one line each.
class Actor {
public:
    Actor(std::vector<std::string> argv) : child_(std::move(argv)) {
        ready_ = child_.expect("READY", 30s).has_value();
    }
    bool ready() const { return ready_; }
    // Sends `command`, returns the first line starting with `reply` (the library's log lines are
    // skipped and kept in the transcript).
    std::map<std::string, std::string> ask(const std::string& command, const std::string& reply,
                                           std::chrono::milliseconds timeout = 30s) {
        last_.clear();
        if (!child_.send(command)) {
            ADD_FAILURE() << "actor gone before '" << command << "':\n" << child_.transcript();
            return {};
        }
        const auto line = child_.expect(reply, timeout);
        if (!line) {
            ADD_FAILURE() << "no '" << reply << "' after '" << command << "':\n" << child_.transcript();
            return {};
        }
        last_ = *line;
        return fields(*line);
    }
    const std::string& last() const { return last_; }
    bool quit() {
        (void)child_.send("quit");
        return child_.expect("BYE", 30s).has_value() && child_.wait_success(20s);
    }
    Child& child() { return child_; }

private:
    Child child_;
    bool ready_ = false;
    std::string last_;
};

class Exhaustion : public PosixFabricTest {
protected:
    Exhaustion() { mgr_args_ = "--bus '" + bus_.address() + "'"; }

    void SetUp() override {
        ASSERT_TRUE(bus_.ok()) << bus_.error();
        PosixFabricTest::SetUp();
    }

    int port(int offset) const { return 26000 + static_cast<int>(getpid() % 8000) + offset; }

    std::unique_ptr<Actor> start(const std::string& conf) {
        auto actor = std::make_unique<Actor>(preloaded(conf, {bin_path("exhaustion_actor")}));
        EXPECT_TRUE(actor->ready()) << actor->child().transcript();
        return actor;
    }

    // Asks `actor` to listen; once its process attached, the listener's rule follows (a listener
    // made before the attach reaches the fabric when the stack starts).
    void listen_on(Actor& actor, const std::string& ip, int port, const std::string& mode) {
        (void)actor.ask("listen " + ip + " " + std::to_string(port) + " " + mode, "LISTEN");
        ASSERT_EQ(actor.last(), "LISTEN ok");
        const pid_t pid = actor.child().pid();
        const auto deadline = Clock::now() + 20s;
        auto attached = [&] {
            const auto pids = attached_pids("exhaustion_actor");
            return std::find(pids.begin(), pids.end(), pid) != pids.end();
        };
        while (!attached() && Clock::now() < deadline) {
            drain_mgr(20ms);
        }
        ASSERT_TRUE(attached()) << "pid " << pid << " did not attach";
        std::this_thread::sleep_for(100ms);
    }

    // Connects n more (as many as it can each round) until done or `within`: a resource comes back
    // asynchronously. Returns how many connected; *ms: how long it took.
    static long connect_until(Actor& actor, const std::string& to, long n, std::chrono::milliseconds within, long* ms) {
        const auto t0 = Clock::now();
        long ok = 0;
        while (ok < n && Clock::now() - t0 < within) {
            ok += std::max(0L, num(actor.ask("connect " + to + " " + std::to_string(n - ok) + " 3000", "CONNECT"), "ok"));
            if (ok < n) {
                std::this_thread::sleep_for(20ms);
            }
        }
        *ms = ms_since(t0);
        return ok;
    }

    // A value of gazellectl --json show WHAT, picked by a python3 expression over `d`.
    double ctl(const std::string& what, const std::string& expr) {
        const std::string cmd = sh_quote(gazellectl_path()) + " --bus " + sh_quote(bus_.address()) + " --json show " +
                                what + " | python3 -c " +
                                sh_quote("import json,sys; d=json.load(sys.stdin); print(" + expr + ")");
        const auto r = run_command({"/bin/sh", "-c", cmd}, 20s);
        EXPECT_EQ(r.exit_code, 0) << "gazellectl show " << what << ": " << r.err << r.out;
        try {
            return std::stod(r.out);
        } catch (...) {
            ADD_FAILURE() << "gazellectl show " << what << " gave '" << r.out << "'";
            return -1;
        }
    }
    // A per-queue counter summed over one port's queues.
    double port_counter(const std::string& port, const std::string& counter) {
        return ctl("stats", "sum(q['" + counter + "'] for q in d['queues'] if q['port']=='" + port + "')");
    }

    DbusDaemon bus_;
};

// One line of figures (a macro: printf checks the format).
#define FIGURE(...)                                                                                  \
    do {                                                                                             \
        std::printf("[ exhaustion ] " __VA_ARGS__);                                                  \
        std::printf("\n");                                                                           \
        std::fflush(stdout);                                                                         \
    } while (0)

// --- 1. file descriptors ----------------------------------------------------------------------------

TEST_F(Exhaustion, FdLimitGivesEmfileAndRecovers) {
    const int p = port(0);
    auto server = start(server_conf_);
    auto client = start(client_conf_);
    ASSERT_TRUE(server->ready() && client->ready());
    ASSERT_NO_FATAL_FAILURE(listen_on(*server, k_server_ip, p, "echo"));
    const std::string to = std::string(k_server_ip) + " " + std::to_string(p);

    // Client side: socket() beyond RLIMIT_NOFILE.
    auto r = client->ask("connect " + to + " 2 3000", "CONNECT");
    ASSERT_EQ(num(r, "ok"), 2) << client->last();
    r = client->ask("rlimit +10", "RLIMIT");
    ASSERT_NE(num(r, "limit"), -1) << client->last();
    r = client->ask("sockets 100", "SOCKETS");
    EXPECT_EQ(text(r, "errno"), "EMFILE") << client->last();
    EXPECT_GE(num(r, "ok"), 1);
    EXPECT_LE(num(r, "ok"), 10);
    FIGURE("fd limit: client RLIMIT_NOFILE 10 free: socket() %ld times, then %s", num(r, "ok"), text(r, "errno").c_str());
    r = client->ask("connect " + to + " 1 3000", "CONNECT");
    EXPECT_EQ(num(r, "ok"), 0);
    EXPECT_EQ(text(r, "errno"), "EMFILE") << client->last();
    r = client->ask("echo 1000", "ECHO");
    EXPECT_EQ(num(r, "ok"), 2) << "held connections keep working at the limit: " << client->last();
    auto t0 = Clock::now();
    (void)client->ask("freesockets", "FREESOCKETS");
    r = client->ask("connect " + to + " 3 3000", "CONNECT");
    EXPECT_EQ(num(r, "ok"), 3) << client->last();
    const long client_resume_ms = ms_since(t0);
    r = client->ask("echo 1000", "ECHO");
    EXPECT_EQ(num(r, "ok"), 5) << client->last();
    FIGURE("fd limit: after closing the spare sockets: 3 new connections in %ld ms, 5/5 echo", client_resume_ms);

    // Server side: accept() beyond RLIMIT_NOFILE leaves the connection queued.
    r = server->ask("served", "SERVED");
    const long served0 = num(r, "accepted");
    ASSERT_EQ(served0, 5) << server->last();
    r = server->ask("rlimit +3", "RLIMIT");
    ASSERT_NE(num(r, "limit"), -1) << server->last();
    r = client->ask("connect " + to + " 6 3000", "CONNECT");
    EXPECT_EQ(num(r, "ok"), 6) << "the stack completes handshakes the app has not accepted: " << client->last();
    std::this_thread::sleep_for(300ms);
    r = server->ask("served", "SERVED");
    EXPECT_EQ(num(r, "accepted"), served0 + 3) << server->last();
    EXPECT_GE(num(r, "accept_errors"), 1) << server->last();
    EXPECT_EQ(text(r, "last_accept_errno"), "EMFILE") << server->last();
    FIGURE("fd limit: server RLIMIT_NOFILE 3 free: accepted 3 of 6, accept() then %s (%ld times while waiting)",
           text(r, "last_accept_errno").c_str(), num(r, "accept_errors"));
    // The client's first 5 connections were served first: the server closes those, so its three
    // waiting connections get descriptors.
    t0 = Clock::now();
    r = server->ask("unserve 8", "UNSERVE");
    EXPECT_EQ(num(r, "n"), 8);
    long accepted = 0;
    while (ms_since(t0) < 5000) {
        r = server->ask("served", "SERVED");
        accepted = num(r, "accepted");
        if (accepted == served0 + 6) {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    const long server_resume_ms = ms_since(t0);
    EXPECT_EQ(accepted, served0 + 6) << "queued connections are accepted once descriptors are free: " << server->last();
    (void)client->ask("close 8", "CLOSE");
    r = client->ask("echo 1000", "ECHO");
    EXPECT_EQ(num(r, "ok"), 3) << "the connections that waited in the queue serve: " << client->last();
    FIGURE("fd limit: server closed 8 connections: the 3 queued ones accepted in %ld ms, 3/3 echo", server_resume_ms);
    EXPECT_TRUE(client->quit()) << client->child().transcript();
    EXPECT_TRUE(server->quit()) << server->child().transcript();
    expect_clean_detach(client->child().pid());
    expect_clean_detach(server->child().pid());
}

// --- 2. the stack's connection limit (lstack.conf tcp_conn_count) ------------------------------------

TEST_F(Exhaustion, ConnectionLimitRefusesCleanlyAndRecovers) {
    const int p = port(10);
    // The listener and 8 connections.
    const std::string limited = lstack_conf("limited", k_server_ip, "tcp_conn_count = 9;\n");
    const std::string small_client = lstack_conf("smallclient", k_client_ip, "tcp_conn_count = 3;\n");
    auto server = start(limited);
    ASSERT_TRUE(server->ready());
    ASSERT_NO_FATAL_FAILURE(listen_on(*server, k_server_ip, p, "echo"));
    const std::string to = std::string(k_server_ip) + " " + std::to_string(p);

    // The client's own limit: connect() fails at once.
    {
        auto client = start(small_client);
        auto r = client->ask("connect " + to + " 5 3000", "CONNECT");
        EXPECT_EQ(num(r, "ok"), 3) << client->last();
        EXPECT_EQ(text(r, "errno"), "ENOBUFS") << client->last();
        FIGURE("connection limit: client tcp_conn_count=3: 3 connections, the 4th connect() %s after %ld ms total",
               text(r, "errno").c_str(), num(r, "ms"));
        r = client->ask("echo 500", "ECHO");
        EXPECT_EQ(num(r, "ok"), 3) << client->last();
        // A closed connection gives its place back once its close completed (the peer's FIN).
        (void)client->ask("close 1", "CLOSE");
        long back_ms = 0;
        EXPECT_EQ(connect_until(*client, to, 1, 5s, &back_ms), 1) << client->last();
        FIGURE("connection limit: client closed one: a new connect() succeeded %ld ms later", back_ms);
        EXPECT_TRUE(client->quit()) << client->child().transcript();
        expect_clean_detach(client->child().pid());
    }
    // Wait until the server closed those (their FINs arrived).
    for (auto t = Clock::now(); ms_since(t) < 3000;) {
        if (num(server->ask("served", "SERVED"), "open") == 0) {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(num(server->ask("served", "SERVED"), "open"), 0) << server->last();

    // The server's limit: the connection beyond it is reset (ECONNREFUSED at once, no SYN retries).
    auto client = start(client_conf_);
    auto r = client->ask("connect " + to + " 12 5000", "CONNECT");
    EXPECT_EQ(num(r, "ok"), 8) << client->last();
    EXPECT_EQ(text(r, "errno"), "ECONNREFUSED") << client->last();
    const long refused_ms = num(r, "ms");
    const double conns = port_counter("veth0", "connections");
    FIGURE("connection limit: server tcp_conn_count=9 (listener + 8): 8 connections, the 9th %s (%ld ms for all 9), "
           "server queue's connections gauge %.0f",
           text(r, "errno").c_str(), refused_ms, conns);
    EXPECT_LT(refused_ms, 2500) << "refused at once, not after SYN retransmissions";
    r = client->ask("echo 2000", "ECHO");
    EXPECT_EQ(num(r, "ok"), 8) << "the established connections keep being served: " << client->last();
    r = client->ask("connect " + to + " 1 5000", "CONNECT");
    EXPECT_EQ(text(r, "errno"), "ECONNREFUSED") << "still at the limit: " << client->last();
    // Closing 3 frees 3 places (once the server has closed its side).
    (void)client->ask("close 3", "CLOSE");
    long resume_ms = 0;
    EXPECT_EQ(connect_until(*client, to, 3, 5s, &resume_ms), 3) << client->last();
    r = client->ask("echo 2000", "ECHO");
    EXPECT_EQ(num(r, "ok"), 8) << client->last();
    FIGURE("connection limit: after closing 3: 3 new connections within %ld ms, 8/8 echo", resume_ms);
    EXPECT_TRUE(client->quit()) << client->child().transcript();
    EXPECT_TRUE(server->quit()) << server->child().transcript();
    expect_clean_detach(client->child().pid());
    expect_clean_detach(server->child().pid());
}

// --- 3. the mbuf pools ------------------------------------------------------------------------------

class MbufExhaustion : public Exhaustion {
protected:
    MbufExhaustion() {
        // The smallest pools the manager accepts (the fixture's 4095 and 8191 first; the L2 pool,
        // which a stack falls back to when its own pool is below the low watermark, too: about
        // 460 + 512 mbufs for the sender's tx), and room in the receiver's queue for every frame
        // the sender can have out: both of the sender's pools run dry while the stopped
        // receiver's queue holds its mbufs.
        mgr_config_edits_ = {{"mbufs_per_queue = 4095", "mbufs_per_queue = 512"},
                             {"l2_pool_mbufs = 8191", "l2_pool_mbufs = 512"},
                             {"queues = 4; bridge = \"br0\"; rx_ring_size = 512;",
                              "queues = 4; bridge = \"br0\"; rx_ring_size = 2048;"}};
    }
};

TEST_F(MbufExhaustion, PoolRunsDryThenEveryByteArrives) {
    const int p = port(20);
    // 32 windows of 64 kB (some 1440 frames) outgrow both of the sender's pools.
    constexpr int k_conns = 32;
    constexpr long k_bytes = 4 << 20;
    auto server = start(server_conf_);
    auto client = start(client_conf_);
    ASSERT_TRUE(server->ready() && client->ready());
    ASSERT_NO_FATAL_FAILURE(listen_on(*server, k_server_ip, p, "sink"));
    const auto start_time = Clock::now();
    // Warm up: congestion windows open, then the receiver catches up (its windows open too).
    constexpr long k_warm = 1 << 20;
    (void)client->ask("blast " + std::string(k_server_ip) + " " + std::to_string(p) + " " + std::to_string(k_conns) + " " +
                          std::to_string(k_warm),
                      "BLAST");
    for (auto t = Clock::now(); ms_since(t) < 20000;) {
        if (num(server->ask("served", "SERVED"), "sink_bytes") >= k_conns * k_warm) {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(num(server->ask("served", "SERVED"), "sink_bytes"), k_conns * k_warm) << server->last();
    // Stop the receiver, then send: every connection's whole window leaves at once (32 x 64 kB,
    // some 1440 frames), each frame sits in the stopped receiver's queue holding one of the
    // sender's mbufs (512 of its own, 512 of the L2 pool), and lwIP keeps retransmitting.
    const double alloc0 = port_counter("veth1", "drop_alloc_failed");
    const double l2_0 = port_counter("veth1", "l2_allocs");
    ASSERT_TRUE(server->child().kill(SIGSTOP));
    (void)client->ask("blastmore " + std::to_string(k_bytes - k_warm), "BLASTMORE");
    // The pool's gauge, sampled while the receiver is stopped (well within the manager's
    // heartbeat timeout): it moves as lwIP's retransmissions come and go; the allocation failure
    // counter is the proof that it ran dry.
    const auto stopped = Clock::now();
    double in_use = 0;
    while (ms_since(stopped) < 700) {
        // The L2 pool, where the sender's frames go once its own pool is below the watermark.
        in_use = std::max(in_use, ctl("memory", "max(p['in_use'] for p in d['pools'] if p['name']=='gz_mbuf_l2')"));
    }
    const double size = ctl("memory", "max(p['size'] for p in d['pools'] if p['name']=='gz_mbuf_l2')");
    const double alloc_failed = port_counter("veth1", "drop_alloc_failed") - alloc0;
    const double l2_allocs = port_counter("veth1", "l2_allocs") - l2_0;
    ASSERT_TRUE(server->child().kill(SIGCONT));
    auto r = client->ask("blaststatus", "BLAST");
    FIGURE("mbufs: receiver stopped 700 ms: the L2 pool at most %.0f of %.0f in use, l2_allocs +%.0f, drop_alloc_failed "
           "+%.0f, send() EAGAIN %ld times so far",
           in_use, size, l2_allocs, alloc_failed, num(r, "eagain"));
    // Dry for the sender: its allocations fail while up to 1.5 caches' worth of the L2 pool sit in
    // other lcores' caches (the receiver frees the sender's mbufs into its own cache).
    EXPECT_GE(in_use, size * 0.5) << "the L2 pool ran dry";
    EXPECT_GT(l2_allocs, 0) << "below the watermark the sender allocates from the L2 pool";
    EXPECT_GT(alloc_failed, 0) << "a failed mbuf allocation is counted";
    // Zero window: the receiver stops reading (its process runs, its socket buffers fill). Once
    // the windows closed (nothing more is taken for 300 ms), send() only says EAGAIN.
    (void)server->ask("pause", "PAUSE");
    long sent_paused = -1;
    for (auto t = Clock::now(); ms_since(t) < 5000;) {
        const long before = num(client->ask("blaststatus", "BLAST"), "sent");
        std::this_thread::sleep_for(300ms);
        sent_paused = num(client->ask("blaststatus", "BLAST"), "sent");
        if (sent_paused == before) {
            break;
        }
    }
    const long eagain0 = num(client->ask("blaststatus", "BLAST"), "eagain");
    std::this_thread::sleep_for(300ms);
    r = client->ask("blaststatus", "BLAST");
    // A quiet 300 ms is not proof that nothing is in flight: a segment the starved receiver
    // dropped comes back after a backed-off RTO (seconds), and its ACK frees send buffer that
    // send() may fill (seen: 6320 bytes). What must hold is that the sender streams no more: far
    // less than one socket ring, where an open window takes tens of MB in 300 ms.
    EXPECT_LT(num(r, "sent") - sent_paused, 64 * 1024) << "nothing more streams while the peer's window is closed";
    EXPECT_GT(num(r, "eagain"), eagain0) << "send() says EAGAIN on a closed window";
    FIGURE("mbufs: receiver not reading: send() EAGAIN %ld times in 300 ms, %ld bytes accepted in total",
           num(r, "eagain") - eagain0, num(r, "sent"));
    const auto resume = Clock::now();
    (void)client->ask("blastend", "BLASTEND");
    (void)server->ask("resume", "RESUME");
    long received = 0;
    long bad = -1;
    while (ms_since(resume) < 40000) {
        r = server->ask("served", "SERVED");
        received = num(r, "sink_bytes");
        bad = num(r, "sink_bad");
        if (received >= k_conns * k_bytes) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    r = client->ask("blaststatus", "BLAST");
    EXPECT_EQ(num(r, "done"), 1) << client->last();
    EXPECT_EQ(num(r, "failed"), 0) << client->last();
    EXPECT_EQ(received, k_conns * k_bytes) << "every byte arrives";
    EXPECT_EQ(bad, 0) << "intact";
    FIGURE("mbufs: resumed: %ld of %ld bytes received (%ld corrupt) %ld ms after the receiver read again, %ld ms in all",
           received, k_conns * k_bytes, bad, ms_since(resume), ms_since(start_time));
    // The pools come back.
    double back = -1;
    for (auto t = Clock::now(); ms_since(t) < 5000;) {
        back = ctl("memory", "sum(p['in_use'] for p in d['pools'] if p['port']=='veth1')");
        if (back < 64) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_LT(back, 64) << "the sender's mbufs are back in its pool";
    EXPECT_TRUE(client->quit()) << client->child().transcript();
    EXPECT_TRUE(server->quit()) << server->child().transcript();
    expect_clean_detach(client->child().pid());
    expect_clean_detach(server->child().pid());
}

// --- 4. the flow table ------------------------------------------------------------------------------

class FlowTableExhaustion : public Exhaustion {
protected:
    FlowTableExhaustion() {
        mgr_config_edits_ = {{"flow_table_size = 4096", "flow_table_size = 1024"}}; // the smallest accepted
    }
};

TEST_F(FlowTableExhaustion, FullTableRefusesConnectionsThenRecovers) {
    const int p = port(30);
    auto server = start(server_conf_);
    auto client = start(client_conf_);
    ASSERT_TRUE(server->ready() && client->ready());
    for (Actor* a : {server.get(), client.get()}) {
        ASSERT_NE(num(a->ask("rlimit 4096", "RLIMIT"), "limit"), -1) << a->last();
    }
    ASSERT_NO_FATAL_FAILURE(listen_on(*server, k_server_ip, p, "echo"));
    const std::string to = std::string(k_server_ip) + " " + std::to_string(p);
    const double capacity = ctl("stats", "d['flow_table']['capacity']");
    const double full0 = ctl("stats", "d['flow_table']['add_failed_full']");
    const double table_full0 = port_counter("veth0", "drop_table_full") + port_counter("veth1", "drop_table_full");
    // Each connection holds two rules (one per end, both on this fabric).
    auto r = client->ask("connect " + to + " 1000 3000", "CONNECT", 120s);
    const long made = num(r, "ok");
    const std::string err = text(r, "errno");
    const double keys = ctl("stats", "d['flow_table']['keys']");
    const double full = ctl("stats", "d['flow_table']['add_failed_full']") - full0;
    const double table_full = port_counter("veth0", "drop_table_full") + port_counter("veth1", "drop_table_full") - table_full0;
    FIGURE("flow table: %.0f entries: %ld connections, then connect() %s after %ld ms; keys %.0f, add_failed_full +%.0f, "
           "drop_table_full +%.0f",
           capacity, made, err.c_str(), num(r, "ms"), keys, full, table_full);
    EXPECT_GT(made, 300) << client->last();
    EXPECT_LT(made, 1000) << client->last();
    EXPECT_TRUE(err == "EAGAIN" || err == "ECONNREFUSED") << "a clean errno, not a timeout: " << client->last();
    EXPECT_GE(full, 1);
    EXPECT_GE(table_full, 1);
    // rte_hash refuses a key when its buckets are full, not at a count: another 4-tuple may still
    // find room, but the table stays (nearly) full and refuses again soon.
    r = client->ask("connect " + to + " 50 3000", "CONNECT");
    const long more = num(r, "ok");
    EXPECT_LT(more, 50) << "still full: " << client->last();
    EXPECT_TRUE(text(r, "errno") == "EAGAIN" || text(r, "errno") == "ECONNREFUSED") << client->last();
    const long held = made + std::max(0L, more);
    r = client->ask("echo 100", "ECHO", 120s);
    EXPECT_EQ(num(r, "ok"), held) << "the established connections keep working: " << client->last();
    // The client closes first: its ends wait in TIME_WAIT (their rules with them), the server's
    // ends are freed at once, one rule each.
    (void)client->ask("close 60", "CLOSE");
    long resume_ms = 0;
    EXPECT_EQ(connect_until(*client, to, 10, 10s, &resume_ms), 10) << client->last();
    r = client->ask("echo 100", "ECHO", 120s);
    EXPECT_EQ(num(r, "ok"), held - 60 + 10) << client->last();
    FIGURE("flow table: after closing 60 connections: 10 new ones within %ld ms, all %ld echo", resume_ms, num(r, "ok"));
    EXPECT_TRUE(client->quit()) << client->child().transcript();
    EXPECT_TRUE(server->quit()) << server->child().transcript();
    expect_clean_detach(server->child().pid());
}

// --- 5. queues (more apps than a port has queues) -----------------------------------------------------

TEST_F(Exhaustion, MoreAppsThanQueuesAreRefusedClearly) {
    const int p = port(40);
    const std::string ip = k_client_ip; // veth1: 2 queues
    const std::string error_conf = lstack_conf("attacherror", k_client_ip, "attach_failure = \"error\";\n");
    const std::string kernel_conf = lstack_conf("attachkernel", k_client_ip, "attach_failure = \"kernel\";\n");
    auto first = start(client_conf_);
    auto second = start(client_conf_);
    ASSERT_TRUE(first->ready() && second->ready());
    ASSERT_NO_FATAL_FAILURE(listen_on(*first, ip, p, "echo"));
    ASSERT_NO_FATAL_FAILURE(listen_on(*second, ip, p + 1, "echo"));

    // attach_failure = "error": the fabric socket's call fails with ENETDOWN, with one message.
    auto third = start(error_conf);
    auto r = third->ask("connect " + ip + " " + std::to_string(p) + " 1 3000", "CONNECT");
    EXPECT_EQ(text(r, "errno"), "ENETDOWN") << third->last();
    const std::string error_log = third->child().transcript();
    EXPECT_NE(error_log.find("cannot attach to the fabric: gazelle-mgr refused the attach: port veth1 has 0 free queues"),
              std::string::npos)
        << error_log;
    EXPECT_NE(error_log.find("ENETDOWN"), std::string::npos) << error_log;
    std::string why;
    if (const auto at = error_log.find("cannot attach to the fabric: "); at != std::string::npos) {
        why = error_log.substr(at, error_log.find('\n', at) - at);
    }
    // attach_failure = "kernel": a listener recorded before the attach is replayed on the kernel,
    // which does not have the fabric's address; the replay happens after listen() returned 0, so
    // the app learns it from accept(): EINVAL (the kernel's, for a socket that does not listen;
    // the socket is a plain kernel socket by then), and from the library's log line.
    auto fourth = start(kernel_conf);
    r = fourth->ask("listen " + ip + " " + std::to_string(p + 3) + " echo", "LISTEN");
    EXPECT_EQ(fourth->last(), "LISTEN ok") << "listen() before the attach is recorded";
    std::string accept_errno;
    for (auto t = Clock::now(); ms_since(t) < 5000 && accept_errno.empty();) {
        r = fourth->ask("served", "SERVED");
        if (num(r, "accept_errors") > 0) {
            accept_errno = text(r, "last_accept_errno");
        }
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(accept_errno, "EINVAL") << fourth->child().transcript();
    const std::string kernel_log = fourth->child().transcript();
    EXPECT_NE(kernel_log.find("this process uses kernel sockets"), std::string::npos) << kernel_log;
    EXPECT_NE(kernel_log.find("replaying bind() on its kernel socket"), std::string::npos) << kernel_log;
    FIGURE("queues: veth1 has 2, a 3rd app (attach_failure error): connect() %s; a 4th (kernel): accept() %s; "
           "it says: %s",
           "ENETDOWN", accept_errno.c_str(), why.c_str());
    EXPECT_TRUE(third->quit());
    EXPECT_TRUE(fourth->quit());

    // An app leaves: a new one attaches on its queue.
    EXPECT_TRUE(first->quit()) << first->child().transcript();
    expect_clean_detach(first->child().pid());
    const auto t0 = Clock::now();
    auto fifth = start(client_conf_);
    ASSERT_NO_FATAL_FAILURE(listen_on(*fifth, ip, p + 4, "echo"));
    FIGURE("queues: after one app exited, a new one attached and listens (%ld ms from its start)", ms_since(t0));
    EXPECT_TRUE(fifth->quit());
    EXPECT_TRUE(second->quit());
    expect_clean_detach(second->child().pid());
    expect_clean_detach(fifth->child().pid());
}

} // namespace
} // namespace gazelle::test
