// SPDX-License-Identifier: BSD-3-Clause
// lwIP as the project builds it (Debian's 2.1.3 source + our lwipopts.h): the options we rely on
// are in effect and the raw TCP/UDP API works without an OS layer, on an arena of our own.
#include <gtest/gtest.h>

extern "C" {
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
}

#include "fabric/mbuf.h"
#include "stack/internal/arena.h"

namespace {

using gazelle::stack::detail::Arena;
using gazelle::stack::detail::HeapChunks;

TEST(LwipBuild, IsVersion213WithRawApiOnly) {
    EXPECT_EQ(LWIP_VERSION_MAJOR, 2);
    EXPECT_EQ(LWIP_VERSION_MINOR, 1);
    EXPECT_EQ(LWIP_VERSION_REVISION, 3);
    EXPECT_EQ(NO_SYS, 1);
    EXPECT_EQ(LWIP_SOCKET, 0);
    EXPECT_EQ(LWIP_SUPPORT_CUSTOM_PBUF, 1); // zero-copy rx builds pbufs over mbuf data
    EXPECT_EQ(MEMP_MEM_MALLOC, 1);          // every pool comes from the stack's arena
    EXPECT_EQ(MEM_LIBC_MALLOC, 1);
    EXPECT_EQ(LWIP_TCP_PCB_NUM_EXT_ARGS, 1); // flow rules ride on the pcb
}

TEST(LwipBuild, CustomPbufFitsTheMbufStackArea) {
    EXPECT_LE(sizeof(pbuf_custom), sizeof(gazelle::fabric::MbufPriv::stack_area));
}

TEST(LwipBuild, TcpAndUdpPcbsBindAndListen) {
    HeapChunks heap;
    Arena arena(heap, 1u << 20, 8u << 20);
    gazelle::stack::detail::set_thread_arena(&arena);
    lwip_init();
    tcp_pcb* pcb = tcp_new();
    ASSERT_NE(pcb, nullptr);
    ASSERT_EQ(tcp_bind(pcb, IP4_ADDR_ANY, 8080), ERR_OK);
    tcp_pcb* listener = tcp_listen(pcb);
    ASSERT_NE(listener, nullptr);
    EXPECT_EQ(listener->state, LISTEN);
    EXPECT_EQ(tcp_close(listener), ERR_OK);

    udp_pcb* u = udp_new();
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(udp_bind(u, IP4_ADDR_ANY, 5353), ERR_OK);
    udp_remove(u);
    sys_check_timeouts(); // timers run from the caller's loop (no tcpip thread)
    EXPECT_GT(arena.stats().allocations, 0u);
    gazelle::stack::detail::set_thread_arena(nullptr);
}

} // namespace
