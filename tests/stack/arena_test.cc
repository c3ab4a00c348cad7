// SPDX-License-Identifier: BSD-3-Clause
// The stack's arena (stack/internal/arena.h): size classes, reuse, alignment, limits.
#include <gtest/gtest.h>

#include <cstdint>
#include <algorithm>
#include <vector>

#include "stack/internal/arena.h"

namespace {

using gazelle::stack::detail::Arena;
using gazelle::stack::detail::ChunkSource;
using gazelle::stack::detail::HeapChunks;

TEST(Arena, RecyclesBlocksPerSizeClassAndRespectsItsLimit) {
    HeapChunks heap;
    Arena arena(heap, 256u << 10, 512u << 10);
    void* a = arena.allocate(100);
    void* b = arena.allocate(100);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 16, 0u);
    arena.free(a);
    EXPECT_EQ(arena.allocate(90), a); // same class: the freed block comes back
    EXPECT_EQ(arena.allocate((128u << 10) + 1), nullptr); // above the largest class
    // Fill the limit: two chunks of 256 KiB, then nothing more.
    unsigned big = 0;
    while (arena.allocate(60u << 10) != nullptr) {
        ++big;
    }
    EXPECT_GE(big, 6u);
    EXPECT_EQ(arena.stats().reserved_bytes, 512u << 10);
    EXPECT_GT(arena.stats().failures, 0u);
}

TEST(Arena, BlocksDoNotOverlapAcrossClassesAndChunks) {
    HeapChunks heap;
    Arena arena(heap, 256u << 10, 4u << 20);
    struct Block {
        std::uintptr_t begin;
        std::uintptr_t end;
    };
    std::vector<Block> blocks;
    std::uint32_t x = 7;
    for (int i = 0; i < 2000; ++i) {
        x = x * 1664525u + 1013904223u;
        const std::size_t size = 1 + (x >> 8) % 3000;
        auto* p = static_cast<std::uint8_t*>(arena.allocate(size));
        ASSERT_NE(p, nullptr) << i;
        for (std::size_t k = 0; k < size; ++k) {
            p[k] = static_cast<std::uint8_t>(i);
        }
        blocks.push_back({reinterpret_cast<std::uintptr_t>(p), reinterpret_cast<std::uintptr_t>(p) + size});
        if (i % 3 == 0) { // free some, so later allocations reuse them
            arena.free(p);
            blocks.pop_back();
        }
    }
    std::sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) { return a.begin < b.begin; });
    for (std::size_t i = 1; i < blocks.size(); ++i) {
        EXPECT_LE(blocks[i - 1].end, blocks[i].begin);
    }
}

// A source that refuses after n chunks: the arena reports failure instead of crashing.
class LimitedChunks final : public ChunkSource {
public:
    explicit LimitedChunks(int n) : left_(n) {}
    void* allocate_chunk(std::size_t bytes) override { return left_-- > 0 ? heap_.allocate_chunk(bytes) : nullptr; }
    void free_chunk(void* chunk) override { heap_.free_chunk(chunk); }

private:
    HeapChunks heap_;
    int left_;
};

TEST(Arena, ReportsAnExhaustedSource) {
    LimitedChunks none(0);
    Arena empty(none, 256u << 10, 1u << 20);
    EXPECT_FALSE(empty.reserve_first_chunk().ok());
    EXPECT_EQ(empty.allocate(10), nullptr);
    LimitedChunks one(1);
    Arena arena(one, 256u << 10, 1u << 20);
    ASSERT_TRUE(arena.reserve_first_chunk().ok());
    unsigned n = 0;
    while (arena.allocate(1000) != nullptr) {
        ++n;
    }
    EXPECT_EQ(n, (256u << 10) / 1024);
    EXPECT_EQ(arena.stats().reserved_bytes, 256u << 10);
}

} // namespace
