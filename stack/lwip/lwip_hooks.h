/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef GAZELLE_LWIP_HOOKS_H
#define GAZELLE_LWIP_HOOKS_H

/* lwIP hooks (LWIP_HOOK_FILENAME), implemented in stack/lwip_port.cc. Included by lwIP's sources
 * after their own headers. */
#include "lwip/ip_addr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 6528: ISN = M + F(local ip, local port, remote ip, remote port, secret key), M a 4 us clock. */
u32_t gazelle_lwip_tcp_isn(const ip_addr_t* local_ip, u16_t local_port, const ip_addr_t* remote_ip,
                           u16_t remote_port);

#ifdef __cplusplus
}
#endif

#endif
