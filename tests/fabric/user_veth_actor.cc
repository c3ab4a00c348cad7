// SPDX-License-Identifier: BSD-3-Clause
// Helper processes of user_veth_mp_test. Line protocol on stdin/stdout.
//
//   user_veth_actor <EAL args> -- primary
//       creates the registry, port A (2 queues) and B (1 queue) on bridge 1, one pool per slot and
//       the user-veth region; prints "READY ...". Commands: "claim <slot> <pid> <lcore>",
//       "usage", "stats <slot>", "quit".
//   user_veth_actor <EAL args> -- rx <slot>
//       receives on <slot> through PortIo (sleeping on the inbox doorbell when idle) and checks
//       every frame: owner tag, RSS queue, per-flow sequence. "report" prints FLOW lines and a
//       REPORT line once the queue is empty; then "quit".
//   user_veth_actor <EAL args> -- tx <slot> <flows> <frames_per_flow>
//       on "go", sends the frames round-robin over the flows to port A's MAC; prints "SENT ...".
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>
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
#include "fabric/user_veth.h"

using namespace gazelle::fabric;

namespace {

constexpr std::uint8_t k_mac_a[6] = {0x02, 0, 0, 0, 0, 0x0a};
constexpr std::uint8_t k_mac_b[6] = {0x02, 0, 0, 0, 0, 0x0b};
constexpr unsigned k_max_slots = 8;
constexpr std::uint16_t k_dst_port = 9000;

// The tap PMD is not used here, but stay robust to signals: retry on EINTR, sleep with nanosleep.
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
std::uint32_t get32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// Flow f: 198.18.1.(f % 250):(10000 + f) -> 198.18.0.1:9000, UDP (the test uses the same formula).
std::uint32_t flow_src_ip(unsigned f) { return 0xc6120100u + f % 250; }
constexpr std::uint32_t k_dst_ip = 0xc6120001u;
std::uint16_t flow_src_port(unsigned f) { return static_cast<std::uint16_t>(10000 + f); }

int fail(const std::string& what) {
    std::printf("ERROR %s\n", what.c_str());
    return 1;
}

int run_primary() {
    auto registry = Registry::create(k_max_slots);
    if (!registry) {
        return fail(registry.error().message);
    }
    const struct {
        const char* name;
        const std::uint8_t* mac;
        std::uint16_t queues;
    } specs[] = {{"A", k_mac_a, 2}, {"B", k_mac_b, 1}};
    for (const auto& s : specs) {
        PortEntry entry{};
        std::strncpy(entry.name, s.name, sizeof entry.name - 1);
        entry.kind = PortKind::user_veth;
        std::memcpy(entry.mac, s.mac, 6);
        entry.bridge = 1;
        entry.nb_queues = s.queues;
        entry.mtu = 1500;
        std::memcpy(entry.rss_key, k_default_rss_key.data(), k_rss_key_bytes);
        if (auto added = registry->add_port(entry); !added) {
            return fail(added.error().message);
        }
    }
    const unsigned nb_slots = registry->nb_slots();
    std::vector<rte_mempool*> pools;
    for (QueueSlot s = 0; s < nb_slots; ++s) {
        auto pool = create_mbuf_pool(s, MbufPoolParams{2047, 64, RTE_MBUF_DEFAULT_BUF_SIZE});
        if (!pool) {
            return fail(pool.error().message);
        }
        pools.push_back(*pool);
    }
    // Lanes longer than a sender's pool: a lane can never be full in this test.
    auto veth = UserVeth::create(*registry, UserVethParams{4096});
    if (!veth) {
        return fail(veth.error().message);
    }
    std::printf("READY slots=%u a_first=%u b_first=%u\n", nb_slots, registry->port(0).first_slot,
                registry->port(1).first_slot);
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
            unsigned total = 0;
            std::string text;
            for (QueueSlot s = 0; s < nb_slots; ++s) {
                const PoolUsage u = pool_usage(pools[s]);
                total += u.in_use;
                text += " slot" + std::to_string(s) + "=" + std::to_string(u.in_use);
            }
            std::printf("USAGE%s total=%u\n", text.c_str(), total);
        } else if (w[0] == "stats" && w.size() == 2) {
            const auto s = static_cast<QueueSlot>(std::stoul(w[1]));
            const QueueStats& st = registry->stats(s);
            std::printf("STATS slot=%u rx=%lu tx=%lu drop_owner_gone=%lu drop_tx_full=%lu drop_malformed=%lu "
                        "drop_unknown_mac=%lu\n",
                        s, st.rx_packets, st.tx_packets, st.drop_owner_gone, st.drop_tx_full, st.drop_malformed,
                        veth->stats(s).drop_unknown_mac);
        } else if (w[0] == "quit") {
            break;
        } else {
            std::printf("ERROR unknown command '%s'\n", line.c_str());
        }
    }
    UserVeth::destroy();
    for (rte_mempool* pool : pools) {
        rte_mempool_free(pool);
    }
    free_region(k_registry_name);
    std::printf("BYE\n");
    return 0;
}

struct FlowState {
    std::uint64_t count = 0;
    std::int64_t last_seq = -1;
    std::uint64_t out_of_order = 0;
};

