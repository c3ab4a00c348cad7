// SPDX-License-Identifier: BSD-3-Clause
// An ethdev port across processes: the primary starts a tap vdev (net_tap0, iface gzt<pid>) with
// two queues, one pool per queue slot; two secondaries own one queue each and rx/tx through
// PortIo. The test plays the kernel side: it configures the interface with `ip` (198.18.0.1/24,
// a static neighbour 198.18.0.2 -> the port's MAC), sends UDP over many flows from real sockets
// and checks both secondaries receive them with their owner tag; then each secondary transmits
// and the test sees the frames on an AF_PACKET socket bound to the interface. The tap interface
// goes away with the primary, also when the test fails (the Child destructor kills it).
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace gazelle::fabric {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::field;

constexpr int k_flows = 32;
constexpr int k_per_flow = 8;
constexpr int k_tx_per_queue = 50;

std::vector<std::string> actor_args(const std::vector<std::string>& eal, const std::vector<std::string>& mode) {
    std::vector<std::string> argv{test::bin_path("tap_port_actor")};
    argv.insert(argv.end(), eal.begin(), eal.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), mode.begin(), mode.end());
    return argv;
}

// Runs a command line (only `ip` with arguments we build); returns its exit status.
int run(const std::string& command) {
    const int rc = std::system((command + " >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string text_value(const std::string& line, const std::string& key) {
    const std::string want = key + "=";
    const auto at = line.find(want);
    if (at == std::string::npos) {
        return {};
    }
    const auto end = line.find(' ', at);
    return line.substr(at + want.size(), end == std::string::npos ? std::string::npos : end - at - want.size());
}

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    int get() const { return fd_; }

private:
    int fd_;
};

bool interface_gone(const std::string& iface, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (if_nametoindex(iface.c_str()) != 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

TEST(TapPortMp, SecondariesReceiveTaggedAndTransmitOnTheirQueues) {
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        GTEST_SKIP() << "/dev/net/tun is missing: no tap interfaces on this machine";
    }
    if (run("ip -V") != 0) {
        GTEST_SKIP() << "the ip command (iproute2) is missing";
    }
    test::HugeMount mount;
    if (!mount.ok()) {
        GTEST_SKIP() << mount.error();
    }
    const std::string iface = "gzt" + std::to_string(getpid());
    ASSERT_EQ(if_nametoindex(iface.c_str()), 0u) << iface << " exists already";
    test::EalInstance eal(mount, "tap");

    Child primary(actor_args(eal.primary_args(0, {"--vdev", "net_tap0,iface=" + iface}), {"primary", "2"}));
    auto ready = primary.expect("READY", 30s);
    ASSERT_TRUE(ready) << primary.transcript();
    std::printf("%s\n", ready->c_str());
    const std::string port_mac = text_value(*ready, "mac");
    ASSERT_EQ(port_mac.size(), 17u) << *ready;
    EXPECT_EQ(field(*ready, "supports_reta"), 0) << "the tap PMD has no RETA: queues must be adopted";
    ASSERT_EQ(field(*ready, "first_slot"), 0);
    EXPECT_EQ(field(*ready, "too_many"), EINVAL) << "5 tap queues must be refused on DPDK 22.11";
    EXPECT_EQ(field(*ready, "no_device"), ENODEV);
    const long long baseline0 = field(*ready, "in_use0").value_or(-1);
    const long long baseline1 = field(*ready, "in_use1").value_or(-1);

    // Kernel side. IPv6 off first so the kernel sends no router solicitations or MLD reports.
    ASSERT_NE(if_nametoindex(iface.c_str()), 0u) << "the tap PMD did not create " << iface;
    std::ofstream("/proc/sys/net/ipv6/conf/" + iface + "/disable_ipv6") << "1\n";
    ASSERT_EQ(run("ip addr add 198.18.0.1/24 dev " + iface), 0);
    ASSERT_EQ(run("ip link set " + iface + " up"), 0);
    ASSERT_EQ(run("ip neigh replace 198.18.0.2 lladdr " + port_mac + " dev " + iface + " nud permanent"), 0);
    std::string kernel_mac;
    std::ifstream("/sys/class/net/" + iface + "/address") >> kernel_mac;
    ASSERT_EQ(kernel_mac.size(), 17u);

    Child q0(actor_args(eal.secondary_args(1), {"rxtx", "0"}));
    Child q1(actor_args(eal.secondary_args(2), {"rxtx", "1"}));
    Child* queues[] = {&q0, &q1};
    for (unsigned s = 0; s < 2; ++s) {
        auto r = queues[s]->expect("READY", 30s);
        ASSERT_TRUE(r) << queues[s]->transcript();
        EXPECT_EQ(text_value(*r, "kind"), "ethdev");
        EXPECT_EQ(field(*r, "supports_reta"), 0);
        ASSERT_TRUE(primary.send("claim " + std::to_string(s) + " " + std::to_string(queues[s]->pid()) + " " +
                                 std::to_string(s + 1)));
        ASSERT_TRUE(primary.expect("CLAIMED", 10s)) << primary.transcript();
    }

    // Kernel -> DPDK: k_flows UDP flows (distinct source ports) to 198.18.0.2:7777.
    {
        std::vector<Fd> sockets;
        for (int f = 0; f < k_flows; ++f) {
            Fd fd(socket(AF_INET, SOCK_DGRAM, 0));
            ASSERT_GE(fd.get(), 0) << std::strerror(errno);
            ASSERT_EQ(setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(),
                                 static_cast<socklen_t>(iface.size())),
                      0)
                << std::strerror(errno);
            sockaddr_in local{};
            local.sin_family = AF_INET;
            local.sin_port = htons(static_cast<std::uint16_t>(41000 + f));
            local.sin_addr.s_addr = htonl(0xc6120001u);
            ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local), 0) << std::strerror(errno);
            sockets.push_back(std::move(fd));
        }
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(7777);
        to.sin_addr.s_addr = htonl(0xc6120002u);
        for (int i = 0; i < k_per_flow; ++i) {
            for (const Fd& fd : sockets) {
                const char payload[] = "gazelle tap test";
                ASSERT_EQ(sendto(fd.get(), payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
                          static_cast<ssize_t>(sizeof payload))
                    << std::strerror(errno);
            }
            std::this_thread::sleep_for(2ms); // stay below the tap queues' length
        }
    }
    std::array<long long, 2> udp{};
    std::array<std::string, 2> last_report;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (udp[0] + udp[1] < k_flows * k_per_flow && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
        for (unsigned s = 0; s < 2; ++s) {
            ASSERT_TRUE(queues[s]->send("report"));
            auto r = queues[s]->expect("RX", 10s);
            ASSERT_TRUE(r) << queues[s]->transcript();
            EXPECT_EQ(field(*r, "bad_tag"), 0) << *r;
            udp[s] = field(*r, "udp").value_or(0);
            last_report[s] = *r;
        }
    }
    std::printf("%s\n%s\n", last_report[0].c_str(), last_report[1].c_str());
    EXPECT_EQ(udp[0] + udp[1], k_flows * k_per_flow);
    EXPECT_GT(udp[0], 0) << "the kernel spreads flows over both queues";
    EXPECT_GT(udp[1], 0) << "the kernel spreads flows over both queues";

    // DPDK -> kernel: each secondary sends on its own queue; an AF_PACKET socket sees the frames.
    Fd packet(socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    ASSERT_GE(packet.get(), 0) << std::strerror(errno);
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    ASSERT_EQ(bind(packet.get(), reinterpret_cast<sockaddr*>(&ll), sizeof ll), 0) << std::strerror(errno);
    for (unsigned s = 0; s < 2; ++s) {
        ASSERT_TRUE(queues[s]->send("send " + std::to_string(k_tx_per_queue) + " " + kernel_mac));
    }
    for (unsigned s = 0; s < 2; ++s) {
        auto sent = queues[s]->expect("SENT", 10s);
        ASSERT_TRUE(sent) << queues[s]->transcript();
        EXPECT_EQ(field(*sent, "sent"), k_tx_per_queue) << *sent;
    }
    std::array<int, 2> seen{};
    const auto read_deadline = std::chrono::steady_clock::now() + 5s;
    while (seen[0] + seen[1] < 2 * k_tx_per_queue && std::chrono::steady_clock::now() < read_deadline) {
        pollfd pfd{packet.get(), POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        std::array<std::uint8_t, 2048> frame{};
        sockaddr_ll from{};
        socklen_t from_len = sizeof from;
        const ssize_t n = recvfrom(packet.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&from),
                                   &from_len);
        if (n < 47 || from.sll_pkttype == PACKET_OUTGOING) {
            continue;
        }
        const std::uint16_t sport = static_cast<std::uint16_t>((frame[34] << 8) | frame[35]);
        if (frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 17 && std::memcmp(frame.data() + 42, "GZTAP", 5) == 0 &&
            (sport == 5000 || sport == 5001)) {
            ++seen[sport - 5000];
        }
    }
    EXPECT_EQ(seen[0], k_tx_per_queue) << "frames from queue 0 on the kernel side";
    EXPECT_EQ(seen[1], k_tx_per_queue) << "frames from queue 1 on the kernel side";

    // Statistics written by PortIo, and the pools: what is in use is what the tap rx rings keep posted.
    for (unsigned s = 0; s < 2; ++s) {
        ASSERT_TRUE(primary.send("stats " + std::to_string(s)));
        auto st = primary.expect("STATS", 10s);
        ASSERT_TRUE(st);
        std::printf("%s\n", st->c_str());
        EXPECT_GE(field(*st, "rx").value_or(0), udp[s]) << *st;
        EXPECT_EQ(field(*st, "tx"), k_tx_per_queue) << *st;
        EXPECT_EQ(field(*st, "drop_tx_full"), 0) << *st;
    }
    for (Child* c : queues) {
        ASSERT_TRUE(c->send("quit"));
        EXPECT_TRUE(c->wait_success(20s)) << c->transcript();
    }
    ASSERT_TRUE(primary.send("usage"));
    auto usage = primary.expect("USAGE", 10s);
    ASSERT_TRUE(usage);
    std::printf("%s (at start: in_use0=%lld in_use1=%lld)\n", usage->c_str(), baseline0, baseline1);
    EXPECT_EQ(field(*usage, "in_use0"), baseline0) << *usage;
    EXPECT_EQ(field(*usage, "in_use1"), baseline1) << *usage;

    ASSERT_TRUE(primary.send("quit"));
    EXPECT_TRUE(primary.expect("BYE", 10s)) << primary.transcript();
    EXPECT_TRUE(primary.wait_success(20s)) << primary.transcript();
    EXPECT_TRUE(interface_gone(iface, 5s)) << iface << " is still there";
}

} // namespace
} // namespace gazelle::fabric
