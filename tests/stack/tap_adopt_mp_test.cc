// SPDX-License-Identifier: BSD-3-Clause
// Adoption of free queues on a port without a RETA (doc/fabric-ports.md "Adoption"), end to end
// with the kernel as the peer: a 4-queue tap port whose kernel side sits in a network namespace.
// The kernel's tun driver spreads flows over all 4 queues by its own hash, whoever owns them, so
// with fewer owned queues than 4 every flow the hash puts on a free queue hangs unless a live
// stack adopts that queue. Checked: one app with one queue serves every connection; the adopter
// SIGKILLed: a new app claiming a queue the dead stack adopted waits (does not poll it) until the
// dead stack's reclaim gives the lease back, then the survivor adopts the rest; a new app claiming
// a queue a live stack adopted takes it over (the adopter lets go first). Every connection of
// every round succeeds, and the pools are full at the end.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "tests/stack/netns_support.h"
#include "tests/stack/stack_test_support.h"

namespace gazelle::test {
namespace {

constexpr char k_stack_ip[] = "198.18.6.1";
constexpr char k_kernel_ip[] = "198.18.6.2";
constexpr unsigned k_queues = 4;
constexpr unsigned k_rx_descriptors = 256; // stack_primary_actor's EthdevParams
constexpr char k_python[] = "/usr/bin/python3";

// CONNS concurrent TCP connections from the namespace (each from its own ephemeral port, so the
// tun hash spreads them over the queues); each sends BYTES of its own pattern, half-closes and
// must read exactly the same bytes back before TIMEOUT seconds.
constexpr char k_client_py[] = R"PY(
import socket, sys, threading, time
host, port, conns, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
ok = []
bad = []
slowest = [0.0]
def one(i):
    t0 = time.monotonic()
    data = bytes(((i * 131 + k * 7) & 0xff) for k in range(size))
    s = socket.socket()
    s.settimeout(timeout)
    lport = 0
    try:
        s.connect((host, port))
        lport = s.getsockname()[1]
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        back = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            back += chunk
        (ok if back == data else bad).append(lport)
    except Exception:
        bad.append(lport)
    finally:
        s.close()
        slowest[0] = max(slowest[0], time.monotonic() - t0)
threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
print("CLIENTS ok=%d failed=%d slowest_ms=%.0f failed_ports=%s" % (len(ok), len(bad), slowest[0] * 1000, ",".join(map(str, bad[:16]))))
)PY";

class TapAdoptTest : public StackFabricTest {
protected:
    void TearDown() override {
        primary_.reset(); // the tap interface goes with the primary's file descriptors
        netns_.reset();
    }

    void start_tap() {
        const std::string name = "gza" + std::to_string(getpid());
        netns_ = std::make_unique<Netns>(name);
        ASSERT_TRUE(netns_->created()) << "ip netns add " << name << " failed";
        start_primary({"tap", std::to_string(k_queues), k_stack_ip, "24"}, {"--vdev=net_tap0,iface=" + name});
        ASSERT_EQ(run_shell("ip link set " + name + " netns " + name).first, 0);
        ASSERT_EQ(netns_->exec("ip link set lo up").first, 0);
        ASSERT_EQ(netns_->exec("ip addr add " + std::string(k_kernel_ip) + "/24 dev " + name).first, 0);
        ASSERT_EQ(netns_->exec("ip link set " + name + " up").first, 0);
        (void)netns_->exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
        script_ = dir_.write("clients.py", k_client_py);
    }

    // Runs `conns` echo connections from the namespace; returns how many succeeded.
    long long clients(unsigned conns, unsigned bytes = 3000) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto out = netns_->exec(std::string(k_python) + " " + script_ + " " + k_stack_ip + " 7000 " +
                                          std::to_string(conns) + " " + std::to_string(bytes) + " 4",
                                      30);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%u connections: %s (%.0f ms)\n", conns, out.second.c_str(), ms);
        return field(out.second, "ok").value_or(-1);
    }

    // Slot of the stack that holds the adoption lease of `slot`, -1 for none.
    long long adopter(unsigned slot) { return field(ask_primary("queue " + std::to_string(slot), "QUEUE"), "adopter").value_or(-2); }

    // Waits until every queue in `free_slots` is adopted by a stack in `by` (a bit mask of slots).
    bool wait_adopted(std::initializer_list<unsigned> free_slots, std::uint64_t by) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < deadline) {
            bool all = true;
            for (unsigned s : free_slots) {
                const long long a = adopter(s);
                all = all && a >= 0 && ((by >> a) & 1u) != 0;
            }
            if (all) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }

    long long stat(unsigned slot, const std::string& name) {
        return field(ask_primary("stats " + std::to_string(slot), "STATS"), name).value_or(-1);
    }

    // With every app gone, the pools hold only what the tap's rx rings keep posted: nothing leaked,
    // the frames received by an adopter that was killed included.
    void expect_pools_full() {
        const auto usage = ask_primary("usage", "USAGE");
        EXPECT_EQ(field(usage, "in_use"), k_queues * k_rx_descriptors) << usage;
    }

    TempDir dir_;
    std::string script_;
    std::unique_ptr<Netns> netns_;
};

