// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/shared_region.h"

#include <cstring>

#include <rte_errno.h>
#include <rte_memzone.h>

namespace gazelle::fabric {

Result<void*> create_region(const std::string& name, std::size_t bytes, std::uint64_t magic,
                            std::uint32_t layout_version) {
    if (name.size() >= RTE_MEMZONE_NAMESIZE) {
        return make_error(ENAMETOOLONG, "shared region name '" + name + "' is too long");
    }
    const std::size_t total = sizeof(RegionHeader) + bytes;
    const rte_memzone* mz = rte_memzone_reserve_aligned(name.c_str(), total, SOCKET_ID_ANY, 0, k_cache_line);
    if (mz == nullptr) {
        const int err = rte_errno;
        return make_error(err, "Failed to create shared region '" + name + "' (" + std::to_string(total >> 10) +
                                   " KiB of hugepage memory): " + rte_strerror(err));
    }
    std::memset(mz->addr, 0, total);
    auto* header = static_cast<RegionHeader*>(mz->addr);
    header->bytes = bytes;
    header->layout_version = layout_version;
    // The magic goes last: an attacher that sees it sees a complete header.
    __atomic_store_n(&header->magic, magic, __ATOMIC_RELEASE);
    return static_cast<void*>(header + 1);
}

Result<void*> attach_region(const std::string& name, std::uint64_t magic, std::uint32_t layout_version) {
    const rte_memzone* mz = rte_memzone_lookup(name.c_str());
    if (mz == nullptr) {
        return make_error(ENOENT, "Shared region '" + name +
                                      "' does not exist: is gazelle-mgr running with the same file prefix?");
    }
    auto* header = static_cast<RegionHeader*>(mz->addr);
    if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != magic) {
        return make_error(EPROTO, "Shared region '" + name + "' has a foreign magic: not made by this fabric");
    }
    if (header->layout_version != layout_version) {
        return make_error(EPROTO, "Shared region '" + name + "' has layout version " +
                                      std::to_string(header->layout_version) + ", this build expects " +
                                      std::to_string(layout_version) + ": restart apps and manager from one build");
    }
    if (mz->len < sizeof(RegionHeader) + header->bytes) {
        return make_error(EPROTO, "Shared region '" + name + "' is shorter than its header says");
    }
    return static_cast<void*>(header + 1);
}

void free_region(const std::string& name) {
    if (const rte_memzone* mz = rte_memzone_lookup(name.c_str())) {
        (void)rte_memzone_free(mz); // only fails for a zone that is not ours; nothing to do then
    }
}

} // namespace gazelle::fabric
