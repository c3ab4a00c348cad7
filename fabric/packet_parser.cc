// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/packet_parser.h"

#include <cstring>

#include <rte_mbuf.h>

namespace gazelle::fabric {

namespace {

constexpr std::uint32_t k_eth_header = 14;
constexpr std::uint16_t k_ethertype_ipv4 = 0x0800;
constexpr std::uint16_t k_ethertype_arp = 0x0806;
constexpr std::uint32_t k_arp_ipv4_bytes = 28;
constexpr std::uint8_t k_proto_tcp = 6;
constexpr std::uint8_t k_proto_udp = 17;

std::uint16_t load_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t load_raw32(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
std::uint16_t load_raw16(const std::uint8_t* p) {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

PacketInfo parse_arp(const std::uint8_t* arp, std::uint32_t len) {
    PacketInfo info;
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if (len < k_arp_ipv4_bytes || load_be16(arp) != 1 || load_be16(arp + 2) != k_ethertype_ipv4 || arp[4] != 6 ||
        arp[5] != 4) {
        return info;
    }
    const std::uint16_t op = load_be16(arp + 6);
    if (op != 1 && op != 2) {
        return info;
    }
    info.kind = op == 1 ? PacketKind::arp_request : PacketKind::arp_reply;
    info.src_ip = load_raw32(arp + 14);
    info.dst_ip = load_raw32(arp + 24);
    return info;
}

PacketInfo parse_ipv4(const std::uint8_t* ip, std::uint32_t len) {
    PacketInfo info;
    if (len < 20 || (ip[0] >> 4) != 4) {
        return info;
    }
    const std::uint32_t header = (ip[0] & 0x0fu) * 4u;
    const std::uint32_t total = load_be16(ip + 2);
    // Frames may carry Ethernet padding after the datagram, never less than it claims.
    if (header < 20 || total < header || total > len) {
        return info;
    }
    info.proto = ip[9];
    info.src_ip = load_raw32(ip + 12);
    info.dst_ip = load_raw32(ip + 16);
    const std::uint16_t fragment = load_be16(ip + 6);
    const bool later_fragment = (fragment & 0x1fffu) != 0;
    if ((info.proto != k_proto_tcp && info.proto != k_proto_udp) || later_fragment) {
        info.kind = PacketKind::ipv4_other;
        return info;
    }
    const std::uint8_t* l4 = ip + header;
    const std::uint32_t l4_len = total - header;
    const std::uint32_t need = info.proto == k_proto_tcp ? 20u : 8u;
    if (l4_len < need) {
        return info; // malformed: a first fragment too short for its own ports
    }
    // A whole UDP datagram must agree with its own length field: lwIP reads neither it nor the
    // excess, so a short claim would hand the application bytes the sender never counted and a
    // long one a datagram cut short (a first fragment's claim covers the whole datagram).
    const bool first_fragment = (fragment & 0x2000u) != 0;
    if (info.proto == k_proto_udp && !first_fragment) {
        const std::uint32_t udp_len = load_be16(l4 + 4);
        if (udp_len < 8u || udp_len != l4_len) {
            return info; // malformed
        }
    }
    info.src_port = load_raw16(l4);
    info.dst_port = load_raw16(l4 + 2);
    if (info.proto == k_proto_tcp) {
        info.tcp_flags = l4[13];
    }
    info.kind = PacketKind::ipv4_flow;
    return info;
}

} // namespace

PacketInfo parse_frame(const std::uint8_t* frame, std::uint32_t len) {
    if (len < k_eth_header) {
        return PacketInfo{};
    }
    const std::uint16_t ethertype = load_be16(frame + 12);
    switch (ethertype) {
    case k_ethertype_ipv4:
        return parse_ipv4(frame + k_eth_header, len - k_eth_header);
    case k_ethertype_arp:
        return parse_arp(frame + k_eth_header, len - k_eth_header);
    default: {
        PacketInfo info;
        info.kind = PacketKind::other;
        return info;
    }
    }
}

PacketInfo parse_packet(const rte_mbuf* m) {
    return parse_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_data_len(m));
}

} // namespace gazelle::fabric
