// SPDX-License-Identifier: BSD-3-Clause
// Helper processes of tap_port_mp_test. Line protocol on stdin/stdout.
//
//   tap_port_actor <EAL args incl. --vdev net_tap0,iface=X> -- primary <queues>
//       registry + ethdev port "tap0" (198.18.0.2) with one pool per queue slot, configured and
//       started; prints "READY mac=.. supports_reta=.. driver_reta=.. in_use0=.. ...".
//       Commands: "claim <slot> <pid> <lcore>", "usage", "stats <slot>", "quit".
//   tap_port_actor <EAL args> -- rxtx <slot>
//       polls its queue through PortIo, checks owner tags and counts UDP frames to port 7777.
//       Commands: "send <n> <dst mac>" (UDP 198.18.0.2:(5000+slot) -> 198.18.0.1:7778),
//       "report", "quit".
//
// The tap PMD raises SIGIO in every process that uses it: reads retry on EINTR and sleeps loop on
// nanosleep.
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <time.h>
#include <unistd.h>

#include "fabric/eal.h"
#include "fabric/mbuf.h"
#include "fabric/port_io.h"
#include "fabric/registry.h"
#include "fabric/shared_region.h"
#include "fabric/softrss.h"

using namespace gazelle::fabric;

namespace {

constexpr std::uint32_t k_port_ip = 0xc6120002u;   // 198.18.0.2, the DPDK side
constexpr std::uint32_t k_kernel_ip = 0xc6120001u; // 198.18.0.1, the kernel side
constexpr std::uint16_t k_rx_port = 7777;
constexpr std::uint16_t k_tx_dst_port = 7778;

bool read_line(std::string& line) {
    line.clear();
    char c = 0;
    for (;;) {
        const ssize_t n = ::read(STDIN_FILENO, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return !line.empty();
        }
        if (c == '\n') {
            return true;
        }
        line += c;
    }
}

void sleep_usec(long usec) {
    timespec ts{usec / 1000000, (usec % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < line.size()) {
        const std::size_t j = line.find(' ', i);
        const std::size_t end = j == std::string::npos ? line.size() : j;
        if (end > i) {
            out.push_back(line.substr(i, end - i));
        }
        i = end + 1;
    }
    return out;
}

void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
    put16(p, static_cast<std::uint16_t>(v >> 16));
    put16(p + 2, static_cast<std::uint16_t>(v));
}
std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

std::uint16_t ip_checksum(const std::uint8_t* header, std::size_t len) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < len; i += 2) {
        sum += get16(header + i);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

std::string mac_text(const std::uint8_t* mac) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return buf;
}

bool parse_mac(const std::string& text, std::uint8_t* mac) {
    unsigned v[6];
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
        return false;
    }
    for (int i = 0; i < 6; ++i) {
        mac[i] = static_cast<std::uint8_t>(v[i]);
    }
    return true;
}

int fail(const std::string& what) {
    std::printf("ERROR %s\n", what.c_str());
    return 1;
}

