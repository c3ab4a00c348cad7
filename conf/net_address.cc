// SPDX-License-Identifier: BSD-3-Clause
#include "conf/net_address.h"

#include <arpa/inet.h>

#include <bit>

namespace gazelle::conf {
namespace {

std::string quoted(std::string_view text) {
    return "'" + std::string(text) + "'";
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

} // namespace

Result<Ipv4> parse_ipv4(std::string_view text) {
    // inet_pton needs a NUL-terminated string, and an embedded NUL must not cut the text short.
    const std::string copy(text);
    in_addr addr{};
    if (copy.size() != text.size() || copy.find('\0') != std::string::npos ||
        inet_pton(AF_INET, copy.c_str(), &addr) != 1) {
        return make_error(EINVAL, quoted(text) + " is not a valid IPv4 address (expected a.b.c.d)");
    }
    return Ipv4{ntohl(addr.s_addr)};
}

Result<Ipv4> parse_netmask(std::string_view text) {
    auto mask = parse_ipv4(text);
    if (!mask) {
        return make_error(EINVAL, quoted(text) + " is not a valid netmask (expected a.b.c.d, e.g. 255.255.255.0)");
    }
    const std::uint32_t inverted = ~mask->value;
    // Contiguous ones followed by contiguous zeros: the inverted mask is 2^k - 1.
    if ((inverted & (inverted + 1u)) != 0) {
        return make_error(EINVAL, quoted(text) + " is not a contiguous netmask (its one bits must come first)");
    }
    if (mask->value == 0) {
        return make_error(EINVAL, quoted(text) + " is not a usable netmask (prefix length must be 1..32)");
    }
    return *mask;
}

Result<MacAddr> parse_mac(std::string_view text) {
    MacAddr mac;
    // "xx:xx:xx:xx:xx:xx" is exactly 17 characters; sscanf("%hhx") would accept "a:b:c:d:e:f".
    bool ok = text.size() == 17;
    for (std::size_t i = 0; ok && i < mac.bytes.size(); ++i) {
        const std::size_t at = i * 3;
        const int hi = hex_digit(text[at]);
        const int lo = hex_digit(text[at + 1]);
        const bool separator_ok = i == mac.bytes.size() - 1 || text[at + 2] == ':';
        ok = hi >= 0 && lo >= 0 && separator_ok;
        if (ok) {
            mac.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
        }
    }
    if (!ok) {
        return make_error(EINVAL,
                          quoted(text) + " is not a valid MAC address (expected six hex pairs like 02:00:00:00:00:01)");
    }
    return mac;
}

unsigned prefix_length(Ipv4 netmask) {
    return static_cast<unsigned>(std::popcount(netmask.value));
}

bool same_subnet(Ipv4 a, Ipv4 b, Ipv4 netmask) {
    return (a.value & netmask.value) == (b.value & netmask.value);
}

std::string to_string(Ipv4 address) {
    const std::uint32_t v = address.value;
    return std::to_string(v >> 24) + '.' + std::to_string((v >> 16) & 0xffu) + '.' + std::to_string((v >> 8) & 0xffu) +
           '.' + std::to_string(v & 0xffu);
}

std::string to_string(const MacAddr& address) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < address.bytes.size(); ++i) {
        if (i != 0) {
            out += ':';
        }
        out += digits[address.bytes[i] >> 4];
        out += digits[address.bytes[i] & 0x0fu];
    }
    return out;
}

} // namespace gazelle::conf
