// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Named regions of shared (hugepage) memory: DPDK memzones that start with a versioned header.
//
// The primary (gazelle-mgr, or a test primary) creates every region; secondaries attach by name
// and get an error naming the region when it is missing or was made by an incompatible build,
// instead of reading garbage. Regions are never freed by attachers (creators own, attachers borrow).

#include <cstddef>
#include <cstdint>
#include <string>

#include "conf/result.h"
#include "fabric/types.h"

namespace gazelle::fabric {

struct alignas(k_cache_line) RegionHeader {
    std::uint64_t magic;
    std::uint32_t layout_version;
    std::uint32_t reserved_;
    std::uint64_t bytes; // payload bytes, after this header
};
static_assert(sizeof(RegionHeader) == k_cache_line);

// Creates memzone `name` (cache-line aligned, zeroed) with a payload of `bytes` and returns the
// payload. Primary only. Errors: EEXIST (already there), ENOMEM (no hugepage memory: says how much
// was asked for), ENAMETOOLONG.
Result<void*> create_region(const std::string& name, std::size_t bytes, std::uint64_t magic,
                            std::uint32_t layout_version);

// Looks memzone `name` up and checks its header. Errors: ENOENT (not created: is the manager
// running with the same --file-prefix?), EPROTO (magic or layout version differ: different build).
Result<void*> attach_region(const std::string& name, std::uint64_t magic, std::uint32_t layout_version);

// Frees a region created by this process (primary only; tests and manager shutdown).
void free_region(const std::string& name);

// Builds an eight-character magic value from text, so regions are recognisable in a hex dump.
constexpr std::uint64_t make_magic(const char (&text)[9]) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | static_cast<unsigned char>(text[i]);
    }
    return v;
}

} // namespace gazelle::fabric