int run_primary(std::uint16_t nb_queues) {
    auto registry = Registry::create(4);
    if (!registry) {
        return fail(registry.error().message);
    }
    EthdevPortConfig config;
    config.device = "net_tap0";
    config.name = "tap0";
    // Refused before anything is configured: more queues than DPDK 22.11's tap PMD survives, and a
    // device that does not exist.
    config.nb_queues = k_tap_max_queues + 1;
    auto too_many = add_ethdev_port(*registry, config);
    config.device = "net_nothing0";
    config.nb_queues = 1;
    auto no_device = add_ethdev_port(*registry, config);
    config.device = "net_tap0";
    config.nb_queues = nb_queues;
    config.ipv4 = rte_cpu_to_be_32(k_port_ip);
    config.netmask = rte_cpu_to_be_32(0xffffff00u);
    auto port = add_ethdev_port(*registry, config);
    if (!port) {
        return fail(port.error().message);
    }
    const PortEntry& entry = registry->port(*port);
    std::vector<rte_mempool*> pools;
    for (std::uint16_t q = 0; q < nb_queues; ++q) {
        auto pool = create_mbuf_pool(static_cast<QueueSlot>(entry.first_slot + q),
                                     MbufPoolParams{2047, 64, RTE_MBUF_DEFAULT_BUF_SIZE});
        if (!pool) {
            return fail(pool.error().message);
        }
        pools.push_back(*pool);
    }
    auto info = start_ethdev_port(*registry, *port, EthdevParams{256, 256});
    if (!info) {
        return fail(info.error().message);
    }
    std::string usage;
    for (std::uint16_t q = 0; q < nb_queues; ++q) {
        usage += " in_use" + std::to_string(q) + "=" + std::to_string(pool_usage(pools[q]).in_use);
    }
    std::printf("READY mac=%s supports_reta=%d driver_reta=%u driver=%s first_slot=%u too_many=%d no_device=%d%s\n",
                mac_text(entry.mac).c_str(), info->supports_reta ? 1 : 0, info->driver_reta_size, info->driver.c_str(),
                entry.first_slot, too_many ? 0 : too_many.error().code, no_device ? 0 : no_device.error().code,
                usage.c_str());
    std::string line;
    while (read_line(line)) {
        const auto w = words(line);
        if (w.empty()) {
            continue;
        }
        if (w[0] == "claim" && w.size() == 4) {
            auto epoch = registry->claim(static_cast<QueueSlot>(std::stoul(w[1])), std::stoi(w[2]),
                                         static_cast<std::uint16_t>(std::stoul(w[3])));
            if (!epoch) {
                std::printf("ERROR %s\n", epoch.error().message.c_str());
            } else {
                std::printf("CLAIMED slot=%s epoch=%u\n", w[1].c_str(), *epoch);
            }
        } else if (w[0] == "usage") {
            std::string text;
            for (std::uint16_t q = 0; q < nb_queues; ++q) {
                text += " in_use" + std::to_string(q) + "=" + std::to_string(pool_usage(pools[q]).in_use);
            }
            std::printf("USAGE%s\n", text.c_str());
        } else if (w[0] == "stats" && w.size() == 2) {
            const auto s = static_cast<QueueSlot>(std::stoul(w[1]));
            const QueueStats& st = registry->stats(s);
            std::printf("STATS slot=%u rx=%lu tx=%lu drop_tx_full=%lu\n", s, st.rx_packets, st.tx_packets,
                        st.drop_tx_full);
        } else if (w[0] == "quit") {
            break;
        } else {
            std::printf("ERROR unknown command '%s'\n", line.c_str());
        }
    }
    stop_ethdev_port(*registry, *port);
    for (rte_mempool* pool : pools) {
        rte_mempool_free(pool);
    }
    free_region(k_registry_name);
    std::printf("BYE\n");
    return 0;
}

