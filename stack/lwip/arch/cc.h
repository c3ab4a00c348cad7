/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef GAZELLE_LWIP_ARCH_CC_H
#define GAZELLE_LWIP_ARCH_CC_H

/* Compiler and platform glue for lwIP on Linux/x86-64 (glibc). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>

#define LWIP_NO_CTYPE_H 0
#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_ERRNO_STDINCLUDE 1
#define BYTE_ORDER LITTLE_ENDIAN

/* lwIP asserts are programming errors inside the stack: report through the stack layer's hook
 * (a library never aborts its host process silently; it names file and line). */
void gazelle_lwip_assert(const char* message, const char* file, int line);
#define LWIP_PLATFORM_ASSERT(x) gazelle_lwip_assert((x), __FILE__, __LINE__)
#define LWIP_PLATFORM_DIAG(x) do { } while (0)

#define LWIP_RAND() ((u32_t)random())

#endif
