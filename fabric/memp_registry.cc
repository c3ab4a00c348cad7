// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/memp_registry.h"

#include <atomic>
#include <cstdio>
#include <cstring>

#include <rte_errno.h>
#include <rte_memzone.h>

#include "fabric/shared_region.h"

namespace gazelle::fabric {

namespace {
constexpr std::uint64_t k_memp_magic = make_magic("GZMEMPLS");
// Marks an entry claimed but not yet filled in (owner tags always have bit 0 set).
constexpr std::uint64_t k_claiming = 2;
std::atomic<unsigned> g_memp_counter{0};
} // namespace

Result<MempRegistry> MempRegistry::create() {
    auto region = create_region(k_memp_region, sizeof(MempEntry) * k_memp_entries, k_memp_magic, k_memp_layout);
    if (!region) {
        return region.error();
    }
    return MempRegistry(static_cast<MempEntry*>(*region));
}

void MempRegistry::destroy() { free_region(k_memp_region); }

Result<MempRegistry> MempRegistry::attach() {
    auto region = attach_region(k_memp_region, k_memp_magic, k_memp_layout);
    if (!region) {
        return region.error();
    }
    return MempRegistry(static_cast<MempEntry*>(*region));
}

Result<void*> MempRegistry::create_memp(OwnerTag owner, const std::string& label, std::size_t bytes) {
    MempEntry* entry = nullptr;
    for (unsigned i = 0; i < k_memp_entries && entry == nullptr; ++i) {
        std::uint64_t expected = 0;
        if (entries_[i].owner.compare_exchange_strong(expected, k_claiming, std::memory_order_acq_rel)) {
            entry = &entries_[i];
        }
    }
    if (entry == nullptr) {
        return make_error(ENOSPC, "memp registry is full (" + std::to_string(k_memp_entries) + " pools)");
    }
    // Memzone names are process-unique through the owner tag and a per-process counter.
    char name[sizeof entry->memzone];
    std::snprintf(name, sizeof name, "gzm_%u_%u_%u", owner.slot(), owner.epoch(),
                  g_memp_counter.fetch_add(1, std::memory_order_relaxed));
    const rte_memzone* mz = rte_memzone_reserve_aligned(name, bytes, SOCKET_ID_ANY, 0, k_cache_line);
    if (mz == nullptr) {
        const int err = rte_errno;
        entry->owner.store(0, std::memory_order_release);
        return make_error(err, "Failed to reserve memp '" + label + "' (" + std::to_string(bytes) +
                                   " B of hugepage memory): " + rte_strerror(err));
    }
    std::memset(mz->addr, 0, bytes);
    std::memcpy(entry->memzone, name, sizeof name);
    std::snprintf(entry->label, sizeof entry->label, "%s", label.c_str());
    entry->bytes = bytes;
    entry->owner.store(owner.value, std::memory_order_release);
    return mz->addr;
}

Result<void> MempRegistry::destroy_memp(void* memory) {
    for (unsigned i = 0; i < k_memp_entries; ++i) {
        MempEntry& e = entries_[i];
        const std::uint64_t owner = e.owner.load(std::memory_order_acquire);
        if (owner == 0 || owner == k_claiming) {
            continue;
        }
        const rte_memzone* mz = rte_memzone_lookup(e.memzone);
        if (mz != nullptr && mz->addr == memory) {
            (void)rte_memzone_free(mz);
            e.owner.store(0, std::memory_order_release);
            return {};
        }
    }
    return make_error(ENOENT, "memp at this address is not registered");
}

MempRegistry::Freed MempRegistry::free_owned_by(OwnerTag owner) {
    Freed freed;
    for (unsigned i = 0; i < k_memp_entries; ++i) {
        MempEntry& e = entries_[i];
        if (e.owner.load(std::memory_order_acquire) != owner.value) {
            continue;
        }
        if (const rte_memzone* mz = rte_memzone_lookup(e.memzone)) {
            (void)rte_memzone_free(mz);
        }
        freed.pools += 1;
        freed.bytes += e.bytes;
        e.owner.store(0, std::memory_order_release);
    }
    return freed;
}

std::vector<MempInfo> MempRegistry::list() const {
    std::vector<MempInfo> out;
    for (unsigned i = 0; i < k_memp_entries; ++i) {
        const MempEntry& e = entries_[i];
        const OwnerTag owner{e.owner.load(std::memory_order_acquire)};
        if (owner.empty() || owner.value == k_claiming) {
            continue;
        }
        out.push_back(MempInfo{owner.slot(), e.memzone, e.label, e.bytes});
    }
    return out;
}

} // namespace gazelle::fabric
