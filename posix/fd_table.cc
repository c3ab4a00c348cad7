// SPDX-License-Identifier: BSD-3-Clause
#include "posix/fd_table.h"

#include <cstdlib>
#include <new>

namespace gazelle::posix {

Ref<FdObject> FdTable::get(int fd) const {
    std::atomic<FdObject*>* slot = slot_if_present(fd);
    if (slot == nullptr) {
        return {};
    }
    for (;;) {
        FdObject* obj = slot->load(std::memory_order_acquire);
        if (obj == nullptr) {
            return {};
        }
        if (!obj->try_ref()) {
            continue; // being recycled: the slot changes (or already changed) under us
        }
        if (slot->load(std::memory_order_acquire) == obj) {
            return Ref<FdObject>::adopt(obj);
        }
        obj->unref();
    }
}

std::atomic<FdObject*>* FdTable::slot_or_create(int fd) {
    if (fd < 0 || fd >= k_max_fd) {
        return nullptr;
    }
    std::atomic<std::atomic<FdObject*>*>& head = chunks_[fd >> k_chunk_bits];
    std::atomic<FdObject*>* chunk = head.load(std::memory_order_acquire);
    if (chunk == nullptr) {
        // calloc: zeroed slots are valid null atomics on every target we build for.
        auto* fresh = static_cast<std::atomic<FdObject*>*>(std::calloc(k_chunk_size, sizeof(std::atomic<FdObject*>)));
        if (fresh == nullptr) {
            return nullptr;
        }
        if (head.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) {
            chunk = fresh;
        } else {
            std::free(fresh);
        }
    }
    return &chunk[fd & (k_chunk_size - 1)];
}

bool FdTable::install(int fd, FdObject* obj) {
    std::atomic<FdObject*>* slot = slot_or_create(fd);
    if (slot == nullptr) {
        return false;
    }
    obj->ref();
    FdObject* expected = nullptr;
    if (!slot->compare_exchange_strong(expected, obj, std::memory_order_acq_rel)) {
        obj->unref();
        return false;
    }
    return true;
}

Ref<FdObject> FdTable::remove(int fd) {
    std::atomic<FdObject*>* slot = slot_if_present(fd);
    if (slot == nullptr) {
        return {};
    }
    return Ref<FdObject>::adopt(slot->exchange(nullptr, std::memory_order_acq_rel));
}

bool FdTable::remove_if(int fd, FdObject* obj) {
    std::atomic<FdObject*>* slot = slot_if_present(fd);
    if (slot == nullptr) {
        return false;
    }
    FdObject* expected = obj;
    if (!slot->compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) {
        return false;
    }
    obj->unref();
    return true;
}

namespace {
// Constant-initialised and trivially destructible: usable before constructors and after
// destructors run (calls arrive from other libraries' constructors and from atexit handlers).
constinit FdTable g_table;
} // namespace

FdTable& fd_table() { return g_table; }

} // namespace gazelle::posix