int run_rx(QueueSlot slot) {
    auto registry = Registry::attach();
    if (!registry) {
        return fail(registry.error().message);
    }
    auto io = make_port_io(*registry, slot);
    if (!io) {
        return fail(io.error().message);
    }
    auto veth = UserVeth::attach(*registry); // for the doorbell of our inbox
    if (!veth) {
        return fail(veth.error().message);
    }
    const PortEntry& port = registry->port((*io)->port());
    const RssKey key = RssKey::of_port(port);
    const auto hw_queue = static_cast<std::uint16_t>(slot - port.first_slot);
    std::atomic<int> command{0}; // 1: report, 2: quit
    std::thread reader([&] {
        std::string line;
        while (read_line(line)) {
            if (line == "report") {
                command.store(1);
            } else if (line == "quit") {
                command.store(2);
                return;
            }
        }
        command.store(2);
    });
    std::printf("READY slot=%u\n", slot);

    std::map<std::uint32_t, FlowState> flows;
    std::uint64_t total = 0;
    std::uint64_t bad_tag = 0;
    std::uint64_t misrouted = 0;
    std::uint64_t foreign = 0;
    std::array<rte_mbuf*, k_burst_max> rx;
    Inbox& inbox = veth->rx_inbox(slot);
    bool reported = false;
    unsigned empty_polls = 0;
    while (command.load() != 2) {
        unsigned n = (*io)->rx_burst(slot, rx);
        if (n == 0) {
            if (command.load() == 1 && !reported && ++empty_polls > 3) {
                // Drained: the test sends "report" only after the sender finished.
                for (const auto& [id, st] : flows) {
                    std::printf("FLOW id=%u n=%lu ooo=%lu\n", id, st.count, st.out_of_order);
                }
                std::printf("REPORT slot=%u total=%lu flows=%zu bad_tag=%lu misrouted=%lu foreign=%lu\n", slot, total,
                            flows.size(), bad_tag, misrouted, foreign);
                reported = true;
            }
            const std::uint32_t seen = inbox.prepare_sleep();
            n = (*io)->rx_burst(slot, rx);
            if (n == 0) {
                inbox.wait(seen, 2000);
            }
            inbox.finish_sleep();
            if (n == 0) {
                continue;
            }
        }
        empty_polls = 0;
        const OwnerTag mine = registry->owner_tag(slot);
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = rx[i];
            ++total;
            if (mbuf_owner(m) != mine) {
                ++bad_tag;
            }
            const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
            if (rte_pktmbuf_data_len(m) < 50 || p[12] != 0x08 || p[13] != 0x00) {
                ++foreign;
                continue;
            }
            if (rss_queue_of_frame(port, key, {p, rte_pktmbuf_data_len(m)}) != hw_queue) {
                ++misrouted;
            }
            FlowState& st = flows[get32(p + 42)];
            const std::uint32_t seq = get32(p + 46);
            if (static_cast<std::int64_t>(seq) != st.last_seq + 1) {
                ++st.out_of_order;
            }
            st.last_seq = seq;
            ++st.count;
        }
        free_burst({rx.data(), n});
    }
    reader.join();
    std::printf("BYE\n");
    return 0;
}

int run_tx(QueueSlot slot, unsigned nb_flows, unsigned per_flow) {
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
    std::printf("READY slot=%u\n", slot);
    std::string line;
    while (read_line(line) && line != "go") {
    }
    const unsigned total = nb_flows * per_flow;
    unsigned made = 0;
    unsigned sent = 0;
    unsigned alloc_waits = 0;
    std::array<rte_mbuf*, k_burst_max> burst;
    while (made < total) {
        const unsigned n = std::min<unsigned>(k_burst_max, total - made);
        if (alloc_burst(*pool, std::span<rte_mbuf*>(burst.data(), n), registry->owner_tag(slot)) != n) {
            ++alloc_waits; // receivers still hold our mbufs: wait for them to free some
            sleep_usec(100);
            continue;
        }
        for (unsigned i = 0; i < n; ++i) {
            const unsigned index = made + i;
            const unsigned flow = index % nb_flows;
            const unsigned seq = index / nb_flows;
            auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(burst[i], 60));
            if (p == nullptr) {
                free_burst({burst.data(), n});
                return fail("mbuf too small for a 60-byte frame");
            }
            std::memset(p, 0, 60);
            std::memcpy(p, k_mac_a, 6);
            std::memcpy(p + 6, k_mac_b, 6);
            put16(p + 12, 0x0800);
            std::uint8_t* ip = p + 14;
            ip[0] = 0x45;
            put16(ip + 2, 46);
            ip[8] = 64;
            ip[9] = 17;
            put32(ip + 12, flow_src_ip(flow));
            put32(ip + 16, k_dst_ip);
            put16(ip + 20, flow_src_port(flow));
            put16(ip + 22, k_dst_port);
            put16(ip + 24, 26);
            put32(p + 42, flow);
            put32(p + 46, seq);
        }
        sent += (*io)->tx_burst(slot, std::span<rte_mbuf* const>(burst.data(), n));
        made += n;
    }
    std::printf("SENT n=%u sent=%u alloc_waits=%u\n", made, sent, alloc_waits);
    while (read_line(line) && line != "quit") {
    }
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
    if (args.size() == 1 && args[0] == "primary") {
        rc = run_primary();
    } else if (args.size() == 2 && args[0] == "rx") {
        rc = run_rx(static_cast<QueueSlot>(std::stoul(args[1])));
    } else if (args.size() == 4 && args[0] == "tx") {
        rc = run_tx(static_cast<QueueSlot>(std::stoul(args[1])), static_cast<unsigned>(std::stoul(args[2])),
                    static_cast<unsigned>(std::stoul(args[3])));
    } else {
        (void)fail("usage: user_veth_actor <EAL> -- primary | rx <slot> | tx <slot> <flows> <per_flow>");
    }
    (void)rte_eal_cleanup();
    return rc;
}
