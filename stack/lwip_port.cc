// SPDX-License-Identifier: BSD-3-Clause
// What lwIP (NO_SYS=1) needs from its platform: a clock, assertions, its heap (the calling stack
// thread's arena), random numbers and initial sequence numbers. Every function here may be called
// by several stack threads at once: no shared mutable state (the ISN secret is written once).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <sys/random.h>

extern "C" {
#include "lwip/arch.h"
#include "lwip/ip_addr.h"
#include "lwip/sys.h"
#include "lwip_hooks.h"
}

#include "stack/internal/arena.h"

namespace {

using gazelle::stack::detail::thread_arena;

// xorshift64*, one state per thread, seeded from the kernel.
std::uint64_t next_random() {
    thread_local std::uint64_t state = [] {
        std::uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed || seed == 0) {
            seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) | 1u;
        }
        return seed;
    }();
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
}

// SipHash-2-4 (Aumasson, Bernstein), the keyed function F of RFC 6528.
std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

std::uint64_t siphash24(const std::uint64_t key[2], const std::uint8_t* in, std::size_t len) {
    std::uint64_t v0 = 0x736f6d6570736575ull ^ key[0];
    std::uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
    std::uint64_t v2 = 0x6c7967656e657261ull ^ key[0];
    std::uint64_t v3 = 0x7465646279746573ull ^ key[1];
    auto round = [&] {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
    };
    const std::size_t blocks = len / 8;
    for (std::size_t i = 0; i < blocks; ++i) {
        std::uint64_t m;
        std::memcpy(&m, in + 8 * i, 8);
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    std::uint64_t last = static_cast<std::uint64_t>(len) << 56;
    for (std::size_t i = 0; i < len % 8; ++i) {
        last |= static_cast<std::uint64_t>(in[8 * blocks + i]) << (8 * i);
    }
    v3 ^= last;
    round();
    round();
    v0 ^= last;
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) {
        round();
    }
    return v0 ^ v1 ^ v2 ^ v3;
}

struct IsnSecret {
    std::uint64_t key[2] = {};
    IsnSecret() {
        if (getrandom(key, sizeof key, 0) != sizeof key) {
            key[0] = next_random();
            key[1] = next_random();
        }
    }
};

} // namespace

extern "C" u32_t sys_now(void) {
    using namespace std::chrono;
    return static_cast<u32_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// An lwIP assertion is a broken invariant inside the stack's own state: continuing would corrupt
// connections of every socket of this process, so this is the one place the stack layer aborts.
extern "C" void gazelle_lwip_assert(const char* message, const char* file, int line) {
    std::fprintf(stderr, "gazelle: lwIP assertion failed at %s:%d: %s\n", file, line, message);
    std::abort();
}

extern "C" void* gazelle_lwip_malloc(size_t size) {
    auto* arena = thread_arena();
    return arena != nullptr ? arena->allocate(size) : nullptr;
}

extern "C" void* gazelle_lwip_calloc(size_t count, size_t size) {
    if (size != 0 && count > static_cast<size_t>(-1) / size) {
        return nullptr;
    }
    void* p = gazelle_lwip_malloc(count * size);
    if (p != nullptr) {
        std::memset(p, 0, count * size);
    }
    return p;
}

extern "C" void gazelle_lwip_free(void* memory) {
    if (auto* arena = thread_arena(); arena != nullptr) {
        arena->free(memory);
    }
}

extern "C" unsigned gazelle_lwip_rand(void) { return static_cast<unsigned>(next_random() >> 32); }

extern "C" u32_t gazelle_lwip_tcp_isn(const ip_addr_t* local_ip, u16_t local_port, const ip_addr_t* remote_ip,
                                      u16_t remote_port) {
    static const IsnSecret secret; // once per process (thread-safe static initialisation)
    std::uint8_t tuple[12];
    std::memcpy(tuple, &ip_2_ip4(local_ip)->addr, 4);
    std::memcpy(tuple + 4, &ip_2_ip4(remote_ip)->addr, 4);
    std::memcpy(tuple + 8, &local_port, 2);
    std::memcpy(tuple + 10, &remote_port, 2);
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto m = static_cast<std::uint32_t>((static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull +
                                               static_cast<std::uint64_t>(now.tv_nsec)) / 4000u); // 4 us clock
    return m + static_cast<std::uint32_t>(siphash24(secret.key, tuple, sizeof tuple));
}
