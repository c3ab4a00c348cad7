// SPDX-License-Identifier: BSD-3-Clause
// Packet storms through the real receive paths, while an echo server on our stacks keeps serving a
// legitimate client. Classes of malformed and hostile frames (tests/stack/packet_storm.py, scapy):
// runts, truncated headers, wrong lengths and checksums, IP options, fragments (overlapping, too
// many, past 64 KiB), odd TCP flags, zero windows, RST and SYN floods, ARP oddities, oversize
// frames, other ethertypes. Two paths:
//   * tap: scapy sends the frames from the kernel side of a DPDK tap port, in a network
//     namespace; the legitimate client is the kernel (a Python socket client in the namespace);
//   * user-veth: the same frames, written to pcap files, injected straight into a user-veth port's
//     tx path by a secondary that owns a queue of the peer port (storm_injector_actor); the
//     legitimate client is another stack (stack_app_actor).
// Requirements: no process dies, the frames that must be dropped are counted in the queues'
// statistics (drop_malformed and the others), and the client's round trips never fail, during the
// storm and after it. Each class's frames and the counters they moved are printed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/stack/netns_support.h"
#include "tests/stack/stack_test_support.h"

namespace gazelle::test {
namespace {

constexpr char k_python[] = "/usr/bin/python3"; // scapy is Debian's python3-scapy
constexpr char k_ip[] = "/usr/sbin/ip";
constexpr unsigned k_echo_port = 7000;

// The counters a storm can move, summed over the slots the test watches.
const std::vector<std::string> k_counters = {"rx_packets",    "local",          "drop_malformed", "drop_no_owner",
                                             "drop_owner_gone", "drop_inbox_full", "drop_alloc_failed",
                                             "drop_tx_full",  "tx_packets"};

std::string script() { return source_path("tests/stack/packet_storm.py"); }

class PacketStormTest : public StackFabricTest {
protected:
    // A child that dies mid-storm must fail the test with its transcript, not kill it by SIGPIPE.
    PacketStormTest() { std::signal(SIGPIPE, SIG_IGN); }

    std::map<std::string, long long> counters(const std::vector<unsigned>& slots) {
        std::map<std::string, long long> sum;
        for (unsigned slot : slots) {
            const auto line = ask_primary("stats " + std::to_string(slot), "STATS");
            for (const auto& name : k_counters) {
                sum[name] += field(line, name).value_or(0);
            }
        }
        return sum;
    }

    struct ClassResult {
        std::string name;
        long long tried = 0;
        std::map<std::string, long long> delta;
    };

    // Drives the storm script class by class: `send` makes the class's frames reach the fabric
    // (scapy sends them itself, or the injector replays the pcap), then the counters are read
    // once the stacks have had time to poll them.
    std::vector<ClassResult> run_storm(Child& storm, const std::vector<unsigned>& slots,
                                       const std::function<long long(const std::string&, long long)>& send) {
        std::vector<ClassResult> results;
        const auto ready = storm.expect("READY", 60s);
        EXPECT_TRUE(ready) << storm.transcript();
        if (!ready) {
            return results;
        }
        for (;;) {
            const auto before = counters(slots);
            if (!storm.send("run")) {
                break;
            }
            const auto line = storm.read_line(120s);
            if (!line || line->rfind("SENT", 0) != 0) {
                EXPECT_TRUE(line && *line == "DONE") << storm.transcript();
                break;
            }
            ClassResult r;
            r.name = word_after(*line, "class=");
            r.tried = send(r.name, field(*line, "tried").value_or(0));
            EXPECT_EQ(field(*line, "send_errors"), 0) << *line;
            std::this_thread::sleep_for(400ms); // the tap queue is polled at up to 10 ms intervals
            const auto after = counters(slots);
            for (const auto& name : k_counters) {
                r.delta[name] = after.at(name) - before.at(name);
            }
            results.push_back(r);
        }
        return results;
    }

    static std::string word_after(const std::string& line, const std::string& key) {
        const auto at = line.find(key);
        if (at == std::string::npos) {
            return "";
        }
        const auto start = at + key.size();
        return line.substr(start, line.find(' ', start) - start);
    }

    static void print(const std::string& path, const std::vector<ClassResult>& results) {
        std::printf("[ storm %s ] %-13s %6s %9s %9s %9s %9s %9s\n", path.c_str(), "class", "tried", "rx",
                    "malformed", "no_owner", "other_drop", "tx");
        long long tried = 0, malformed = 0;
        for (const auto& r : results) {
            const long long other = r.delta.at("drop_owner_gone") + r.delta.at("drop_inbox_full") +
                                    r.delta.at("drop_alloc_failed") + r.delta.at("drop_tx_full");
            std::printf("[ storm %s ] %-13s %6lld %9lld %9lld %9lld %9lld %9lld\n", path.c_str(), r.name.c_str(),
                        r.tried, r.delta.at("rx_packets"), r.delta.at("drop_malformed"), r.delta.at("drop_no_owner"),
                        other, r.delta.at("tx_packets"));
            tried += r.tried;
            malformed += r.delta.at("drop_malformed");
        }
        std::printf("[ storm %s ] total frames tried=%lld drop_malformed=%lld\n", path.c_str(), tried, malformed);
    }

