// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Software RSS: the Toeplitz hash a NIC computes over a received frame, and the redirection table
// (RETA) that turns the hash into a hardware queue of the port.
//
// Used by user-veth (the software NIC steers every frame it receives with it), by the stack's
// connect() (pick_local_port(): choose a local port whose *replies* land on the stack's own queue,
// so a connection never needs forwarding), and by the manager (rebalance_reta(): the RETA points
// only at owned queues).
//
// What is hashed, as NICs with the usual IPv4 RSS types (IPV4, NONFRAG_IPV4_TCP, NONFRAG_IPV4_UDP) do:
//  - IPv4 + TCP or UDP, not a fragment: 12 bytes, src ip, dst ip, src port, dst port;
//  - any other IPv4 (ICMP, fragments, other protocols): 8 bytes, src ip, dst ip;
//  - anything else (ARP, IPv6, too short): not hashed, hash 0, hence queue reta[0].
// One 802.1Q tag is skipped. Only the first segment of an mbuf is parsed.
//
// Byte order: every address and port in this header's structs and parameters is in *host* byte
// order (198.18.0.1 is 0xc6120001), as rte_softrss() and conf::Ipv4 hold them. PortEntry::ipv4 is
// network byte order: convert with rte_be_to_cpu_32().
//
// Everything here is pure and lock-free: callable from any thread of any process.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "conf/result.h"
#include "fabric/registry.h"
#include "fabric/types.h"

struct rte_mbuf;

namespace gazelle::fabric {

// The 40-byte key of Microsoft's RSS specification ("Verifying the RSS Hash Calculation"), the
// default of most NICs (Intel ixgbe/i40e/ice, Mellanox...). Ports use it unless configured otherwise.
inline constexpr std::array<std::uint8_t, k_rss_key_bytes> k_default_rss_key = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

// An RSS key converted once (rte_convert_rss_key) for the fast rte_softrss_be(); process-local.
struct RssKey {
    std::array<std::uint32_t, k_rss_key_bytes / 4> words{};

