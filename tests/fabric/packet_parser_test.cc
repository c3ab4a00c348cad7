// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/packet_parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace gazelle::fabric {
namespace {

std::vector<std::uint8_t> ethernet(std::uint16_t ethertype) {
    std::vector<std::uint8_t> f(14, 0);
    f[12] = static_cast<std::uint8_t>(ethertype >> 8);
    f[13] = static_cast<std::uint8_t>(ethertype);
    return f;
}

void put16(std::vector<std::uint8_t>& f, std::size_t at, std::uint16_t v) {
    f[at] = static_cast<std::uint8_t>(v >> 8);
    f[at + 1] = static_cast<std::uint8_t>(v);
}

// Ethernet + IPv4 (ihl words) + an L4 header of l4_len bytes.
std::vector<std::uint8_t> ipv4(std::uint8_t proto, std::uint16_t sport, std::uint16_t dport, unsigned ihl = 5,
                               std::size_t l4_len = 20, std::uint16_t frag = 0) {
    auto f = ethernet(0x0800);
    const std::size_t ip = f.size();
    f.resize(ip + ihl * 4 + l4_len, 0);
    f[ip] = static_cast<std::uint8_t>(0x40 | ihl);
    put16(f, ip + 2, static_cast<std::uint16_t>(ihl * 4 + l4_len));
    put16(f, ip + 6, frag);
    f[ip + 9] = proto;
    f[ip + 12] = 198; f[ip + 13] = 18; f[ip + 14] = 0; f[ip + 15] = 2;  // src 198.18.0.2
    f[ip + 16] = 198; f[ip + 17] = 18; f[ip + 18] = 0; f[ip + 19] = 1;  // dst 198.18.0.1
    const std::size_t l4 = ip + ihl * 4;
    if (l4_len >= 4) {
        put16(f, l4, sport);
        put16(f, l4 + 2, dport);
    }
    if (proto == 17 && l4_len >= 8) {
        put16(f, l4 + 4, static_cast<std::uint16_t>(l4_len)); // UDP length
    }
    if (proto == 6 && l4_len >= 14) {
        f[l4 + 13] = 0x02; // SYN
    }
    return f;
}

PacketInfo parse(const std::vector<std::uint8_t>& f) { return parse_frame(f.data(), static_cast<std::uint32_t>(f.size())); }

TEST(PacketParser, TcpSynGivesTupleInNetworkOrder) {
    const auto info = parse(ipv4(6, 40000, 80));
    ASSERT_EQ(info.kind, PacketKind::ipv4_flow);
    EXPECT_EQ(info.proto, 6);
    EXPECT_TRUE(info.is_tcp_syn());
    EXPECT_EQ(info.src_port, htons(40000));
    EXPECT_EQ(info.dst_port, htons(80));
    in_addr a{};
    inet_pton(AF_INET, "198.18.0.1", &a);
    EXPECT_EQ(info.dst_ip, a.s_addr);
}

TEST(PacketParser, UdpWithIpOptionsUsesHeaderLength) {
    const auto info = parse(ipv4(17, 5000, 53, /*ihl=*/8, /*l4_len=*/8));
    ASSERT_EQ(info.kind, PacketKind::ipv4_flow);
    EXPECT_EQ(info.src_port, htons(5000));
    EXPECT_EQ(info.dst_port, htons(53));
    EXPECT_FALSE(info.is_tcp_syn());
}

TEST(PacketParser, EthernetPaddingAfterDatagramIsAccepted) {
    auto f = ipv4(17, 1, 2, 5, 8);
    f.resize(60, 0); // minimum Ethernet frame
    EXPECT_EQ(parse(f).kind, PacketKind::ipv4_flow);
}

TEST(PacketParser, TruncatedOrInconsistentHeadersAreMalformed) {
    EXPECT_EQ(parse({}).kind, PacketKind::malformed);
    EXPECT_EQ(parse(std::vector<std::uint8_t>(13, 0)).kind, PacketKind::malformed);
    auto f = ipv4(6, 1, 2);
    f.resize(f.size() - 1); // total length now exceeds the frame
    EXPECT_EQ(parse(f).kind, PacketKind::malformed);
    auto bad_ihl = ipv4(6, 1, 2);
    bad_ihl[14] = 0x44; // ihl 4 < 5
    EXPECT_EQ(parse(bad_ihl).kind, PacketKind::malformed);
    auto bad_version = ipv4(6, 1, 2);
    bad_version[14] = 0x65;
    EXPECT_EQ(parse(bad_version).kind, PacketKind::malformed);
    EXPECT_EQ(parse(ipv4(6, 1, 2, 5, 12)).kind, PacketKind::malformed); // TCP header cut short
    auto big_ihl = ipv4(17, 1, 2, 5, 8);
    big_ihl[14] = 0x4f; // claims 60 header bytes, total length 28
    EXPECT_EQ(parse(big_ihl).kind, PacketKind::malformed);
}

TEST(PacketParser, UdpLengthFieldMustMatchTheDatagram) {
    auto longer = ipv4(17, 1, 2, 5, 16);
    put16(longer, 14 + 20 + 4, 200); // claims more than the datagram holds
    EXPECT_EQ(parse(longer).kind, PacketKind::malformed);
    auto tiny = ipv4(17, 1, 2, 5, 16);
    put16(tiny, 14 + 20 + 4, 4); // below its own header
    EXPECT_EQ(parse(tiny).kind, PacketKind::malformed);
    auto shorter = ipv4(17, 1, 2, 5, 16);
    put16(shorter, 14 + 20 + 4, 12); // four bytes the sender did not count
    EXPECT_EQ(parse(shorter).kind, PacketKind::malformed);
    // A first fragment's UDP length covers the whole datagram, not this fragment.
    auto first = ipv4(17, 1, 2, 5, 16, 0x2000);
    put16(first, 14 + 20 + 4, 3000);
    EXPECT_EQ(parse(first).kind, PacketKind::ipv4_flow);
}

TEST(PacketParser, LaterFragmentsAndIcmpAreLeftToTheReceivingStack) {
    EXPECT_EQ(parse(ipv4(17, 1, 2, 5, 8, /*frag offset*/ 0x0010)).kind, PacketKind::ipv4_other);
    EXPECT_EQ(parse(ipv4(1, 0, 0, 5, 8)).kind, PacketKind::ipv4_other);
    // First fragment (MF set, offset 0) still carries the ports.
    EXPECT_EQ(parse(ipv4(17, 1, 2, 5, 8, 0x2000)).kind, PacketKind::ipv4_flow);
}

TEST(PacketParser, ArpRequestAndReply) {
    auto f = ethernet(0x0806);
    f.resize(14 + 28, 0);
    put16(f, 14, 1);
    put16(f, 16, 0x0800);
    f[18] = 6;
    f[19] = 4;
    put16(f, 20, 1);
    f[14 + 14] = 198; f[14 + 15] = 18; f[14 + 16] = 0; f[14 + 17] = 2;
    f[14 + 24] = 198; f[14 + 25] = 18; f[14 + 26] = 0; f[14 + 27] = 1;
    auto req = parse(f);
    EXPECT_EQ(req.kind, PacketKind::arp_request);
    in_addr a{};
    inet_pton(AF_INET, "198.18.0.1", &a);
    EXPECT_EQ(req.dst_ip, a.s_addr);
    put16(f, 20, 2);
    EXPECT_EQ(parse(f).kind, PacketKind::arp_reply);
    put16(f, 20, 3);
    EXPECT_EQ(parse(f).kind, PacketKind::malformed);
    f[18] = 8; // not Ethernet/IPv4 ARP
    put16(f, 20, 1);
    EXPECT_EQ(parse(f).kind, PacketKind::malformed);
    f.resize(30);
    EXPECT_EQ(parse(f).kind, PacketKind::malformed);
}

TEST(PacketParser, OtherEthertypesAreOther) { EXPECT_EQ(parse(ethernet(0x86dd)).kind, PacketKind::other); }

} // namespace
} // namespace gazelle::fabric
