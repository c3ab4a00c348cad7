// SPDX-License-Identifier: BSD-3-Clause
// Injects raw frames from pcap files straight into a user-veth port: a secondary that owns one
// queue slot (claimed for its pid by the test primary) and sends every record of a file through
// the port's tx path (the bridge switches it to the destination port's rx queue by MAC and
// software RSS), exactly as a stack's transmit would. What comes back to its own queue is freed.
//
//   storm_injector_actor EAL... -- SLOT
//       prints "READY slot=N"; then commands on stdin:
//   send FILE   -> INJECTED frames= sent= too_big= alloc_waits=
//   quit        -> BYE
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_mbuf.h>

#include "fabric/eal.h"
#include "fabric/mbuf.h"
#include "fabric/port_io.h"
#include "fabric/registry.h"

using namespace gazelle::fabric;

namespace {

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
        line.push_back(c);
    }
}

// The records of a classic pcap file (little-endian, as scapy writes it); empty on any error.
std::vector<std::string> pcap_records(const std::string& path) {
    std::string data;
    if (FILE* f = std::fopen(path.c_str(), "rb"); f != nullptr) {
        std::array<char, 65536> chunk{};
        std::size_t n = 0;
        while ((n = std::fread(chunk.data(), 1, chunk.size(), f)) != 0) {
            data.append(chunk.data(), n);
        }
        std::fclose(f);
    }
    std::vector<std::string> out;
    if (data.size() < 24) {
        return out;
    }
    std::size_t at = 24;
    while (at + 16 <= data.size()) {
        std::uint32_t incl = 0;
        std::memcpy(&incl, data.data() + at + 8, 4);
        at += 16;
        if (at + incl > data.size()) {
            break;
        }
        out.emplace_back(data.substr(at, incl));
        at += incl;
    }
    return out;
}

int run(QueueSlot slot) {
    auto registry = Registry::attach();
    if (!registry) {
        std::printf("ERROR %s\n", registry.error().message.c_str());
        return 1;
    }
    auto io = make_port_io(*registry, slot);
    auto pool = lookup_mbuf_pool(slot);
    if (!io || !pool) {
        std::printf("ERROR no port io or pool for slot %u\n", slot);
        return 1;
    }
    // Replies to the storm (RSTs, SYN-ACKs, ARP) that the bridge steers to our queue: freed, so
    // our rx queue never fills. Same thread discipline as a stack: one thread polls rx, the
    // command thread only transmits.
    std::atomic<bool> stop{false};
    std::thread drain([&] {
        std::array<rte_mbuf*, k_burst_max> rx;
        while (!stop.load()) {
            const unsigned n = (*io)->rx_burst(slot, rx);
            if (n != 0) {
                free_burst({rx.data(), n});
            } else {
                usleep(200);
            }
        }
    });
    std::printf("READY slot=%u\n", slot);
    std::string line;
    while (read_line(line) && line != "quit") {
        if (line.rfind("send ", 0) != 0) {
            std::printf("UNKNOWN %s\n", line.c_str());
            continue;
        }
        const auto frames = pcap_records(line.substr(5));
        unsigned sent = 0, too_big = 0, alloc_waits = 0;
        for (const std::string& f : frames) {
            rte_mbuf* m = nullptr;
            while (alloc_burst(*pool, std::span<rte_mbuf*>(&m, 1), registry->owner_tag(slot)) != 1) {
                ++alloc_waits; // receivers still hold our mbufs
                usleep(100);
            }
            // One segment, as every transmit of the fabric (a stack drops bigger frames itself).
            char* p = f.size() <= rte_pktmbuf_tailroom(m) ? rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size()))
                                                          : nullptr;
            if (p == nullptr) {
                free_one(m);
                ++too_big;
                continue;
            }
            std::memcpy(p, f.data(), f.size());
            sent += (*io)->tx_burst(slot, std::span<rte_mbuf* const>(&m, 1));
        }
        std::printf("INJECTED frames=%zu sent=%u too_big=%u alloc_waits=%u\n", frames.size(), sent, too_big,
                    alloc_waits);
    }
    stop.store(true);
    drain.join();
    std::printf("BYE\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    auto first = eal_init_from_main(argc, argv);
    if (!first) {
        std::printf("ERROR %s\n", first.error().message.c_str());
        return 1;
    }
    EalSession eal;
    if (*first >= argc) {
        std::printf("ERROR usage: storm_injector_actor EAL... -- SLOT\n");
        return 2;
    }
    return run(static_cast<QueueSlot>(std::stoul(argv[*first])));
}