    // Frames that nothing may accept: every one of them is a counted drop.
    static void expect_counted(const std::vector<ClassResult>& results, bool runts_reach_the_fabric) {
        for (const auto& r : results) {
            if (r.name == "truncated" || r.name == "bad_length" || r.name == "bad_checksum" ||
                (r.name == "runt" && runts_reach_the_fabric)) {
                EXPECT_EQ(r.delta.at("drop_malformed"), r.tried) << r.name;
            }
        }
        ASSERT_FALSE(results.empty());
        EXPECT_EQ(results.back().name, "misc"); // every class ran
    }
};

// --- tap: the kernel side of the port in a namespace ---------------------------------------------

class TapStormTest : public PacketStormTest {
protected:
    void TearDown() override {
        primary_.reset();
        netns_.reset();
    }

    std::unique_ptr<Netns> netns_;
};

constexpr char k_stack_ip[] = "198.18.6.1";
constexpr char k_kernel_ip[] = "198.18.6.2";

TEST_F(TapStormTest, StormFromTheKernelSideIsCountedAndTheEchoClientNeverFails) {
    const std::string name = "gzst" + std::to_string(getpid());
    netns_ = std::make_unique<Netns>(name);
    ASSERT_TRUE(netns_->created());
    start_primary({"tap", "2", k_stack_ip, "24"}, {"--vdev=net_tap0,iface=" + name});
    ASSERT_EQ(run_shell("ip link set " + name + " netns " + name).first, 0);
    ASSERT_EQ(netns_->exec("ip link set lo up").first, 0);
    ASSERT_EQ(netns_->exec("ip addr add " + std::string(k_kernel_ip) + "/24 dev " + name).first, 0);
    // A jumbo MTU on the kernel side only: scapy can then send the oversize class.
    ASSERT_EQ(netns_->exec("ip link set " + name + " mtu 9000 up").first, 0);
    (void)netns_->exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
    const auto mac = netns_->exec("cat /sys/class/net/" + name + "/address");
    ASSERT_EQ(mac.first, 0);
    const std::string kernel_mac = mac.second.substr(0, mac.second.find('\n'));

    auto app = start_app({{0, 10}, {1, 11}});
    ASSERT_TRUE(app);
    ASSERT_EQ(field(ask(*app, "echo " + std::to_string(k_echo_port), "SERVING"), "ok"), 1);
    const std::vector<std::string> in_ns = {k_ip, "netns", "exec", name, k_python, script()};
    auto echo_client = [&](double seconds) {
        std::vector<std::string> argv = in_ns;
        for (const std::string& a : {std::string("echo"), std::string("--ip"), std::string(k_stack_ip),
                                     std::string("--port"), std::to_string(k_echo_port), std::string("--seconds"),
                                     std::to_string(seconds), std::string("--reconnect-every"), std::string("20")}) {
            argv.push_back(a);
        }
        return std::make_unique<Child>(argv);
    };

    {
        auto before = echo_client(2);
        const auto line = before->expect("ECHO", 30s);
        ASSERT_TRUE(line) << before->transcript();
        ASSERT_GT(field(*line, "rounds_ok").value_or(0), 0) << *line;
        ASSERT_EQ(field(*line, "rounds_failed"), 0) << *line;
    }

    // The storm, with the client running all along. The stacks share the kernel interface's MAC
    // (the tap PMD gives both sides one address).
    auto during = echo_client(600);
    std::vector<std::string> argv = in_ns;
    for (const char* a : {"storm", "--iface", name.c_str(), "--dst-mac", kernel_mac.c_str(), "--src-mac",
                                 kernel_mac.c_str(), "--dst-ip", k_stack_ip, "--src-ip", k_kernel_ip, "--port",
                                 "7000", "--scale", "20"}) {
        argv.emplace_back(a);
    }
    Child storm(argv);
    const auto results = run_storm(storm, {0, 1}, [](const std::string&, long long tried) { return tried; });
    ASSERT_TRUE(during->send("stop"));
    const auto echoed = during->expect("ECHO", 30s);
    ASSERT_TRUE(echoed) << during->transcript();
    print("tap", results);
    std::printf("[ storm tap ] echo during the storm: %s\n", echoed->c_str());
    // The kernel pads a packet socket's frame to the Ethernet header: runts below 14 bytes never
    // leave it, so only the rest of the classes is checked for exact counts.
    expect_counted(results, false);
    EXPECT_GT(field(*echoed, "rounds_ok").value_or(0), 0) << *echoed;
    EXPECT_EQ(field(*echoed, "rounds_failed"), 0) << *echoed;
    EXPECT_EQ(field(*echoed, "connects_failed"), 0) << *echoed;

    // After the storm: the fabric still answers new and old clients, ping included.
    auto after = echo_client(3);
    const auto line = after->expect("ECHO", 30s);
    ASSERT_TRUE(line) << after->transcript();
    std::printf("[ storm tap ] echo after the storm: %s\n", line->c_str());
    EXPECT_GT(field(*line, "rounds_ok").value_or(0), 0) << *line;
    EXPECT_EQ(field(*line, "rounds_failed"), 0) << *line;
    EXPECT_EQ(field(*line, "connects_failed"), 0) << *line;
    const auto ping = netns_->exec("ping -c 3 -i 0.2 -W 2 " + std::string(k_stack_ip), 15);
    EXPECT_EQ(ping.first, 0) << ping.second;
    EXPECT_TRUE(app->running());
    EXPECT_TRUE(primary_->running());
    stop_app(*app);
}

// --- user-veth: straight into the software NIC ---------------------------------------------------

TEST_F(PacketStormTest, StormInjectedIntoUserVethIsCountedAndTheEchoClientNeverFails) {
    // veth_a 198.18.0.1 (slots 0, 1: the echo server), veth_b 198.18.1.2 (slot 2: the client's
    // stack, slot 3: the injector), one bridge.
    start_primary({"veth", "2", "2"});
    ASSERT_FALSE(HasFatalFailure());
    auto server = start_app({{0, 10}, {1, 11}});
    auto client = start_app({{2, 12}});
    ASSERT_TRUE(server && client);
    ASSERT_EQ(field(ask(*server, "echo " + std::to_string(k_echo_port), "SERVING"), "ok"), 1);

    std::vector<std::string> inj{bin_path("storm_injector_actor")};
    const auto eal = eal_->secondary_args(13);
    inj.insert(inj.end(), eal.begin(), eal.end());
    inj.emplace_back("--");
    inj.emplace_back("3");
    Child injector(inj);
    const auto hello = injector.expect("READY", 30s);
    ASSERT_TRUE(hello) << injector.transcript();
    ASSERT_EQ(field(ask_primary("claim 3 " + std::to_string(injector.pid()) + " 13", "CLAIM"), "ok"), 1);

    const auto before = ask(*client, "load 198.18.0.1 7000 20 4 2000", "LOAD", 60s);
    ASSERT_EQ(field(before, "failed"), 0) << before;

    // The client, through every class: a new connection of request/response rounds runs while the
    // class is injected, and must succeed to its last round.
    TempDir pcaps;
    Child storm({k_python, script(), "storm", "--pcap-dir", pcaps.path(), "--dst-mac", "02:00:00:00:00:0a",
                 "--src-mac", "02:00:00:00:00:0b", "--dst-ip", "198.18.0.1", "--src-ip", "198.18.1.2", "--port",
                 "7000", "--scale", "20", "--max-frame", "2048"});
    long long rounds_ok = 0, rounds_failed = 0;
    constexpr long long k_rounds = 2000;
    const auto results = run_storm(storm, {0, 1, 2, 3}, [&](const std::string& name, long long tried) -> long long {
        EXPECT_TRUE(client->send("rtt 198.18.0.1 7000 " + std::to_string(k_rounds) + " 64"));
        const auto line = ask(injector, "send " + pcaps.path() + "/" + name + ".pcap", "INJECTED", 60s);
        EXPECT_EQ(field(line, "frames"), tried) << line;
        EXPECT_EQ(field(line, "too_big"), 0) << line;
        const auto rtt = client->expect("RTT", 60s);
        const bool ok = rtt && field(*rtt, "ok") == 1 && field(*rtt, "rounds") == k_rounds;
        EXPECT_TRUE(ok) << name << ": " << rtt.value_or("no RTT line");
        rounds_ok += ok ? k_rounds : field(rtt.value_or(""), "rounds").value_or(0);
        rounds_failed += ok ? 0 : 1;
        return field(line, "frames").value_or(0);
    });
    print("user-veth", results);
    std::printf("[ storm user-veth ] echo during the storm: rounds_ok=%lld failed_connections=%lld\n", rounds_ok,
                rounds_failed);
    expect_counted(results, true);
    EXPECT_EQ(rounds_failed, 0);

    const auto after = ask(*client, "load 198.18.0.1 7000 50 8 20000", "LOAD", 60s);
    std::printf("[ storm user-veth ] after the storm: %s\n", after.c_str());
    EXPECT_EQ(field(after, "done"), 50) << after;
    EXPECT_EQ(field(after, "failed"), 0) << after;
    EXPECT_TRUE(server->running());
    EXPECT_TRUE(primary_->running());
    ASSERT_TRUE(injector.send("quit"));
    EXPECT_TRUE(injector.expect("BYE", 10s));
    stop_app(*client);
    stop_app(*server);
}

} // namespace
} // namespace gazelle::test
