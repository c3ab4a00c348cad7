// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// FlowKey: the 16-byte key of the shared flow table (fabric/flow_table.h), and its hash.
//
// Two kinds of keys live in one table:
//  - connection: a connected TCP/UDP flow, seen from the stack that owns it (local = our
//    address, remote = the peer), so an incoming packet's key is (dst ip/port, src ip/port);
//  - listener:   (proto, local ip, local port); remote fields are zero. 0.0.0.0 is the wildcard
//    listener. The kind byte keeps the two key spaces apart.
// Every field is in network byte order, exactly as in the packet, so the packet path builds keys
// without byte swaps. The padding is part of the key (rte_hash compares 16 raw bytes) and is
// always zero: build keys with the factory functions only.
//
// The hash is computed by the caller (rte_hash keeps a hash-function pointer in shared memory
// that is only valid in the creating process, so every table call takes a precomputed hash).
//
// IPv6 is not in this table: it would get a second table with a 40-byte key
// (2 x 16-byte address, 2 ports, proto, kind, padding), see doc/fabric-flow-table.md.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include <rte_hash_crc.h>

namespace gazelle::fabric {

enum class FlowKeyKind : std::uint8_t {
    connection = 1,
    listener = 2,
};

struct FlowKey {
    std::uint32_t local_ip = 0;    // network byte order
    std::uint32_t remote_ip = 0;   // network byte order, 0 for listeners
    std::uint16_t local_port = 0;  // network byte order
    std::uint16_t remote_port = 0; // network byte order, 0 for listeners
    std::uint8_t proto = 0;        // IPPROTO_TCP or IPPROTO_UDP
    FlowKeyKind kind = FlowKeyKind::connection;
    std::uint16_t zero_ = 0;       // padding, part of the compared bytes: always 0

    static constexpr FlowKey connection(std::uint8_t proto, std::uint32_t local_ip, std::uint16_t local_port,
                                        std::uint32_t remote_ip, std::uint16_t remote_port) {
        FlowKey k;
        k.local_ip = local_ip;
        k.remote_ip = remote_ip;
        k.local_port = local_port;
        k.remote_port = remote_port;
        k.proto = proto;
        k.kind = FlowKeyKind::connection;
        return k;
    }
    static constexpr FlowKey listener(std::uint8_t proto, std::uint32_t local_ip, std::uint16_t local_port) {
        FlowKey k;
        k.local_ip = local_ip;
        k.local_port = local_port;
        k.proto = proto;
        k.kind = FlowKeyKind::listener;
        return k;
    }
    // The listener a connection key falls back to (same local ip), and the wildcard one.
    constexpr FlowKey listener_of() const { return listener(proto, local_ip, local_port); }
    constexpr FlowKey wildcard_listener_of() const { return listener(proto, 0, local_port); }

    constexpr bool is_listener() const { return kind == FlowKeyKind::listener; }
    friend constexpr bool operator==(const FlowKey&, const FlowKey&) = default;
};
static_assert(sizeof(FlowKey) == 16, "the table's key_len and the CRC cover exactly 16 bytes");
static_assert(sizeof(FlowKey) == 2 * sizeof(std::uint64_t));
static_assert(alignof(FlowKey) == 4);
static_assert(std::is_trivially_copyable_v<FlowKey> && std::is_standard_layout_v<FlowKey>);
static_assert(std::has_unique_object_representations_v<FlowKey>, "no hidden padding: keys compare as raw bytes");
static_assert(offsetof(FlowKey, remote_ip) == 4 && offsetof(FlowKey, local_port) == 8 &&
              offsetof(FlowKey, remote_port) == 10 && offsetof(FlowKey, proto) == 12 &&
              offsetof(FlowKey, kind) == 13 && offsetof(FlowKey, zero_) == 14);

// The hash every flow-table call takes: CRC32-C over the 16 key bytes (SSE4.2 crc32 instruction;
// the same in every process), equal to rte_hash_crc(bytes, 16, 0). Also the "flow hash" given to
// FlowTable::pick_listener().
// Not rte_hash_crc(&key, ...) itself: it reads the bytes through a uint64_t*, and once inlined,
// g++ -O2 (strict aliasing) may drop the FlowKey stores before those loads - measured: every key
// of a test hashed to 0. memcpy into words is the well-defined spelling and compiles to two loads.
inline std::uint32_t flow_hash(const FlowKey& key) noexcept {
    std::uint64_t words[2];
    std::memcpy(words, &key, sizeof words);
    return rte_hash_crc_8byte(words[1], rte_hash_crc_8byte(words[0], 0));
}

// Hashes min(keys.size(), out.size()) keys; returns that count.
inline std::size_t flow_hash_burst(std::span<const FlowKey> keys, std::span<std::uint32_t> out) noexcept {
    const std::size_t n = keys.size() < out.size() ? keys.size() : out.size();
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = flow_hash(keys[i]);
    }
    return n;
}

} // namespace gazelle::fabric
