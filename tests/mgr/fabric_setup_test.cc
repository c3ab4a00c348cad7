// SPDX-License-Identifier: BSD-3-Clause
// mgr/fabric_setup.h without starting DPDK: the primary's EAL arguments for each kind of port,
// and the fabric's parameters for user-veth ports.
#include "mgr/fabric_setup.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fabric/eal.h"

namespace gazelle::mgr {
namespace {

conf::ManagerConfig parse(const std::string& text) {
    auto config = conf::parse_manager_config(text, "test.conf");
    EXPECT_TRUE(config) << (config ? "" : config.error().message);
    return config ? *config : conf::ManagerConfig{};
}

bool has(const std::vector<std::string>& args, const std::string& arg) {
    return std::find(args.begin(), args.end(), arg) != args.end();
}

TEST(PrimaryEalArgs, UserVethOnlyRunsWithoutPci) {
    const auto config = conf::default_manager_config();
    const auto args = primary_eal_args(config, 1);
    EXPECT_EQ(args, (std::vector<std::string>{"--proc-type=primary", "--file-prefix=gazelle",
                                              "--huge-dir=/mnt/gazelle-huge", "--lcores=0@1", "--no-pci", "-m",
                                              "512", "--single-file-segments", fabric::k_base_virtaddr_arg}));
}

TEST(PrimaryEalArgs, ABaseAddressInExtraArgsReplacesTheDefault) {
    const auto config = parse(R"(dpdk: { extra_args = ["--base-virtaddr=0x300000000000"]; };)");
    const auto args = primary_eal_args(config, 0);
    EXPECT_FALSE(has(args, fabric::k_base_virtaddr_arg));
    EXPECT_EQ(args.back(), "--base-virtaddr=0x300000000000");
}

// memory_mb: hugepage memory preallocated at start and pinned (EAL -m in dynamic mode: while it
// suffices no page comes or goes as apps attach and die, so no memory-map synchronisation with
// the secondaries); 0: dynamic memory only. Never --legacy-mem (every free page mapped at start,
// one descriptor per page in every app).
TEST(PrimaryEalArgs, MemoryMbIsPreallocatedMemoryOfThatSize) {
    auto m_value = [](const std::vector<std::string>& args) -> std::string {
        const auto m = std::find(args.begin(), args.end(), "-m");
        return m == args.end() || m + 1 == args.end() ? "" : *(m + 1);
    };
    const auto defaults = primary_eal_args(parse(""), 0);
    EXPECT_EQ(m_value(defaults), "512");
    EXPECT_FALSE(has(defaults, "--legacy-mem"));
    const auto args = primary_eal_args(parse("dpdk: { memory_mb = 1024; };"), 0);
    EXPECT_EQ(m_value(args), "1024");
    EXPECT_FALSE(has(args, "--legacy-mem"));
    const auto dynamic = primary_eal_args(parse("dpdk: { memory_mb = 0; };"), 0);
    EXPECT_FALSE(has(dynamic, "-m"));
    EXPECT_FALSE(has(dynamic, "--legacy-mem"));
}

// One hugepage file per memseg list, whatever the memory mode: an app then holds a handful of
// DPDK descriptors, not one per page. Given in extra_args too, it is passed once.
TEST(PrimaryEalArgs, SingleFileSegmentsOnce) {
    for (const char* text : {"", "dpdk: { memory_mb = 0; };", "dpdk: { extra_args = [\"--single-file-segments\"]; };"}) {
        const auto args = primary_eal_args(parse(text), 0);
        EXPECT_EQ(std::count(args.begin(), args.end(), "--single-file-segments"), 1) << text;
    }
}

TEST(PrimaryEalArgs, TapPortsAreVdevsPciPortsAreAllowedOnly) {
    const auto config = parse(R"(
dpdk: { file_prefix = "p"; main_lcore = 2; socket_limit_mb = 64; memory_mb = 0; extra_args = ["--log-level=lib.eal:debug"]; app_lcores = "3-9"; };
ports = (
  { name = "tap0"; type = "tap"; iface = "gztap0"; mac = "02:00:00:00:01:01"; ipv4 = "198.18.1.1"; netmask = "255.255.255.0"; },
  { name = "nic0"; type = "pci"; pci = "0000:03:00.0"; mac = ""; ipv4 = "192.168.1.10"; netmask = "255.255.255.0"; },
  { name = "tap1"; type = "tap"; iface = "gztap1"; mac = "02:00:00:00:01:02"; ipv4 = "198.18.2.1"; netmask = "255.255.255.0"; queues = 2; }
);
)");
    const auto args = primary_eal_args(config, 0, 2);
    EXPECT_FALSE(has(args, "--no-pci"));
    EXPECT_TRUE(has(args, "--lcores=2@0"));
    EXPECT_TRUE(has(args, "--socket-limit=64,64"));
    EXPECT_FALSE(has(args, "--legacy-mem")); // memory_mb = 0: EAL's dynamic memory
    EXPECT_TRUE(has(args, "--vdev=net_tap0,iface=gztap0,mac=02:00:00:00:01:01"));
    EXPECT_TRUE(has(args, "--vdev=net_tap1,iface=gztap1,mac=02:00:00:00:01:02"));
    const auto allow = std::find(args.begin(), args.end(), "-a");
    ASSERT_NE(allow, args.end());
    EXPECT_EQ(*(allow + 1), "0000:03:00.0");
    EXPECT_EQ(args.back(), "--log-level=lib.eal:debug"); // extra_args come last
    EXPECT_EQ(ethdev_device_names(config), (std::vector<std::string>{"net_tap0", "0000:03:00.0", "net_tap1"}));
}

TEST(FabricParams, UserVethPortsFromTheConfiguration) {
    const auto config = parse(R"(
fabric: { max_queues = 8; ring_size = 512; flow_table_size = 4096; listener_table_size = 65536; mbufs_per_queue = 2047;
          mbuf_cache_size = 128; l2_pool_mbufs = 4095; l2_low_watermark_percent = 20; };
ports = (
  { name = "a"; type = "user-veth"; mac = "02:00:00:00:00:0a"; ipv4 = "198.18.0.1"; netmask = "255.255.255.0";
    gateway = "198.18.0.254"; queues = 3; bridge = "br1"; rx_ring_size = 2048; },
  { name = "b"; type = "user-veth"; mac = "02:00:00:00:00:0b"; ipv4 = "198.18.0.2"; netmask = "255.255.255.0"; bridge = "br0"; }
);
bridges = ( { name = "br0"; }, { name = "br1"; } );
manager: { reclaim_timeout_ms = 300; };
)");
    auto params = fabric_params(config);
    ASSERT_TRUE(params) << params.error().message;
    EXPECT_EQ(params->max_queues, 8u);
    EXPECT_EQ(params->forward_lane_capacity, 512u);
    EXPECT_EQ(params->rx_lane_capacity, 2048u);
    EXPECT_EQ(params->flows.rules, 4096u);
    EXPECT_EQ(params->flows.listeners, 65535u); // the listener table's limit
    EXPECT_EQ(params->pool.mbufs, 2047u);
    EXPECT_EQ(params->pool.cache_size, 128u);
    EXPECT_EQ(params->l2_pool_mbufs, 4095u);
    EXPECT_EQ(params->low_watermark_percent, 20u);
    EXPECT_EQ(params->grace_timeout, std::chrono::milliseconds(300));
    ASSERT_EQ(params->ports.size(), 2u);
    const fabric::PortSpec& a = params->ports[0];
    EXPECT_STREQ(a.name, "a");
    EXPECT_EQ(a.kind, fabric::PortKind::user_veth);
    EXPECT_EQ(a.bridge, 2); // br1 is the second bridge
    EXPECT_EQ(params->ports[1].bridge, 1);
    EXPECT_EQ(a.nb_queues, 3);
    EXPECT_EQ(a.ipv4, htonl(0xc6120001u));
    EXPECT_EQ(a.netmask, htonl(0xffffff00u));
    EXPECT_EQ(a.gateway, htonl(0xc61200feu));
    EXPECT_EQ(a.mac[5], 0x0a);
    EXPECT_TRUE(std::equal(a.rss_key, a.rss_key + fabric::k_rss_key_bytes, fabric::k_default_rss_key.begin()));
}

TEST(FabricParams, NamesLongerThanTheRegistryKeepsAreRefused) {
    const auto config = parse(R"(
ports = ( { name = "a-rather-long-port-name"; type = "user-veth"; mac = "02:00:00:00:00:0a"; ipv4 = "198.18.0.1";
            netmask = "255.255.255.0"; } );
)");
    auto params = fabric_params(config);
    ASSERT_FALSE(params);
    EXPECT_EQ(params.error().code, EINVAL);
    EXPECT_EQ(params.error().message,
              "port 'a-rather-long-port-name': the fabric's registry keeps names of 1..15 characters");
}

TEST(RuntimeDir, IsEalsForRoot) {
    if (getuid() != 0) {
        GTEST_SKIP() << "EAL uses $XDG_RUNTIME_DIR for other users";
    }
    EXPECT_EQ(dpdk_runtime_dir("gazelle"), "/var/run/dpdk/gazelle");
    EXPECT_TRUE(check_file_prefix_free("gzt-no-such-prefix-" + std::to_string(getpid())));
}

} // namespace
} // namespace gazelle::mgr
