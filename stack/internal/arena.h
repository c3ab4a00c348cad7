// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Arena: a stack thread's heap for everything lwIP allocates (pcbs, segments, PBUF_RAM pbufs,
// ARP queue entries: lwipopts.h maps memp pools and mem_malloc() here).
//
// Memory comes in chunks from a ChunkSource: in production hugepage memzones created with
// MempRegistry::create_memp() and registered to the stack's owner tag, so the manager frees them
// if the process dies (and the stack frees them on a clean exit); in unit tests the C heap.
// Inside a chunk, blocks are carved by bumping a pointer and recycled through one free list per
// power-of-two size class (64 B .. 128 KiB); a 16-byte header in front of each block keeps its
// class. Nothing is returned to the source before the arena is destroyed.
//
// Threading: an arena belongs to one stack thread (lwIP runs there only); no locks. Growing by a
// chunk (rare: the first chunk is reserved at start) is a memzone reservation, a control-path call.

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "conf/result.h"
#include "fabric/memp_registry.h"
#include "fabric/types.h"

namespace gazelle::stack::detail {

class ChunkSource {
public:
    virtual ~ChunkSource() = default;
    // A zeroed, 64-byte aligned chunk of `bytes`, or nullptr.
    virtual void* allocate_chunk(std::size_t bytes) = 0;
    virtual void free_chunk(void* chunk) = 0;
};

// Hugepage memzones registered to `owner` in the fabric's memp registry.
class HugepageChunks final : public ChunkSource {
public:
    HugepageChunks(fabric::MempRegistry registry, fabric::OwnerTag owner) : registry_(registry), owner_(owner) {}
    void* allocate_chunk(std::size_t bytes) override;
    void free_chunk(void* chunk) override;

private:
    fabric::MempRegistry registry_;
    fabric::OwnerTag owner_;
};

// The C heap (unit tests without DPDK).
class HeapChunks final : public ChunkSource {
public:
    void* allocate_chunk(std::size_t bytes) override;
    void free_chunk(void* chunk) override;
};

struct ArenaStats {
    std::uint64_t reserved_bytes = 0; // chunks taken from the source
    std::uint64_t in_use_bytes = 0;   // blocks handed out (class sizes, headers included)
    std::uint64_t allocations = 0;
    std::uint64_t failures = 0;       // requests that could not be served (too big, limit reached)
};

class Arena {
public:
    static constexpr std::size_t k_header_bytes = 16;
    static constexpr unsigned k_min_class_shift = 6;  // 64 B
    static constexpr unsigned k_max_class_shift = 17; // 128 KiB: a reassembled 64 KiB datagram's copy
    static constexpr unsigned k_classes = k_max_class_shift - k_min_class_shift + 1;

    // chunk_bytes: size of each chunk (>= the largest class); max_bytes: total limit.
    Arena(ChunkSource& source, std::size_t chunk_bytes, std::size_t max_bytes);
    ~Arena();
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;

    // Reserves the first chunk. Errors: ENOMEM.
    Result<void> reserve_first_chunk();

    // nullptr when size is above the largest class or the limit is reached (counted).
    void* allocate(std::size_t size) noexcept;
    void free(void* block) noexcept;

    const ArenaStats& stats() const { return stats_; }

private:
    struct FreeBlock {
        FreeBlock* next;
    };
    bool grow() noexcept;

    ChunkSource& source_;
    std::size_t chunk_bytes_;
    std::size_t max_bytes_;
    std::vector<void*> chunks_;
    std::uint8_t* bump_ = nullptr;
    std::uint8_t* bump_end_ = nullptr;
    std::array<FreeBlock*, k_classes> free_{};
    ArenaStats stats_;
};

// The arena lwIP's allocations on the calling thread go to (nullptr: every allocation fails).
void set_thread_arena(Arena* arena) noexcept;
Arena* thread_arena() noexcept;

} // namespace gazelle::stack::detail
