// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// IPv4 and MAC address values as the configuration files write them, with strict parsers.
//
// Strict means: an IPv4 address is exactly a dotted quad accepted by inet_pton(AF_INET) (no
// "1.2.3", no hex, no leading zeros, unlike inet_addr() which Gazelle used); a netmask is such an
// address whose one bits are contiguous; a MAC is six colon-separated pairs of hex digits.
// Errors carry the reason only; the loaders prefix file, line and key.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "conf/result.h"

namespace gazelle::conf {

struct Ipv4 {
    std::uint32_t value = 0; // host byte order: 198.18.0.1 is 0xc6120001

    bool operator==(const Ipv4&) const = default;
};

struct MacAddr {
    std::array<std::uint8_t, 6> bytes{};

    bool operator==(const MacAddr&) const = default;
    bool is_zero() const { return bytes == std::array<std::uint8_t, 6>{}; }
    // The I/G bit: group (multicast or broadcast) addresses cannot be a port's own address.
    bool is_multicast() const { return (bytes[0] & 0x01u) != 0; }
};

// Errors (EINVAL): "'x' is not a valid IPv4 address (expected a.b.c.d)".
[[nodiscard]] Result<Ipv4> parse_ipv4(std::string_view text);
// Errors (EINVAL): not an address, one bits not contiguous, or prefix length 0.
[[nodiscard]] Result<Ipv4> parse_netmask(std::string_view text);
// Errors (EINVAL): not six hex pairs separated by ':'.
[[nodiscard]] Result<MacAddr> parse_mac(std::string_view text);

// Number of leading one bits of a contiguous netmask.
[[nodiscard]] unsigned prefix_length(Ipv4 netmask);
[[nodiscard]] bool same_subnet(Ipv4 a, Ipv4 b, Ipv4 netmask);

[[nodiscard]] std::string to_string(Ipv4 address);
[[nodiscard]] std::string to_string(const MacAddr& address); // lower case, "02:00:00:00:00:01"

} // namespace gazelle::conf
