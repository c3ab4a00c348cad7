// SPDX-License-Identifier: BSD-3-Clause
#include "conf/net_address.h"

#include <gtest/gtest.h>

#include <string>

namespace gazelle::conf {
namespace {

TEST(ParseIpv4, AcceptsDottedQuads) {
    auto a = parse_ipv4("198.18.0.1");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->value, 0xc6120001u);
    EXPECT_EQ(parse_ipv4("0.0.0.0")->value, 0u);
    EXPECT_EQ(parse_ipv4("255.255.255.255")->value, 0xffffffffu);
}

// inet_addr(), which Gazelle used, accepts most of these (and "255.255.255.255" is its error value).
TEST(ParseIpv4, RejectsEverythingElse) {
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "0x1.2.3.4", " 1.2.3.4", "1.2.3.4 ",
                            "a.b.c.d", "1..2.3", "1.2.3.-4", "::1", "1.2.3.4/24", "192.168.1"}) {
        auto a = parse_ipv4(bad);
        ASSERT_FALSE(a.ok()) << bad;
        EXPECT_EQ(a.error().code, EINVAL);
        EXPECT_EQ(a.error().message, "'" + std::string(bad) + "' is not a valid IPv4 address (expected a.b.c.d)");
    }
}

TEST(ParseIpv4, RejectsEmbeddedNul) {
    const std::string text("1.2.3.4\0junk", 12);
    EXPECT_FALSE(parse_ipv4(text).ok());
}

TEST(ParseNetmask, AcceptsContiguousMasks) {
    EXPECT_EQ(prefix_length(*parse_netmask("255.255.255.0")), 24u);
    EXPECT_EQ(prefix_length(*parse_netmask("255.255.255.255")), 32u);
    EXPECT_EQ(prefix_length(*parse_netmask("128.0.0.0")), 1u);
    EXPECT_EQ(prefix_length(*parse_netmask("255.255.254.0")), 23u);
}

TEST(ParseNetmask, RejectsHolesAndZeroPrefix) {
    auto holes = parse_netmask("255.0.255.0");
    ASSERT_FALSE(holes.ok());
    EXPECT_EQ(holes.error().message, "'255.0.255.0' is not a contiguous netmask (its one bits must come first)");
    EXPECT_FALSE(parse_netmask("255.255.255.1").ok());
    EXPECT_FALSE(parse_netmask("0.255.255.255").ok());
    auto zero = parse_netmask("0.0.0.0");
    ASSERT_FALSE(zero.ok());
    EXPECT_NE(zero.error().message.find("prefix length must be 1..32"), std::string::npos);
    EXPECT_NE(parse_netmask("255.255.255").error().message.find("not a valid netmask"), std::string::npos);
}

TEST(ParseMac, AcceptsSixHexPairsInEitherCase) {
    auto mac = parse_mac("AA:bb:0C:dd:ee:F0");
    ASSERT_TRUE(mac.ok());
    EXPECT_EQ(to_string(*mac), "aa:bb:0c:dd:ee:f0");
    EXPECT_FALSE(mac->is_multicast()); // 0xaa: I/G bit clear
    EXPECT_TRUE(parse_mac("01:00:5e:00:00:01")->is_multicast());
    EXPECT_TRUE(parse_mac("ff:ff:ff:ff:ff:ff")->is_multicast());
    EXPECT_TRUE(parse_mac("00:00:00:00:00:00")->is_zero());
}

// sscanf("%hhx:...") in Gazelle accepted several of these.
TEST(ParseMac, RejectsOtherShapes) {
    for (const char* bad : {"", "a:b:c:d:e:f", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00",
                            "gg:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff ", "aabb.ccdd.eeff", "aa:bb:cc:dd:eeff"}) {
        auto mac = parse_mac(bad);
        ASSERT_FALSE(mac.ok()) << bad;
        EXPECT_EQ(mac.error().message,
                  "'" + std::string(bad) +
                      "' is not a valid MAC address (expected six hex pairs like 02:00:00:00:00:01)");
    }
}

TEST(Ipv4, FormatsAndComparesSubnets) {
    EXPECT_EQ(to_string(Ipv4{0xc6120001u}), "198.18.0.1");
    const Ipv4 mask = *parse_netmask("255.255.255.0");
    EXPECT_TRUE(same_subnet(*parse_ipv4("10.0.0.1"), *parse_ipv4("10.0.0.254"), mask));
    EXPECT_FALSE(same_subnet(*parse_ipv4("10.0.0.1"), *parse_ipv4("10.0.1.1"), mask));
}

} // namespace
} // namespace gazelle::conf