int run_rxtx(QueueSlot slot) {
    auto registry = Registry::attach();
    if (!registry) {
        return fail(registry.error().message);
    }
    auto io = make_port_io(*registry, slot);
    if (!io) {
        return fail(io.error().message);
    }
    auto pool = lookup_mbuf_pool(slot);
    if (!pool) {
        return fail(pool.error().message);
    }
    const PortEntry& port = registry->port((*io)->port());

    std::mutex mutex;
    std::vector<std::string> commands; // handed from the stdin thread to the poll loop
    std::atomic<bool> pending{false};
    std::atomic<bool> quit{false};
    std::thread reader([&] {
        std::string line;
        while (read_line(line)) {
            const bool is_quit = line == "quit";
            {
                std::lock_guard lock(mutex);
                commands.push_back(line);
            }
            pending.store(true);
            if (is_quit) {
                return;
            }
        }
        quit.store(true);
    });
    std::printf("READY slot=%u kind=%s supports_reta=%d\n", slot,
                (*io)->kind() == PortKind::ethdev ? "ethdev" : "user_veth", (*io)->supports_reta() ? 1 : 0);

    std::uint64_t udp = 0;
    std::uint64_t other = 0;
    std::uint64_t bad_tag = 0;
    std::set<std::uint16_t> sports;
    std::array<rte_mbuf*, k_burst_max> rx;
    while (!quit.load()) {
        if (pending.exchange(false)) {
            std::vector<std::string> todo;
            {
                std::lock_guard lock(mutex);
                todo.swap(commands);
            }
            for (const std::string& line : todo) {
                const auto w = words(line);
                if (w.empty()) {
                    continue;
                }
                if (w[0] == "quit") {
                    quit.store(true);
                } else if (w[0] == "report") {
                    std::printf("RX slot=%u udp=%lu other=%lu bad_tag=%lu sports=%zu\n", slot, udp, other, bad_tag,
                                sports.size());
                } else if (w[0] == "send" && w.size() == 3) {
                    std::uint8_t dst_mac[6];
                    if (!parse_mac(w[2], dst_mac)) {
                        std::printf("ERROR bad mac '%s'\n", w[2].c_str());
                        continue;
                    }
                    const unsigned n = static_cast<unsigned>(std::stoul(w[1]));
                    unsigned sent = 0;
                    for (unsigned done = 0; done < n;) {
                        std::array<rte_mbuf*, k_burst_max> burst;
                        const unsigned b = std::min<unsigned>(k_burst_max, n - done);
                        if (alloc_burst(*pool, std::span<rte_mbuf*>(burst.data(), b), registry->owner_tag(slot)) != b) {
                            sleep_usec(100);
                            continue;
                        }
                        bool ok = true;
                        for (unsigned i = 0; i < b; ++i) {
                            auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(burst[i], 60));
                            if (p == nullptr) {
                                ok = false;
                                break;
                            }
                            std::memset(p, 0, 60);
                            std::memcpy(p, dst_mac, 6);
                            std::memcpy(p + 6, port.mac, 6);
                            put16(p + 12, 0x0800);
                            std::uint8_t* ip = p + 14;
                            ip[0] = 0x45;
                            put16(ip + 2, 46);
                            ip[8] = 64;
                            ip[9] = 17;
                            put32(ip + 12, k_port_ip);
                            put32(ip + 16, k_kernel_ip);
                            put16(ip + 10, ip_checksum(ip, 20));
                            put16(ip + 20, static_cast<std::uint16_t>(5000 + slot));
                            put16(ip + 22, k_tx_dst_port);
                            put16(ip + 24, 26); // UDP checksum 0: none (IPv4)
                            std::memcpy(p + 42, "GZTAP", 5);
                            put32(p + 47, done + i);
                        }
                        if (!ok) {
                            free_burst({burst.data(), b});
                            std::printf("ERROR append failed\n");
                            break;
                        }
                        sent += (*io)->tx_burst(slot, std::span<rte_mbuf* const>(burst.data(), b));
                        done += b;
                    }
                    std::printf("SENT slot=%u n=%u sent=%u\n", slot, n, sent);
                }
            }
            continue;
        }
        const unsigned n = (*io)->rx_burst(slot, rx);
        if (n == 0) {
            sleep_usec(200); // two CPUs: don't spin against the kernel that feeds us
            continue;
        }
        const OwnerTag mine = registry->owner_tag(slot);
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = rx[i];
            if (mbuf_owner(m) != mine) {
                ++bad_tag;
            }
            const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
            const RssInput in = rss_input_of_frame({p, rte_pktmbuf_data_len(m)});
            if (in.nb_words == 3 && p[14 + 9] == 17 && (in.words[2] & 0xffffu) == k_rx_port &&
                in.words[1] == k_port_ip) {
                ++udp;
                sports.insert(static_cast<std::uint16_t>(in.words[2] >> 16));
            } else {
                ++other;
            }
        }
        free_burst({rx.data(), n});
    }
    reader.join();
    std::printf("BYE\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    auto first = eal_init_from_main(argc, argv);
    if (!first) {
        return fail(first.error().message);
    }
    const std::vector<std::string> args(argv + *first, argv + argc);
    int rc = 2;
    if (args.size() == 2 && args[0] == "primary") {
        rc = run_primary(static_cast<std::uint16_t>(std::stoul(args[1])));
    } else if (args.size() == 2 && args[0] == "rxtx") {
        rc = run_rxtx(static_cast<QueueSlot>(std::stoul(args[1])));
    } else {
        (void)fail("usage: tap_port_actor <EAL> -- primary <queues> | rxtx <slot>");
    }
    (void)rte_eal_cleanup();
    return rc;
}
