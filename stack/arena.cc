// SPDX-License-Identifier: BSD-3-Clause
#include "stack/internal/arena.h"

#include <bit>
#include <cstdlib>
#include <cstring>

namespace gazelle::stack::detail {

namespace {

constexpr std::uint32_t k_block_magic = 0x677a6172; // "gzar"

struct BlockHeader {
    std::uint32_t magic;
    std::uint32_t size_class;
    std::uint64_t reserved_;
};
static_assert(sizeof(BlockHeader) == Arena::k_header_bytes);

thread_local Arena* t_arena = nullptr;

unsigned class_of(std::size_t total) {
    const unsigned shift = static_cast<unsigned>(std::bit_width(total - 1));
    return shift <= Arena::k_min_class_shift ? 0u : shift - Arena::k_min_class_shift;
}

} // namespace

void* HugepageChunks::allocate_chunk(std::size_t bytes) {
    auto memory = registry_.create_memp(owner_, "lwip_arena", bytes);
    return memory ? *memory : nullptr;
}

void HugepageChunks::free_chunk(void* chunk) { (void)registry_.destroy_memp(chunk); }

void* HeapChunks::allocate_chunk(std::size_t bytes) {
    void* chunk = std::aligned_alloc(fabric::k_cache_line, (bytes + fabric::k_cache_line - 1) & ~(fabric::k_cache_line - 1));
    if (chunk != nullptr) {
        std::memset(chunk, 0, bytes);
    }
    return chunk;
}

void HeapChunks::free_chunk(void* chunk) { std::free(chunk); }

Arena::Arena(ChunkSource& source, std::size_t chunk_bytes, std::size_t max_bytes)
    : source_(source), chunk_bytes_(std::max<std::size_t>(chunk_bytes, std::size_t{1} << k_max_class_shift)),
      max_bytes_(max_bytes) {
    chunks_.reserve(max_bytes_ / chunk_bytes_ + 1);
}

Arena::~Arena() {
    for (void* chunk : chunks_) {
        source_.free_chunk(chunk);
    }
}

Result<void> Arena::reserve_first_chunk() {
    if (!chunks_.empty() || grow()) {
        return {};
    }
    return make_error(ENOMEM, "Failed to reserve the lwIP arena's first chunk (" + std::to_string(chunk_bytes_) +
                                  " bytes of hugepage memory)");
}

bool Arena::grow() noexcept {
    if (stats_.reserved_bytes + chunk_bytes_ > max_bytes_) {
        return false;
    }
    void* chunk = source_.allocate_chunk(chunk_bytes_);
    if (chunk == nullptr) {
        return false;
    }
    // The rest of the current chunk is too small for the request: put what fits into free lists
    // instead of losing it.
    while (bump_ != nullptr) {
        const auto left = static_cast<std::size_t>(bump_end_ - bump_);
        if (left < (std::size_t{1} << k_min_class_shift)) {
            break;
        }
        const unsigned shift = static_cast<unsigned>(std::bit_width(left) - 1);
        const unsigned cls = std::min(shift, k_max_class_shift) - k_min_class_shift;
        auto* header = reinterpret_cast<BlockHeader*>(bump_);
        header->magic = k_block_magic;
        header->size_class = cls;
        auto* block = reinterpret_cast<FreeBlock*>(bump_ + k_header_bytes);
        block->next = free_[cls];
        free_[cls] = block;
        bump_ += std::size_t{1} << (cls + k_min_class_shift);
    }
    chunks_.push_back(chunk);
    bump_ = static_cast<std::uint8_t*>(chunk);
    bump_end_ = bump_ + chunk_bytes_;
    stats_.reserved_bytes += chunk_bytes_;
    return true;
}

void* Arena::allocate(std::size_t size) noexcept {
    const std::size_t total = size + k_header_bytes;
    if (total > (std::size_t{1} << k_max_class_shift)) {
        ++stats_.failures;
        return nullptr;
    }
    const unsigned cls = class_of(total);
    const std::size_t block_bytes = std::size_t{1} << (cls + k_min_class_shift);
    void* payload = nullptr;
    if (FreeBlock* block = free_[cls]; block != nullptr) {
        free_[cls] = block->next;
        payload = block;
    } else {
        if (bump_ == nullptr || static_cast<std::size_t>(bump_end_ - bump_) < block_bytes) {
            if (!grow()) {
                ++stats_.failures;
                return nullptr;
            }
        }
        auto* header = reinterpret_cast<BlockHeader*>(bump_);
        header->magic = k_block_magic;
        header->size_class = cls;
        payload = bump_ + k_header_bytes;
        bump_ += block_bytes;
    }
    stats_.in_use_bytes += block_bytes;
    ++stats_.allocations;
    return payload;
}

void Arena::free(void* block) noexcept {
    if (block == nullptr) {
        return;
    }
    auto* header = reinterpret_cast<BlockHeader*>(static_cast<std::uint8_t*>(block) - k_header_bytes);
    const unsigned cls = header->size_class;
    auto* node = static_cast<FreeBlock*>(block);
    node->next = free_[cls];
    free_[cls] = node;
    stats_.in_use_bytes -= std::size_t{1} << (cls + k_min_class_shift);
}

void set_thread_arena(Arena* arena) noexcept { t_arena = arena; }
Arena* thread_arena() noexcept { return t_arena; }

} // namespace gazelle::stack::detail
