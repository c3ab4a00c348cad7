// SPDX-License-Identifier: BSD-3-Clause
// mgr/attach_policy.h: port choice and its refusal messages, lcore ids, CPUs.
#include "mgr/attach_policy.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <vector>

namespace gazelle::mgr {
namespace {

namespace proto = fabric::mgr_protocol;

std::vector<PortView> two_ports(std::vector<fabric::QueueSlot> free0, std::vector<fabric::QueueSlot> free1) {
    PortView a;
    a.index = 0;
    a.name = "veth0";
    a.ipv4 = htonl(0xc6120001u);
    const std::uint8_t mac_a[6] = {2, 0, 0, 0, 0, 1};
    std::memcpy(a.mac, mac_a, 6);
    a.nb_queues = 2;
    a.free_slots = std::move(free0);
    PortView b = a;
    b.index = 1;
    b.name = "veth1";
    b.ipv4 = htonl(0xc6120002u);
    b.mac[5] = 2;
    b.nb_queues = 1;
    b.free_slots = std::move(free1);
    return {a, b};
}

proto::AttachRequest request(unsigned queues, proto::PortSelector selector = proto::PortSelector::any) {
    proto::AttachRequest r;
    r.queues = queues;
    r.selector = selector;
    return r;
}

TEST(SelectPort, AnyTakesTheFirstPortWithEnoughFreeQueues) {
    const auto ports = two_ports({0, 1}, {2});
    EXPECT_EQ(*select_port(request(1), ports), 0u);
    EXPECT_EQ(*select_port(request(2), ports), 0u);
    const auto busy = two_ports({1}, {2});
    EXPECT_EQ(*select_port(request(1), busy), 0u);
    EXPECT_EQ(*select_port(request(1), two_ports({}, {2})), 1u);
    auto none = select_port(request(2), busy);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, EBUSY);
    EXPECT_EQ(none.error().message, "no port has 2 free queues (free queues: veth0 1, veth1 1)");
}

TEST(SelectPort, ByAddressMacOrName) {
    const auto ports = two_ports({0, 1}, {2});
    auto r = request(1, proto::PortSelector::by_ipv4);
    r.ipv4 = htonl(0xc6120002u);
    EXPECT_EQ(*select_port(r, ports), 1u);
    r = request(1, proto::PortSelector::by_mac);
    const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 2};
    std::memcpy(r.mac, mac, 6);
    EXPECT_EQ(*select_port(r, ports), 1u);
    r = request(1, proto::PortSelector::by_name);
    std::strcpy(r.port_name, "veth0");
    EXPECT_EQ(*select_port(r, ports), 0u);
}

TEST(SelectPort, NoMatchNamesWhatWasAskedAndWhatExists) {
    const auto ports = two_ports({0, 1}, {2});
    auto r = request(1, proto::PortSelector::by_ipv4);
    r.ipv4 = htonl(0x0a000001u);
    auto e = select_port(r, ports);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, EINVAL);
    EXPECT_EQ(e.error().message,
              "no port matches: app asked for the port with IPv4 10.0.0.1; ports: veth0 (198.18.0.1, "
              "02:00:00:00:00:01), veth1 (198.18.0.2, 02:00:00:00:00:02)");
    r = request(1, proto::PortSelector::by_name);
    std::memcpy(r.port_name, "0123456789abcdef", 16); // no NUL: read up to the field's end
    e = select_port(r, ports);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("port '0123456789abcdef'"), std::string::npos) << e.error().message;
    r = request(1, static_cast<proto::PortSelector>(9));
    e = select_port(r, ports);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, EINVAL);
    EXPECT_EQ(e.error().message, "unknown port selector 9 (0 any, 1 by IPv4, 2 by MAC, 3 by name)");
}

TEST(SelectPort, TooFewFreeQueuesOnTheNamedPort) {
    auto r = request(2, proto::PortSelector::by_name);
    std::strcpy(r.port_name, "veth0");
    auto e = select_port(r, two_ports({1}, {2}));
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, EBUSY);
    EXPECT_EQ(e.error().message, "port veth0 has 1 free queue, app asked 2");
    e = select_port(r, two_ports({}, {2}));
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message, "port veth0 has 0 free queues, app asked 2");
}

TEST(LcorePool, LowestFreeIdsNeverTheMainLcoreNeverTwice) {
    const std::vector<unsigned> ids = {3, 1, 2, 0, 2, 200};
    LcorePool pool(ids, 0); // 0 is the manager's, 200 is out of range, 2 is listed twice
    EXPECT_EQ(pool.size(), 3u);
    auto a = pool.take(2);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, (std::vector<std::uint16_t>{1, 2}));
    auto b = pool.take(1);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, (std::vector<std::uint16_t>{3}));
    auto full = pool.take(1);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code, EBUSY);
    EXPECT_EQ(full.error().message, "3 of 3 lcore ids of dpdk.app_lcores are in use, app asked 1");
    pool.give_back(*a);
    EXPECT_FALSE(pool.taken(1));
    EXPECT_TRUE(pool.taken(3));
    EXPECT_EQ(pool.free_count(), 2u);
    const std::vector<std::uint16_t> unknown = {77};
    pool.give_back(unknown);
    EXPECT_EQ(pool.free_count(), 2u);
    EXPECT_EQ(*pool.take(2), (std::vector<std::uint16_t>{1, 2}));
}

TEST(CpuRoundRobin, CyclesThroughTheList) {
    const std::vector<unsigned> cpus = {1, 0};
    CpuRoundRobin rr(cpus);
    EXPECT_EQ(rr.next(), 1);
    EXPECT_EQ(rr.next(), 0);
    EXPECT_EQ(rr.next(), 1);
    CpuRoundRobin empty;
    EXPECT_EQ(empty.next(), 0);
}

} // namespace
} // namespace gazelle::mgr
