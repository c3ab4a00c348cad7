/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef GAZELLE_LWIPOPTS_H
#define GAZELLE_LWIPOPTS_H

/* lwIP options of the fabric's stacks (lwIP 2.1.3 from Debian's source package, compiled here:
 * Debian's prebuilt liblwip is configured for the Hurd with a tcpip thread and malloc'ed pools).
 * Why each choice: doc/lwip.md and doc/stack.md.
 *
 * Every file-scope variable of lwIP is thread-local in our build (stack/lwip/thread_local.cmake
 * patches the fetched sources): one lwIP instance per stack thread, several per process. */

/* Raw API only, driven by our own poll loop: no OS layer, no tcpip thread, no locks. */
#define NO_SYS 1
#define LWIP_NETCONN 0
#define LWIP_SOCKET 0
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_TIMERS 1

/* IPv4 with ARP, ICMP echo, TCP and UDP. IPv6 is a later step (LWIP_IPV6 stays a switch). */
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define LWIP_ICMP 1
#define LWIP_RAW 0
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_DNS 0
#define LWIP_ALTCP 0
#define IP_REASSEMBLY 1
#define IP_FRAG 1
/* Own address -> own MAC: a packet to our own port goes through the fabric to its owner stack. */
#define ETHARP_SUPPORT_STATIC_ENTRIES 1
#define ARP_TABLE_SIZE 64
/* Keep every packet sent while an address resolves (a burst of connects to a new peer). lwIP's
 * default ARP_QUEUE_LEN of 3 dropped all but the last 3: a stack with a cold ARP table that got
 * 64 forwarded SYNs at once sent 3 SYN-ACKs, the peer retransmitted the rest after 1 s. */
#define ARP_QUEUEING 1
#define ARP_QUEUE_LEN 512

/* Memory: every lwIP allocation (pcbs, segments, pbufs, ARP queue entries) goes to the stack's
 * own arena in hugepage memzones registered with the manager (stack/internal/arena.h): memp
 * pools become mem_malloc() calls and mem_malloc() is the arena. The MEMP_NUM_* limits therefore
 * do not apply; the arena's size does (StackOptions::arena_max_bytes). */
#define MEM_LIBC_MALLOC 1
#define MEMP_MEM_MALLOC 1
#define mem_clib_malloc gazelle_lwip_malloc
#define mem_clib_free gazelle_lwip_free
#define mem_clib_calloc gazelle_lwip_calloc
#define MEM_ALIGNMENT 8
#define PBUF_POOL_SIZE 0
#define LWIP_SUPPORT_CUSTOM_PBUF 1

/* TCP tuned for a LAN-like fabric. The window equals the per-socket receive ring
 * (stack/internal/socket.h): data lwIP delivers always fits, because tcp_recved() is only called
 * for bytes the application consumed. */
#define TCP_MSS 1460
#define TCP_WND (64 * 1024)
#define TCP_SND_BUF (64 * 1024)
#define TCP_SND_QUEUELEN ((4 * TCP_SND_BUF + TCP_MSS - 1) / TCP_MSS)
#define TCP_QUEUE_OOSEQ 1
#define LWIP_TCP_SACK_OUT 0
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 2
#define TCP_LISTEN_BACKLOG 1
/* TIME_WAIT lasts 2 * TCP_MSL: 60 s, as Linux's (lwIP's default MSL of 60 s makes it 120 s). A
 * connection in TIME_WAIT holds its local port for that 4-tuple and its flow rule, so it bounds
 * the rate a client sustains to one server port: (ephemeral ports steered to its queue) / 60 s.
 * crash_soak_mp_test's long variant ran out of ports after 215 kills with 120 s. */
#define TCP_MSL 30000UL
#define LWIP_TCP_KEEPALIVE 1
#define SO_REUSE 1
/* One extension slot per pcb: the connection's flow rule, removed by its destroy callback when
 * lwIP frees the pcb (after TIME_WAIT, on RST, on abort), added by the passive_open callback
 * before the SYN-ACK leaves. */
#define LWIP_TCP_PCB_NUM_EXT_ARGS 1
/* Initial sequence numbers per RFC 6528 instead of lwIP's predictable counter. */
#define LWIP_HOOK_FILENAME "lwip_hooks.h"
#define LWIP_HOOK_TCP_ISN gazelle_lwip_tcp_isn

/* Checksums: generated and checked in software, switchable per netif (the stack turns them off
 * for user-veth ports when StackOptions::user_veth_checksums is false: frames never leave memory). */
#define LWIP_CHECKSUM_CTRL_PER_NETIF 1
#define CHECKSUM_GEN_IP 1
#define CHECKSUM_GEN_TCP 1
#define CHECKSUM_GEN_UDP 1
#define CHECKSUM_GEN_ICMP 1
#define CHECKSUM_CHECK_IP 1
#define CHECKSUM_CHECK_TCP 1
#define CHECKSUM_CHECK_UDP 1
#define CHECKSUM_CHECK_ICMP 1

/* lwIP's own counters (thread-local like the rest); the stack folds its drop counters into the
 * queue's QueueStats. Pool statistics are off: with MEMP_MEM_MALLOC there are no pools. */
#define LWIP_STATS 1
#define MEM_STATS 0
#define MEMP_STATS 0
#define SYS_STATS 0
#define LWIP_STATS_DISPLAY 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK 0
#define LWIP_SINGLE_NETIF 0
#define LWIP_NETIF_LOOPBACK 0
#define LWIP_NOASSERT 0

#endif
