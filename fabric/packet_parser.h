// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Just enough parsing of a received frame to decide who owns it: Ethernet, ARP, IPv4 and the
// TCP/UDP ports. Bounds are checked against the mbuf's first segment (PMDs and user-veth deliver
// headers contiguously); anything that does not parse is `malformed`, never read past its end.
// Packet path: no allocation, no branches on untrusted lengths without a check.

#include <cstdint>

struct rte_mbuf;

namespace gazelle::fabric {

enum class PacketKind : std::uint8_t {
    malformed,   // truncated or inconsistent headers: dropped and counted
    arp_request,
    arp_reply,
    ipv4_flow,   // IPv4 TCP or UDP with ports (first fragment or unfragmented)
    ipv4_other,  // ICMP, non-first fragments, other protocols: handled by the receiving stack
    other,       // other ethertypes (IPv6 for now, VLAN): handled (dropped) by the receiving stack
};

struct PacketInfo {
    PacketKind kind = PacketKind::malformed;
    std::uint8_t proto = 0;      // IPPROTO_TCP / IPPROTO_UDP for ipv4_flow
    std::uint8_t tcp_flags = 0;  // for TCP
    std::uint32_t src_ip = 0;    // network byte order (ARP: sender IP)
    std::uint32_t dst_ip = 0;    // network byte order (ARP: target IP)
    std::uint16_t src_port = 0;  // network byte order
    std::uint16_t dst_port = 0;  // network byte order

    bool is_tcp_syn() const { return proto == 6 && (tcp_flags & 0x12) == 0x02; } // SYN without ACK
};

// Parses `len` bytes at `frame` (an Ethernet frame).
PacketInfo parse_frame(const std::uint8_t* frame, std::uint32_t len);
PacketInfo parse_packet(const rte_mbuf* m);

} // namespace gazelle::fabric
