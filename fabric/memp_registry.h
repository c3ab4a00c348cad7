// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Memp registry: the memory pools a stack creates for its own use (lwIP's memp pools, in
// hugepage memzones) are registered to their owner queue slot, so the manager can free them when
// the owner exits or dies (the "memp list" of ../shared/seeds/004_*).
//
// A stack creates a memzone with create_memp() (which registers it), and frees it with
// destroy_memp() on a clean exit. Reclaim calls free_owned_by() for a dead owner. Entries live
// in shared region "gz_memp": a fixed table, claimed by CAS, written by the owner, freed by the
// owner or the manager.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "conf/result.h"
#include "fabric/types.h"

namespace gazelle::fabric {

inline constexpr char k_memp_region[] = "gz_memp";
inline constexpr unsigned k_memp_entries = 1024;
inline constexpr std::uint32_t k_memp_layout = 1;

struct alignas(k_cache_line) MempEntry {
    std::atomic<std::uint64_t> owner; // OwnerTag::value; 0 = free entry
    std::uint64_t bytes;
    char memzone[32];                 // memzone name, NUL-terminated
    char label[16];                   // what it holds, e.g. "tcp_pcb"
};
static_assert(sizeof(MempEntry) == k_cache_line);

struct MempInfo {
    QueueSlot slot;
    std::string memzone;
    std::string label;
    std::uint64_t bytes;
};

class MempRegistry {
public:
    MempRegistry() = default;
    static Result<MempRegistry> create();  // primary
    static Result<MempRegistry> attach();  // secondaries
    static void destroy();                 // primary: frees the table (not the pools it lists)

    // Owner: reserves a zeroed memzone of `bytes` for `owner` and registers it. Errors: ENOSPC
    // (table full: k_memp_entries), ENOMEM (hugepages).
    Result<void*> create_memp(OwnerTag owner, const std::string& label, std::size_t bytes);
    // Owner, clean exit: frees one memp created by create_memp.
    Result<void> destroy_memp(void* memory);

    struct Freed {
        unsigned pools = 0;
        std::uint64_t bytes = 0;
    };
    // Manager, after the owner died (or exited without freeing): frees every memp of `owner`'s
    // slot and epoch.
    Freed free_owned_by(OwnerTag owner);

    std::vector<MempInfo> list() const;

private:
    explicit MempRegistry(MempEntry* entries) : entries_(entries) {}
    MempEntry* entries_ = nullptr;
};

} // namespace gazelle::fabric