TEST_F(TapAdoptTest, OneAppWithOneOfFourQueuesServesEveryFlow) {
    start_tap();
    ASSERT_FALSE(HasFatalFailure());
    auto app = start_app({{0, 10}});
    ASSERT_TRUE(app);
    ASSERT_EQ(field(ask(*app, "echo 7000", "SERVING"), "ok"), 1);
    EXPECT_TRUE(wait_adopted({1, 2, 3}, 1u << 0)) << "queues 1..3 are not adopted by the only stack";

    constexpr unsigned conns = 96;
    EXPECT_EQ(clients(conns), conns) << "flows the tun hash puts on a free queue hang";
    const auto stats = ask_primary("stats 0", "STATS");
    std::printf("%s\n", stats.c_str());
    EXPECT_GT(field(stats, "adopted_rx_packets").value_or(0), 0) << stats;
    EXPECT_EQ(field(stats, "adopted_queues"), 3) << stats;
    EXPECT_GT(field(stats, "rx_packets").value_or(0), 0) << stats;
    const auto servers = ask(*app, "servers", "SERVERS");
    EXPECT_EQ(field(servers, "accepted"), conns) << servers;
    EXPECT_EQ(field(servers, "errors"), 0) << servers;

    stop_app(*app);
    for (unsigned s = 1; s < k_queues; ++s) {
        EXPECT_EQ(adopter(s), -1) << "a stopped stack gives its leases back (queue " << s << ")";
    }
    ASSERT_EQ(field(ask_primary("reclaim 0", "RECLAIM"), "ok"), 1);
    expect_pools_full();
}

TEST_F(TapAdoptTest, AdopterKilledThenNewOwnersTakeAdoptedQueuesOver) {
    start_tap();
    ASSERT_FALSE(HasFatalFailure());
    auto app0 = start_app({{0, 10}});
    ASSERT_TRUE(app0);
    auto app1 = start_app({{1, 11}});
    ASSERT_TRUE(app1);
    ASSERT_EQ(field(ask(*app0, "echo 7000", "SERVING"), "ok"), 1);
    ASSERT_EQ(field(ask(*app1, "echo 7000", "SERVING"), "ok"), 1);
    EXPECT_TRUE(wait_adopted({2, 3}, (1u << 0) | (1u << 1)));
    constexpr unsigned conns = 64;
    EXPECT_EQ(clients(conns), conns);

    // SIGKILL the stack holding queue 2's lease. Until the dead stack is reclaimed its lease
    // stands: a new app claiming queue 2 meanwhile must not poll it (the dead stack might have
    // been inside an rx burst), it waits.
    const long long victim_slot = adopter(2);
    ASSERT_TRUE(victim_slot == 0 || victim_slot == 1);
    const unsigned survivor_slot = victim_slot == 0 ? 1u : 0u;
    std::unique_ptr<Child>& victim = victim_slot == 0 ? app0 : app1;
    std::unique_ptr<Child>& survivor = victim_slot == 0 ? app1 : app0;
    const long long victim_leases = stat(static_cast<unsigned>(victim_slot), "adopted_queues");
    ASSERT_TRUE(victim->kill(SIGKILL));
    (void)victim->wait();
    auto app2 = start_app({{2, 12}});
    ASSERT_TRUE(app2);
    ASSERT_EQ(field(ask(*app2, "echo 7000", "SERVING"), "ok"), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(adopter(2), victim_slot) << "the dead adopter's lease stands until its reclaim";
    EXPECT_EQ(stat(2, "rx_packets"), 0) << "the new owner polled a queue whose lease another stack holds";
    EXPECT_GT(stat(2, "adopt_handover_waits"), 0) << "the new owner did not wait for the lease";

    // Reclaim gives the dead stack's leases back: the new owner polls queue 2, the survivors adopt
    // the rest (the dead stack's own queue too).
    const auto reclaim = ask_primary("reclaim " + std::to_string(victim_slot), "RECLAIM");
    std::printf("%s\n", reclaim.c_str());
    EXPECT_EQ(field(reclaim, "adoptions"), victim_leases) << reclaim;
    EXPECT_EQ(adopter(2), -1);
    const std::uint64_t live = (1u << survivor_slot) | (1u << 2);
    EXPECT_TRUE(wait_adopted({static_cast<unsigned>(victim_slot), 3}, live))
        << "the dead stack's queues were not adopted again";
    EXPECT_EQ(clients(conns), conns) << "after the adopter was killed";
    EXPECT_GT(stat(2, "rx_packets"), 0) << "the new owner polls its queue";

    // A new app claims queue 3 from a live adopter: the adopter lets go at its next poll (before
    // the new owner's first), and every flow still works.
    const long long adopter3 = adopter(3);
    EXPECT_GE(adopter3, 0) << "queue 3 is free: a live stack adopts it";
    auto app3 = start_app({{3, 13}});
    ASSERT_TRUE(app3);
    ASSERT_EQ(field(ask(*app3, "echo 7000", "SERVING"), "ok"), 1);
    EXPECT_EQ(adopter(3), -1) << "queue 3 is owned: its former adopter must have let go";
    EXPECT_EQ(clients(conns), conns) << "after queue 3 changed hands";
    EXPECT_GT(stat(3, "rx_packets"), 0) << "the new owner polls its queue";
    EXPECT_TRUE(wait_adopted({static_cast<unsigned>(victim_slot)}, live | (1u << 3)));
    for (unsigned s : {survivor_slot, 2u, 3u}) {
        std::printf("%s\n", ask_primary("stats " + std::to_string(s), "STATS").c_str());
    }

    stop_app(*app3);
    stop_app(*app2);
    stop_app(*survivor);
    for (unsigned s : {survivor_slot, 2u, 3u}) {
        ASSERT_EQ(field(ask_primary("reclaim " + std::to_string(s), "RECLAIM"), "ok"), 1);
    }
    expect_pools_full();
}

} // namespace
} // namespace gazelle::test
