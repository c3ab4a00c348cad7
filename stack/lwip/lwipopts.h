/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef GAZELLE_LWIPOPTS_H
#define GAZELLE_LWIPOPTS_H

/* lwIP options of the fabric's stacks (lwIP 2.1.3 from Debian's source package, compiled here:
 * Debian's prebuilt liblwip is configured for the Hurd with a tcpip thread and malloc'ed pools).
 * Why each choice: doc/lwip.md. */

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
#define IP_REASSEMBLY 1
#define IP_FRAG 1

/* Memory: fixed-size pools (memp) for every structure, so they can live in hugepages and be
 * registered with the manager; the small heap is only used for pbuf_alloc(PBUF_RAM). */
#define MEM_ALIGNMENT 8
#define MEM_SIZE (4 * 1024 * 1024)
#define MEMP_NUM_TCP_PCB 4096
#define MEMP_NUM_TCP_PCB_LISTEN 64
#define MEMP_NUM_UDP_PCB 256
#define MEMP_NUM_TCP_SEG 16384
#define MEMP_NUM_PBUF 8192
#define PBUF_POOL_SIZE 0
#define LWIP_SUPPORT_CUSTOM_PBUF 1

/* TCP tuned for a LAN-like fabric. */
#define TCP_MSS 1460
#define TCP_WND (64 * TCP_MSS)
#define TCP_SND_BUF (64 * TCP_MSS)
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ 1
#define LWIP_TCP_SACK_OUT 0
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 2
#define TCP_LISTEN_BACKLOG 1
#define LWIP_TCP_KEEPALIVE 1
#define SO_REUSE 1

/* Checksums: computed in software here; the stack layer turns on offload per port. */
#define CHECKSUM_GEN_IP 1
#define CHECKSUM_GEN_TCP 1
#define CHECKSUM_GEN_UDP 1
#define CHECKSUM_CHECK_IP 1
#define CHECKSUM_CHECK_TCP 1
#define CHECKSUM_CHECK_UDP 1

#define LWIP_STATS 1
#define LWIP_STATS_DISPLAY 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK 0
#define LWIP_SINGLE_NETIF 0
#define LWIP_NOASSERT 0

#endif