    static RssKey from_bytes(std::span<const std::uint8_t, k_rss_key_bytes> key);
    static RssKey of_port(const PortEntry& port) { return from_bytes(port.rss_key); }
};

// The hash input of one frame, as rte_softrss wants it (32-bit words, host byte order).
struct RssInput {
    std::array<std::uint32_t, 3> words{};
    std::uint32_t nb_words = 0; // 3: IPv4 + L4 ports, 2: IPv4 addresses only, 0: not hashed
};

// Input for a TCP/UDP packet going src -> dst.
constexpr RssInput rss_input_l4(std::uint32_t src_ip, std::uint32_t dst_ip, std::uint16_t src_port,
                                std::uint16_t dst_port) {
    return RssInput{{src_ip, dst_ip, (std::uint32_t{src_port} << 16) | dst_port}, 3};
}
// Input for another IPv4 packet (ICMP, fragment) going src -> dst.
constexpr RssInput rss_input_l3(std::uint32_t src_ip, std::uint32_t dst_ip) {
    return RssInput{{src_ip, dst_ip, 0}, 2};
}

// Parses an Ethernet frame (see the rules above). Never reads past frame.size().
RssInput rss_input_of_frame(std::span<const std::uint8_t> frame);
// Same for the first segment of an mbuf.
RssInput rss_input_of_mbuf(const rte_mbuf* m);

// Toeplitz hash of `input` (0 when nb_words == 0).
std::uint32_t rss_hash(const RssKey& key, const RssInput& input);

// RETA lookup: the low bits of the hash index the table, as NICs do.
inline std::uint16_t reta_queue(const PortEntry& port, std::uint32_t hash) {
    static_assert((k_reta_size & (k_reta_size - 1)) == 0, "RETA size must be a power of two");
    return port.reta[hash & (k_reta_size - 1)].load(std::memory_order_relaxed);
}

// Hardware queue of `port` that a NIC with `key` and the port's RETA puts this frame on.
inline std::uint16_t rss_queue_of_frame(const PortEntry& port, const RssKey& key,
                                        std::span<const std::uint8_t> frame) {
    return reta_queue(port, rss_hash(key, rss_input_of_frame(frame)));
}

// A connection the stack is about to open, seen from the local side (host byte order).
struct ConnectTuple {
    std::uint32_t local_ip = 0;
    std::uint32_t remote_ip = 0;
    std::uint16_t remote_port = 0;
};

// Inclusive range of local ports to choose from; the default is IANA's dynamic range.
struct PortRange {
    std::uint16_t first = 49152;
    std::uint16_t last = 65535;
};

// Chooses a local TCP/UDP port p in `range` such that the replies of the connection (remote ip:port
// -> local ip:p, as received by the port) hash onto hardware queue `wanted_queue` of `port` with
// the port's key and current RETA. Candidates are tried from `start` upwards (wrapping inside the
// range; a start outside the range means range.first), and the first for which `usable(p)` is also
// true is returned, so the caller can skip ports already in use.
//
// About 1 in nb_queues ports qualifies when the RETA is spread evenly; each try is one Toeplitz
// hash of 4 bytes (the 8 fixed bytes are hashed once: the hash is linear over GF(2)).
// Errors: EINVAL (empty range, wanted_queue is not a queue of the port), EADDRNOTAVAIL (no usable
// port of the range lands on wanted_queue: the RETA does not point at it, or all such ports are in use).
template <typename Usable>
Result<std::uint16_t> pick_local_port_if(const PortEntry& port, const ConnectTuple& flow,
                                         std::uint16_t wanted_queue, PortRange range, std::uint16_t start,
                                         Usable&& usable);

Result<std::uint16_t> pick_local_port(const PortEntry& port, const ConnectTuple& flow, std::uint16_t wanted_queue,
                                      PortRange range = {}, std::uint16_t start = 0);

// Rebuilds a RETA so that it points only at queues in `owned` (bit q: hardware queue q of a port
// with nb_queues queues is owned) and spreads entries evenly (every owned queue gets
// k_reta_size / n entries, or one more). Entries that already point at an owned queue that is not
// above its share keep their value, so established flows stay where they are as far as possible.
// Returns the number of entries changed, or -ENOENT (table untouched) when no queue is owned.
int rebalance_reta(std::span<std::uint16_t, k_reta_size> reta, unsigned nb_queues, std::uint64_t owned);

// ---------------------------------------------------------------------------------------------
namespace detail {
// The error of pick_local_port_if(), out of line (it builds a message).
Error pick_local_port_error(const PortEntry& port, std::uint16_t wanted_queue, PortRange range, bool searched);
} // namespace detail

template <typename Usable>
Result<std::uint16_t> pick_local_port_if(const PortEntry& port, const ConnectTuple& flow,
                                         std::uint16_t wanted_queue, PortRange range, std::uint16_t start,
                                         Usable&& usable) {
    if (range.first > range.last || wanted_queue >= port.nb_queues) {
        return detail::pick_local_port_error(port, wanted_queue, range, false);
    }
    const RssKey key = RssKey::of_port(port);
    // Reply direction: src = remote, dst = local; the local port is the destination port.
    const std::uint32_t fixed =
        rss_hash(key, rss_input_l4(flow.remote_ip, flow.local_ip, flow.remote_port, 0));
    const std::uint32_t span = std::uint32_t{range.last} - range.first + 1;
    const std::uint32_t first_try = (start >= range.first && start <= range.last) ? start - range.first : 0;
    for (std::uint32_t i = 0; i < span; ++i) {
        const auto candidate = static_cast<std::uint16_t>(range.first + (first_try + i) % span);
        const std::uint32_t hash = fixed ^ rss_hash(key, RssInput{{0, 0, candidate}, 3});
        if (reta_queue(port, hash) == wanted_queue && usable(candidate)) {
            return candidate;
        }
    }
    return detail::pick_local_port_error(port, wanted_queue, range, true);
}

} // namespace gazelle::fabric
