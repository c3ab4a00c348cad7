// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The process's one file descriptor space, seen from liblstack.so.
//
// Every descriptor number is a real kernel descriptor: a stack socket owns the number of a
// kernel socket created for it (doc/user-guide.md "File descriptors"), so numbers never collide
// with the kernel's and close()/dup2()/exec behave as the kernel says. The table maps the numbers
// liblstack.so handles itself (stack sockets, sockets not yet placed, epoll sets holding stack
// sockets) to their objects; an empty slot means "a kernel descriptor: call the C library".
//
// Lookups are lock-free and async-signal-safe (two loads for a kernel descriptor). Objects are
// reference counted: each table slot holds one reference, each call in flight another, so a
// close() racing with a call on another thread leaves the object alive until that call returns
// (as the kernel does with a file). Objects are type-stable: they are recycled, never returned to
// the heap, so a reader holding a stale pointer can always try_ref() it safely and then checks
// that the slot still points to it.

#include <atomic>
#include <cstdint>
#include <utility>

namespace gazelle::posix {

enum class FdKind : std::uint8_t { socket, epoll };

class FdObject {
public:
    explicit FdObject(FdKind kind) : kind_(kind) {}
    FdObject(const FdObject&) = delete;
    FdObject& operator=(const FdObject&) = delete;

    FdKind kind() const { return kind_; }

    // Takes a reference unless the object is free (refs 0). Any thread.
    bool try_ref() {
        std::uint32_t v = refs_.load(std::memory_order_acquire);
        while (v != 0) {
            if (refs_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                return true;
            }
        }
        return false;
    }
    void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    // Drops a reference; the last one finalises the object and recycles it.
    void unref() {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            last_ref_dropped();
        }
    }

protected:
    // Recycled objects start again with one reference (the creator's).
    void revive() { refs_.store(1, std::memory_order_release); }
    virtual void last_ref_dropped() = 0;
    ~FdObject() = default; // never deleted through the base (type-stable pools)

private:
    std::atomic<std::uint32_t> refs_{0};
    const FdKind kind_;
};

// An owned reference.
template <typename T>
class Ref {
public:
    Ref() = default;
    // Adopts a reference the caller already holds.
    static Ref adopt(T* p) {
        Ref r;
        r.p_ = p;
        return r;
    }
    ~Ref() { reset(); }
    Ref(Ref&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Ref& operator=(Ref&& other) noexcept {
        if (this != &other) {
            reset();
            p_ = std::exchange(other.p_, nullptr);
        }
        return *this;
    }
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;

    T* get() const { return p_; }
    T* operator->() const { return p_; }
    T& operator*() const { return *p_; }
    explicit operator bool() const { return p_ != nullptr; }
    T* release() { return std::exchange(p_, nullptr); }
    void reset() {
        if (p_ != nullptr) {
            std::exchange(p_, nullptr)->unref();
        }
    }

private:
    T* p_ = nullptr;
};

class FdTable {
public:
    // Descriptors up to this number can hold liblstack.so objects (4096 per lazily allocated chunk).
    static constexpr int k_chunk_bits = 12;
    static constexpr int k_chunk_size = 1 << k_chunk_bits;
    static constexpr int k_chunks = 256;
    static constexpr int k_max_fd = k_chunk_size * k_chunks;

    // Whether fd has an object, without a reference (async-signal-safe fast path).
    bool has(int fd) const {
        const std::atomic<FdObject*>* slot = slot_if_present(fd);
        return slot != nullptr && slot->load(std::memory_order_acquire) != nullptr;
    }

    // A reference to fd's object, or null (a kernel descriptor).
    Ref<FdObject> get(int fd) const;

    // Puts obj at fd (the slot takes its own reference). False if fd is out of range or taken.
    bool install(int fd, FdObject* obj);
    // Empties fd's slot; returns the slot's reference (null if it was empty).
    Ref<FdObject> remove(int fd);
    // Empties fd's slot if it holds obj; true if it did (and dropped the slot's reference).
    bool remove_if(int fd, FdObject* obj);

    // Calls f(fd, obj) for every occupied slot (no reference taken: callers hold the world still,
    // e.g. in a fork child or at exit).
    template <typename F>
    void for_each_unsafe(F&& f) const {
        for (int c = 0; c < k_chunks; ++c) {
            std::atomic<FdObject*>* chunk = chunks_[c].load(std::memory_order_acquire);
            if (chunk == nullptr) {
                continue;
            }
            for (int i = 0; i < k_chunk_size; ++i) {
                if (FdObject* obj = chunk[i].load(std::memory_order_acquire); obj != nullptr) {
                    f(c * k_chunk_size + i, obj);
                }
            }
        }
    }

private:
    std::atomic<FdObject*>* slot_if_present(int fd) const {
        if (fd < 0 || fd >= k_max_fd) {
            return nullptr;
        }
        std::atomic<FdObject*>* chunk = chunks_[fd >> k_chunk_bits].load(std::memory_order_acquire);
        return chunk == nullptr ? nullptr : &chunk[fd & (k_chunk_size - 1)];
    }
    std::atomic<FdObject*>* slot_or_create(int fd);

    std::atomic<std::atomic<FdObject*>*> chunks_[k_chunks] = {};
};

FdTable& fd_table();

} // namespace gazelle::posix
