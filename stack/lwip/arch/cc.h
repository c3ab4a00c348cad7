/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef GAZELLE_LWIP_ARCH_CC_H
#define GAZELLE_LWIP_ARCH_CC_H

/* Compiler and platform glue for lwIP on Linux/x86-64 (glibc). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>

#define LWIP_NO_CTYPE_H 0
#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_ERRNO_STDINCLUDE 1
#define BYTE_ORDER LITTLE_ENDIAN

#ifdef __cplusplus
extern "C" {
#endif

/* lwIP asserts are programming errors inside the stack: report through the stack layer's hook
 * (a library never aborts its host process silently; it names file and line). */
void gazelle_lwip_assert(const char* message, const char* file, int line);

/* lwIP's heap (MEM_LIBC_MALLOC): the calling stack thread's hugepage arena (stack/internal/arena.h). */
void* gazelle_lwip_malloc(size_t size);
void* gazelle_lwip_calloc(size_t count, size_t size);
void gazelle_lwip_free(void* memory);

/* A random 32-bit value from the calling thread's generator (no shared state). */
unsigned gazelle_lwip_rand(void);

#ifdef __cplusplus
}
#endif

#define LWIP_PLATFORM_ASSERT(x) gazelle_lwip_assert((x), __FILE__, __LINE__)
#define LWIP_PLATFORM_DIAG(x) do { } while (0)

/* Storage class of every lwIP variable with static storage (stack/lwip/thread_local.list): one lwIP
 * instance per stack thread. */
#define LWIP_PER_THREAD __thread

/* random() keeps its state in libc (one generator per process, behind a lock): not for the
 * packet path of several stacks. */
#define LWIP_RAND() ((u32_t)gazelle_lwip_rand())

#endif
