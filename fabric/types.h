// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Vocabulary of the fabric: identities and limits shared by every process.
//
// One identity per thing (Gazelle mixed queue ids, stack indexes and pool ids): a QueueSlot is the
// fabric-wide index of one (port, hardware queue) pair. It names the NIC queue, the software ring
// (inbox) that feeds it, the mbuf pool created for it, its statistics block and its QSBR reader id.

#include <cstddef>
#include <cstdint>

namespace gazelle::fabric {

// Everything shared between separately built binaries uses this, never
// std::hardware_destructive_interference_size (it varies with compiler tuning flags).
inline constexpr std::size_t k_cache_line = 64;

// Queue sets (listeners, live masks) are 64-bit masks.
inline constexpr unsigned k_max_queues = 64;
// Burst size of every packet-path loop; matches RTE_HASH_LOOKUP_BULK_MAX.
inline constexpr unsigned k_burst_max = 32;
// rte_config.h's RTE_MAX_LCORE in Debian's DPDK 22.11.
inline constexpr unsigned k_max_lcores = 128;
inline constexpr unsigned k_max_ports = 8;

using QueueSlot = std::uint16_t;
inline constexpr QueueSlot k_no_queue = 0xffff;

// Incremented every time a queue slot gets a new owner, so a tag or rule of a dead owner never
// matches its successor.
using Epoch = std::uint32_t;

// Owner tag kept in every mbuf's private area: who is responsible for freeing it now.
// 0 = nobody (free in a pool, or handed to a PMD that frees it itself).
struct OwnerTag {
    std::uint64_t value = 0;

    static constexpr OwnerTag of(QueueSlot slot, Epoch epoch) {
        return OwnerTag{(std::uint64_t{epoch} << 32) | (std::uint64_t{slot} << 16) | 1u};
    }
    constexpr bool empty() const { return value == 0; }
    constexpr QueueSlot slot() const { return static_cast<QueueSlot>(value >> 16); }
    constexpr Epoch epoch() const { return static_cast<Epoch>(value >> 32); }
    friend constexpr bool operator==(OwnerTag, OwnerTag) = default;
};

// Returned by packet-path functions that hand work back to the caller.
enum class Verdict : std::uint8_t {
    local,      // for this queue's own stack
    forwarded,  // enqueued to its owner's inbox (ownership moved)
    no_owner,   // no rule and no listener: the caller's stack answers (RST / ICMP) or drops
    dropped,    // freed and counted
};

} // namespace gazelle::fabric
