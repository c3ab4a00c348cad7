// SPDX-License-Identifier: BSD-3-Clause
// The few functions lwIP (NO_SYS=1) needs from its platform.
#include <chrono>
#include <cstdio>
#include <cstdlib>

extern "C" {
#include "lwip/arch.h"
#include "lwip/sys.h"
}

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
