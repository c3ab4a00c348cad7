// SPDX-License-Identifier: BSD-3-Clause
#include "conf/manager_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "conf/key_info.h"
#include "tests/conf/conf_test_util.h"
#include "tests/support/test_support.h"

namespace gazelle::conf {
namespace {

using test::error_lines;
using test::fails_mentioning;
using test::fails_with;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Result<ManagerConfig> parse(const std::string& text) {
    return parse_manager_config(text, "mgr.conf");
}

ManagerConfig parse_ok(const std::string& text) {
    auto c = parse(text);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return c.ok() ? *c : ManagerConfig{};
}

// One valid port of each type; tests break one thing at a time.
std::string port(const std::string& body) {
    return "{ " + body + " }";
}
const std::string k_veth = "name = \"v0\"; type = \"user-veth\"; mac = \"02:00:00:00:00:10\"; ipv4 = \"10.0.0.1\"; "
                           "netmask = \"255.255.255.0\";";
const std::string k_tap = "name = \"t0\"; type = \"tap\"; iface = \"gztap0\"; mac = \"02:00:00:00:00:20\"; "
                          "ipv4 = \"10.0.1.1\"; netmask = \"255.255.255.0\";";
const std::string k_pci = "name = \"n0\"; type = \"pci\"; pci = \"0000:03:00.0\"; ipv4 = \"192.168.1.10\"; "
                          "netmask = \"255.255.255.0\"; gateway = \"192.168.1.1\";";

std::string ports(const std::vector<std::string>& bodies) {
    std::string out = "ports = (\n";
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        out += "    " + port(bodies[i]) + (i + 1 < bodies.size() ? ",\n" : "\n");
    }
    return out + ");\n";
}

TEST(ManagerConfig, DefaultIsTwoVethsOnOneBridge) {
    const ManagerConfig c = default_manager_config();
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].name, "veth0");
    EXPECT_EQ(c.ports[0].type, PortType::user_veth);
    EXPECT_EQ(to_string(c.ports[0].ipv4), "198.18.0.1");
    EXPECT_EQ(to_string(c.ports[0].netmask), "255.255.255.0");
    EXPECT_EQ(to_string(*c.ports[0].mac), "02:00:00:00:00:01");
    EXPECT_EQ(c.ports[0].queues, 4u);
    EXPECT_EQ(c.ports[0].bridge, "br0");
    EXPECT_EQ(c.ports[1].name, "veth1");
    EXPECT_EQ(to_string(c.ports[1].ipv4), "198.18.0.2");
    EXPECT_EQ(to_string(*c.ports[1].mac), "02:00:00:00:00:02");
    EXPECT_EQ(c.ports[1].queues, 2u);
    EXPECT_EQ(c.ports[1].bridge, "br0");
    ASSERT_EQ(c.bridges.size(), 1u);
    EXPECT_EQ(c.bridges[0].name, "br0");
    EXPECT_EQ(c.dpdk.file_prefix, "gazelle");
    EXPECT_EQ(c.dpdk.huge_dir, "/mnt/gazelle-huge");
    EXPECT_EQ(c.dpdk.app_lcores.size(), 63u);
    EXPECT_EQ(c.dpdk.app_lcores.front(), 1u);
    EXPECT_EQ(c.dpdk.app_cpus, (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(c.fabric.max_queues, 16u);
    EXPECT_EQ(c.fabric.ring_size, 1024u);
    EXPECT_EQ(c.manager.socket, "/run/gazelle/mgr.sock");
    EXPECT_EQ(c.manager.bus, "system");
    EXPECT_EQ(c.manager.log_level, LogLevel::info);
    EXPECT_EQ(total_queues(c), 6u);
    EXPECT_TRUE(c.warnings.empty());
}

TEST(ManagerConfig, EmptyFileAndDescribedDefaultBothGiveTheDefault) {
    EXPECT_EQ(parse_ok(""), default_manager_config());
    EXPECT_EQ(parse_ok(describe(default_manager_config())), default_manager_config());
}

TEST(ManagerConfig, AFullFileWithEveryPortType) {
    const ManagerConfig c = parse_ok(R"(
        dpdk: { file_prefix = "gz-test"; huge_dir = "/mnt/huge"; main_lcore = 0; app_lcores = "8-31";
                app_cpus = "2-3"; extra_args = ["--log-level=lib.eal:debug"]; socket_limit_mb = 2048; };
        fabric: { max_queues = 32; ring_size = 2048; mbuf_data_room = 9344; };
        ports = (
            { name = "a"; type = "user-veth"; mac = "02:00:00:00:00:0a"; ipv4 = "198.18.0.1"; netmask = "255.255.0.0";
              queues = 2; bridge = "sw"; mtu = 9000; rx_ring_size = 512; tx_ring_size = 4096; },
            { name = "b"; type = "user-veth"; mac = "02:00:00:00:00:0b"; ipv4 = "198.18.0.2"; netmask = "255.255.0.0";
              bridge = "sw"; },
            { name = "t"; type = "tap"; iface = "gztap0"; mac = "02:00:00:00:00:0c"; ipv4 = "10.9.0.1";
              netmask = "255.255.255.252"; queues = 4; },
            { name = "n"; type = "pci"; pci = "0000:03:00.0"; mac = ""; ipv4 = "192.168.1.10"; netmask = "255.255.255.0";
              gateway = "192.168.1.1"; queues = 8;
              rss_key = "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"; }
        );
        bridges = ( { name = "sw"; } );
        manager: { socket = "/run/gz/m.sock"; bus = "unix:path=/run/dbus/test"; max_apps = 8;
                   heartbeat_timeout_ms = 500; reclaim_timeout_ms = 100; log_level = "debug"; };
    )");
    EXPECT_EQ(c.dpdk.app_lcores.size(), 24u);
    EXPECT_EQ(c.dpdk.app_lcores.front(), 8u);
    EXPECT_EQ(c.dpdk.extra_args, std::vector<std::string>{"--log-level=lib.eal:debug"});
    EXPECT_EQ(c.fabric.max_queues, 32u);
    EXPECT_EQ(c.fabric.flow_table_size, 65536u); // left out: default
    ASSERT_EQ(c.ports.size(), 4u);
    EXPECT_EQ(c.ports[0].mtu, 9000u);
    EXPECT_EQ(c.ports[1].queues, 1u); // per-port default
    EXPECT_EQ(c.ports[2].type, PortType::tap);
    EXPECT_EQ(c.ports[2].iface, "gztap0");
    EXPECT_EQ(c.ports[3].type, PortType::pci);
    EXPECT_FALSE(c.ports[3].mac);
    EXPECT_EQ(to_string(*c.ports[3].gateway), "192.168.1.1");
    ASSERT_EQ(c.ports[3].rss_key.size(), 40u);
    EXPECT_EQ(c.ports[3].rss_key[0], 0x6du);
    EXPECT_EQ(total_queues(c), 15u);
    EXPECT_EQ(c.manager.max_apps, 8u);
    EXPECT_EQ(c.manager.log_level, LogLevel::debug);
    EXPECT_TRUE(c.warnings.empty());
    // And back.
    auto again = parse_manager_config(describe(c), "described");
    ASSERT_TRUE(again.ok()) << again.error().message << "\n" << describe(c);
    EXPECT_EQ(*again, c);
}

TEST(ManagerConfig, PortsReplaceTheDefaultsAndTheDefaultBridge) {
    const ManagerConfig c = parse_ok(ports({k_veth}));
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].name, "v0");
    EXPECT_TRUE(c.bridges.empty());
    // Sections left out keep their defaults.
    EXPECT_EQ(c.fabric, default_manager_config().fabric);
}

TEST(ManagerConfig, UnknownKeysGetSuggestionsPerSection) {
    EXPECT_TRUE(fails_with(parse("fabric: {\n  ring_sise = 1024;\n};"),
                           "mgr.conf:2: fabric.ring_sise: unknown key (did you mean 'ring_size'?)"));
    EXPECT_TRUE(fails_with(parse("fabrik: { };"), "mgr.conf:1: fabrik: unknown key (did you mean 'fabric'?)"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " queue = 2;"})),
                           "mgr.conf:2: ports[0].queue: unknown key (did you mean 'queues'?)"));
    EXPECT_TRUE(fails_with(parse("manager: { sockt = \"/x\"; };"),
                           "mgr.conf:1: manager.sockt: unknown key (did you mean 'socket'?)"));
}

TEST(ManagerConfig, SectionsAndListsMustHaveTheirShape) {
    EXPECT_TRUE(
        fails_with(parse("dpdk = 5;"), "mgr.conf:1: dpdk: wrong type: expected a group { ... }, got an integer"));
    EXPECT_TRUE(
        fails_with(parse("ports = { name = \"x\"; };"),
                   "mgr.conf:1: ports: wrong type: expected a list of groups ( { ... }, { ... } ), got a group"));
    EXPECT_TRUE(fails_with(parse("ports = ( 1 );"),
                           "mgr.conf:1: ports[0]: wrong type: expected a group { ... }, got an "
                           "integer"));
    EXPECT_TRUE(fails_with(parse("ports = ();"), "mgr.conf:1: ports: at least one port is required"));
}

TEST(ManagerConfig, MissingRequiredKeysAreNamedAtTheirGroup) {
    auto c = parse("ports = (\n  { name = \"x\"; type = \"user-veth\"; mac = \"02:00:00:00:00:01\"; },\n"
                   "  { type = \"tap\"; ipv4 = \"10.0.0.1\"; netmask = \"255.0.0.0\"; }\n);");
    EXPECT_THAT(error_lines(c), ElementsAre("mgr.conf:2: ports[0].ipv4: missing required key",
                                            "mgr.conf:2: ports[0].netmask: missing required key",
                                            "mgr.conf:3: ports[1].name: missing required key",
                                            "mgr.conf:3: ports[1].mac: missing required key (only pci ports may "
                                            "leave it out)",
                                            "mgr.conf:3: ports[1].iface: missing required key for a tap port"));
    EXPECT_TRUE(
        fails_with(parse("ports = (\n{ name = \"n\"; type = \"pci\"; ipv4 = \"1.2.3.4\"; netmask = \"255.0.0.0\"; "
                         "});"),
                   "mgr.conf:2: ports[0].pci: missing required key for a pci port"));
    EXPECT_TRUE(fails_with(parse("bridges = (\n{ });"), "mgr.conf:2: bridges[0].name: missing required key"));
}

TEST(ManagerConfig, OutOfRangeStatesTheRange) {
    EXPECT_TRUE(fails_with(parse("fabric: { max_queues = 65; };"),
                           "mgr.conf:1: fabric.max_queues: out of range: 65 is not in 1..64"));
    EXPECT_TRUE(fails_with(parse("fabric: { ring_size = 1000; };"),
                           "mgr.conf:1: fabric.ring_size: 1000 is not a power of two (allowed: 64..16384, power of "
                           "two)"));
    EXPECT_TRUE(fails_with(parse("fabric: { ring_size = 32; };"),
                           "mgr.conf:1: fabric.ring_size: out of range: 32 is not in 64..16384, power of two"));
    EXPECT_TRUE(fails_with(parse("dpdk: { main_lcore = 128; };"),
                           "mgr.conf:1: dpdk.main_lcore: out of range: 128 is not in 0..127"));
    EXPECT_TRUE(fails_with(parse("dpdk: { app_lcores = \"1-200\"; };"),
                           "mgr.conf:1: dpdk.app_lcores: invalid list \"1-200\": id 200 is out of range (ids are "
                           "0..127)"));
    EXPECT_TRUE(fails_with(parse("dpdk: { app_cpus = \"\"; };"), "mgr.conf:1: dpdk.app_cpus: must not be empty"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " queues = 65;"})),
                           "mgr.conf:2: ports[0].queues: out of range: 65 is not in 1..64"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " mtu = 67;"})),
                           "mgr.conf:2: ports[0].mtu: out of range: 67 is not in "
                           "68..9000"));
    EXPECT_TRUE(
        fails_with(parse("manager: { heartbeat_timeout_ms = 99999999999; };"),
                   "mgr.conf:1: manager.heartbeat_timeout_ms: out of range: 99999999999 is not in 100..600000"));
}

TEST(ManagerConfig, TapPortsHaveAtMostFourQueues) {
    EXPECT_TRUE(parse(ports({k_tap + " queues = 4;"})).ok());
    EXPECT_TRUE(fails_with(parse(ports({k_tap + " queues = 5;"})),
                           "mgr.conf:2: ports[0].queues: out of range: 5 is not in 1..4 for a tap port (DPDK 22.11's "
                           "tap PMD overflows its fd array above 4 queues)"));
}

TEST(ManagerConfig, QueuesMustFitTheFabricAndTheLcores) {
    EXPECT_TRUE(fails_with(
        parse("fabric: {\n max_queues = 4;\n};\n" + ports({k_veth + " queues = 3;", k_pci + " queues = 2;"})),
        "mgr.conf:2: fabric.max_queues: the ports have 5 queues together, more than "
        "fabric.max_queues (4)"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " queues = 20;"})),
                           "mgr.conf:1: ports: the ports have 20 queues together, more than fabric.max_queues (16)"));
    EXPECT_TRUE(
        fails_with(parse("dpdk: {\n app_lcores = \"1-3\";\n};"),
                   "mgr.conf:2: dpdk.app_lcores: 3 lcore ids for 6 queues; every queue's stack thread needs its "
                   "own lcore id"));
    EXPECT_TRUE(fails_with(parse("dpdk: { main_lcore = 5; };"),
                           "mgr.conf:1: dpdk.main_lcore: 5 is also in dpdk.app_lcores; the manager's lcore must not be "
                           "handed to an application"));
    EXPECT_TRUE(parse("dpdk: { main_lcore = 64; };").ok());
}

TEST(ManagerConfig, PortsMustNotShareNameMacOrAddress) {
    const std::string other = "type = \"user-veth\"; netmask = \"255.255.255.0\";";
    auto c = parse(ports({k_veth, "name = \"v0\"; mac = \"02:00:00:00:00:10\"; ipv4 = \"10.0.0.1\"; " + other}));
    EXPECT_THAT(error_lines(c),
                ElementsAre("mgr.conf:3: ports[1].name: name 'v0' is already used by port 'v0' (ports[0])",
                            "mgr.conf:3: ports[1].mac: MAC 02:00:00:00:00:10 is already used by port 'v0' (ports[0])",
                            "mgr.conf:3: ports[1].ipv4: address 10.0.0.1 is already used by port 'v0' (ports[0])"));
    EXPECT_TRUE(fails_mentioning(parse(ports({k_tap, "name = \"t1\"; type = \"tap\"; iface = \"gztap0\"; mac = "
                                                     "\"02:00:00:00:00:21\"; ipv4 = \"10.0.1.2\"; netmask = "
                                                     "\"255.255.255.0\";"})),
                                 {"ports[1].iface: interface 'gztap0' is already used by port 't0'"}));
    EXPECT_TRUE(fails_mentioning(parse(ports({k_pci, "name = \"n1\"; type = \"pci\"; pci = \"0000:03:00.0\"; ipv4 = "
                                                     "\"192.168.2.1\"; netmask = \"255.255.255.0\";"})),
                                 {"ports[1].pci: PCI address 0000:03:00.0 is already used by port 'n0'"}));
}

TEST(ManagerConfig, AddressesAreCheckedStrictlyAndAgainstTheSubnet) {
    EXPECT_TRUE(fails_with(parse(ports({"name = \"x\"; type = \"user-veth\"; mac = \"02:00:00:00:00:01\"; ipv4 = "
                                        "\"10.0.0.256\"; netmask = \"255.255.255.0\";"})),
                           "mgr.conf:2: ports[0].ipv4: '10.0.0.256' is not a valid IPv4 address (expected a.b.c.d)"));
    EXPECT_TRUE(fails_mentioning(parse(ports({"name = \"x\"; type = \"user-veth\"; mac = \"02:00:00:00:00:01\"; ipv4 = "
                                              "\"10.0.0.1\"; netmask = \"255.255.0.255\";"})),
                                 {"ports[0].netmask: '255.255.0.255' is not a contiguous netmask"}));
    EXPECT_TRUE(fails_mentioning(parse(ports({"name = \"x\"; type = \"user-veth\"; mac = \"02:00:00:00:00:0\"; ipv4 = "
                                              "\"10.0.0.1\"; netmask = \"255.255.255.0\";"})),
                                 {"ports[0].mac: '02:00:00:00:00:0' is not a valid MAC address"}));
    EXPECT_TRUE(fails_mentioning(parse(ports({"name = \"x\"; type = \"user-veth\"; mac = \"ff:ff:ff:ff:ff:ff\"; ipv4 = "
                                              "\"10.0.0.1\"; netmask = \"255.255.255.0\";"})),
                                 {"ports[0].mac: 'ff:ff:ff:ff:ff:ff' is not a unicast MAC address"}));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " gateway = \"10.0.1.1\";"})),
                           "mgr.conf:2: ports[0].gateway: 10.0.1.1 is not in the port's subnet 10.0.0.0/24"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " gateway = \"10.0.0.1\";"})),
                           "mgr.conf:2: ports[0].gateway: is the port's own address"));
    EXPECT_TRUE(fails_with(parse(ports({"name = \"x\"; type = \"user-veth\"; mac = \"02:00:00:00:00:01\"; ipv4 = "
                                        "\"10.0.0.255\"; netmask = \"255.255.255.0\";"})),
                           "mgr.conf:2: ports[0].ipv4: 10.0.0.255 is the network or broadcast address of its subnet "
                           "/24"));
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " mac = \"\";"})),
                           "mgr.conf:2: mac: duplicate key: it is already set in this group (libconfig: duplicate "
                           "setting name)"));
}

TEST(ManagerConfig, TypeSpecificKeysBelongToTheirType) {
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " iface = \"x\";"})),
                           "mgr.conf:2: ports[0].iface: only tap ports have this key, this port is user-veth"));
    EXPECT_TRUE(fails_with(parse(ports({k_tap + " bridge = \"br0\";"})),
                           "mgr.conf:2: ports[0].bridge: only user-veth ports have this key, this port is tap"));
    EXPECT_TRUE(fails_with(parse(ports({k_tap + " pci = \"0000:01:00.0\";"})),
                           "mgr.conf:2: ports[0].pci: only pci ports have this key, this port is tap"));
    EXPECT_TRUE(fails_with(parse(ports({"name = \"x\"; type = \"tap\"; iface = \"sixteen-chars-xx\"; mac = "
                                        "\"02:00:00:00:00:01\"; ipv4 = \"10.0.0.1\"; netmask = \"255.255.255.0\";"})),
                           "mgr.conf:2: ports[0].iface: \"sixteen-chars-xx\" is not a valid interface name (1..15 "
                           "letters, digits, '_', '-' or '.', not starting with '-' or '.')"));
    EXPECT_TRUE(fails_mentioning(parse(ports({"name = \"n\"; type = \"pci\"; pci = \"03:00\"; ipv4 = \"10.0.0.1\"; "
                                              "netmask = \"255.255.255.0\";"})),
                                 {"ports[0].pci: \"03:00\" is not a PCI address"}));
    EXPECT_TRUE(parse(ports({"name = \"n\"; type = \"pci\"; pci = \"03:00.1\"; ipv4 = \"10.0.0.1\"; netmask = "
                             "\"255.255.255.0\";"}))
                    .ok());
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " rss_key = \"abcd\";"})),
                           "mgr.conf:2: ports[0].rss_key: expected 80 hex digits (40 bytes) or \"\""));
    EXPECT_TRUE(fails_with(parse(ports({"name = \"x\"; type = \"veth\"; mac = \"02:00:00:00:00:01\"; ipv4 = "
                                        "\"10.0.0.1\"; netmask = \"255.255.255.0\";"})),
                           "mgr.conf:2: ports[0].type: invalid value \"veth\" (expected \"user-veth\" or \"tap\" or "
                           "\"pci\")"));
}

TEST(ManagerConfig, BridgesAreReferencedByName) {
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " bridge = \"br9\";"}) + "bridges = ( { name = \"br0\"; } );"),
                           "mgr.conf:2: ports[0].bridge: unknown bridge 'br9' (not in bridges)"));
    const ManagerConfig c = parse_ok(ports({k_veth}) + "bridges = (\n { name = \"lonely\"; }\n);");
    EXPECT_EQ(c.warnings,
              (std::vector<Diagnostic>{{"mgr.conf", 5, "bridges[0].name", "no port is plugged into bridge 'lonely'"}}));
    EXPECT_TRUE(
        fails_with(parse(ports({k_veth + " bridge = \"a\";"}) + "bridges = (\n{ name = \"a\"; },\n{ name = \"a\"; });"),
                   "mgr.conf:6: bridges[1].name: name 'a' is already used by bridges[0]"));
    // A bridges list without ports replaces the default bridge the default ports use.
    EXPECT_THAT(error_lines(parse("\nbridges = ( { name = \"br1\"; } );")),
                ElementsAre("mgr.conf:2: bridges: the default port 'veth0' is plugged into bridge 'br0', which this "
                            "list does not define; keep it or give ports too",
                            HasSubstr("the default port 'veth1'")));
    EXPECT_TRUE(fails_mentioning(parse("bridges = ( { name = \"bad name\"; } );"),
                                 {"bridges[0].name: \"bad name\" is not a valid name"}));
}

TEST(ManagerConfig, MbufSizesMustAgreeWithPortsAndPools) {
    EXPECT_TRUE(fails_with(parse(ports({k_veth + " mtu = 9000;"})),
                           "mgr.conf:2: ports[0].mtu: 9000 needs mbufs with 9146 bytes of data room (mtu + 18 + 128 of "
                           "headroom), fabric.mbuf_data_room is 2176"));
    auto small_room = parse("fabric: {\n mbuf_data_room = 1024;\n};");
    EXPECT_THAT(error_lines(small_room),
                ElementsAre("mgr.conf:2: fabric.mbuf_data_room: 1024 is too small: port 'veth0' with mtu 1500 needs "
                            "mbufs with 1646 bytes of data room (mtu + 18 + 128 of headroom)",
                            HasSubstr("port 'veth1'")));
    EXPECT_TRUE(
        fails_with(parse("fabric: { mbuf_cache_size = 512; mbufs_per_queue = 700; };"),
                   "mgr.conf:1: fabric.mbuf_cache_size: 512 is too large for fabric.mbufs_per_queue = 700 (DPDK "
                   "needs 1.5 x the cache size to fit in the pool)"));
    EXPECT_TRUE(parse("fabric: { mbuf_cache_size = 512; mbufs_per_queue = 768; l2_pool_mbufs = 768; };").ok());
}

TEST(ManagerConfig, EalArgumentsTheManagerDerivesAreRejected) {
    auto c = parse("dpdk: { extra_args = [\"--file-prefix=x\", \"-l\", \"0-3\", \"--in-memory\", \"--no-huge\", "
                   "\"--vdev=net_tap0\", \"--log-level 8\"]; };");
    EXPECT_THAT(error_lines(c),
                ElementsAre("mgr.conf:1: dpdk.extra_args: '--file-prefix=x' is set by gazelle-mgr itself: set "
                            "dpdk.file_prefix",
                            "mgr.conf:1: dpdk.extra_args: '-l' is set by gazelle-mgr itself: set dpdk.main_lcore and "
                            "dpdk.app_lcores",
                            HasSubstr("'--in-memory' is set by gazelle-mgr itself: applications attach as DPDK "
                                      "secondaries"),
                            HasSubstr("'--no-huge' is set by gazelle-mgr itself: DPDK secondaries cannot attach to a "
                                      "primary without hugepages"),
                            HasSubstr("'--vdev=net_tap0' is set by gazelle-mgr itself: define the port in ports"),
                            HasSubstr("'--log-level 8' contains a space")));
    // Memory is dpdk.memory_mb's.
    EXPECT_THAT(error_lines(parse("dpdk: { extra_args = [\"--legacy-mem\", \"-m\", \"64\", \"--socket-mem=64\"]; };")),
                ElementsAre(HasSubstr("'--legacy-mem' is set by gazelle-mgr itself: set dpdk.memory_mb"),
                            HasSubstr("'-m' is set by gazelle-mgr itself: set dpdk.memory_mb"),
                            HasSubstr("'--socket-mem=64' is set by gazelle-mgr itself: set dpdk.memory_mb")));
    EXPECT_EQ(
        parse_ok("dpdk: { extra_args = [\"--log-level\", \"lib.eal:debug\", \"--iova-mode=va\"]; };").dpdk.extra_args,
        (std::vector<std::string>{"--log-level", "lib.eal:debug", "--iova-mode=va"}));
}

// EAL refuses --socket-limit with --legacy-mem: the limit needs dynamic memory.
TEST(ManagerConfig, SocketLimitNeedsDynamicMemory) {
    EXPECT_THAT(error_lines(parse("dpdk: { socket_limit_mb = 512; memory_mb = 1024; };")),
                ElementsAre(HasSubstr("dpdk.socket_limit_mb: 512 is below dpdk.memory_mb (1024)")));
    EXPECT_THAT(error_lines(parse("dpdk: { socket_limit_mb = 256; };")),
                ElementsAre(HasSubstr("dpdk.socket_limit_mb: 256 is below dpdk.memory_mb (512)")));
    EXPECT_EQ(parse_ok("dpdk: { socket_limit_mb = 512; };").dpdk.socket_limit_mb, 512u);
    EXPECT_EQ(parse_ok("dpdk: { socket_limit_mb = 64; memory_mb = 0; };").dpdk.socket_limit_mb, 64u);
    EXPECT_EQ(parse_ok("dpdk: { memory_mb = 1024; };").dpdk.memory_mb, 1024u);
    EXPECT_EQ(parse_ok("").dpdk.memory_mb, 512u);
}

TEST(ManagerConfig, DaemonSettingsAreValidated) {
    EXPECT_TRUE(fails_with(parse("manager: { socket = \"mgr.sock\"; };"),
                           "mgr.conf:1: manager.socket: \"mgr.sock\" is not an absolute file path"));
    EXPECT_TRUE(fails_with(parse("manager: { socket = \"/" + std::string(120, 's') + "\"; };"),
                           "mgr.conf:1: manager.socket: longer than a unix socket address allows (107 bytes)"));
    EXPECT_TRUE(fails_mentioning(parse("manager: { bus = \"user\"; };"), {"manager.bus: invalid value \"user\""}));
    EXPECT_EQ(parse_ok("manager: { bus = \"session\"; };").manager.bus, "session");
    EXPECT_EQ(parse_ok("manager: { bus = \"unix:abstract=gz\"; };").manager.bus, "unix:abstract=gz");
    EXPECT_TRUE(fails_mentioning(parse("dpdk: { file_prefix = \"a/b\"; };"),
                                 {"dpdk.file_prefix: \"a/b\" is not a valid prefix"}));
    EXPECT_TRUE(fails_with(parse("dpdk: { huge_dir = \"huge\"; };"),
                           "mgr.conf:1: dpdk.huge_dir: \"huge\" is not an absolute path"));
}

TEST(ManagerConfig, AtMostEightPorts) {
    std::vector<std::string> bodies;
    for (int i = 0; i < 9; ++i) {
        const std::string n = std::to_string(i);
        bodies.push_back("name = \"p" + n + "\"; type = \"user-veth\"; mac = \"02:00:00:00:01:0" + n +
                         "\"; ipv4 = \"10.0.0." + std::to_string(i + 1) + "\"; netmask = \"255.255.255.0\";");
    }
    EXPECT_TRUE(fails_with(parse(ports(bodies)), "mgr.conf:1: ports: 9 ports, at most 8"));
    bodies.pop_back();
    EXPECT_TRUE(parse(ports(bodies)).ok());
}

TEST(ManagerConfig, EveryErrorOfAPassIsReported) {
    auto c = parse("dpdk: { main_lcore = 200; };\n"
                   "fabric: { ring_size = 3; };\n" +
                   ports({k_veth + " gateway = \"1.1.1.1\";", "name = \"q\"; type = \"tap\";"}) +
                   "manager: { log_level = \"loud\"; };\n");
    EXPECT_GE(error_lines(c).size(), 7u) << c.error().message;
    EXPECT_TRUE(fails_mentioning(c, {"mgr.conf:1: dpdk.main_lcore"}));
    EXPECT_TRUE(fails_mentioning(c, {"mgr.conf:2: fabric.ring_size"}));
    EXPECT_TRUE(fails_mentioning(c, {"ports[0].gateway"}));
    EXPECT_TRUE(fails_mentioning(c, {"ports[1].ipv4: missing required key"}));
    EXPECT_TRUE(fails_mentioning(c, {"ports[1].iface: missing required key for a tap port"}));
    EXPECT_TRUE(fails_mentioning(c, {"manager.log_level: invalid value \"loud\""}));
}

// Cross-section checks do not depend on which section comes first.
TEST(ManagerConfig, SectionOrderDoesNotMatter) {
    std::vector<std::string> sections = {"fabric: { mbuf_data_room = 1800; max_queues = 2; };",
                                         ports({k_veth + " mtu = 1600; queues = 2; bridge = \"b\";"}),
                                         "bridges = ( { name = \"b\"; } );", "dpdk: { app_lcores = \"1\"; };"};
    std::sort(sections.begin(), sections.end());
    std::optional<std::multiset<std::string>> expected;
    do {
        std::string text;
        for (const auto& s : sections) {
            text += s + "\n";
        }
        std::multiset<std::string> findings;
        for (const auto& line : error_lines(parse(text))) {
            findings.insert(line.substr(line.find(": ") + 2));
        }
        if (!expected) {
            expected = findings;
        }
        EXPECT_EQ(findings, *expected) << text;
    } while (std::next_permutation(sections.begin(), sections.end()));
    // mtu 1600 + 146 = 1746 fits in 1800; two queues need two lcores, only one is given.
    EXPECT_EQ(*expected, (std::multiset<std::string>{
                             "dpdk.app_lcores: 1 lcore ids for 2 queues; every queue's stack thread needs its own "
                             "lcore id"}));
}

TEST(ManagerKeys, SectionKeysLoadTheirExampleAndDescribeItBack) {
    for (const auto& key : config_keys(ConfigFile::manager)) {
        SCOPED_TRACE(key.name);
        EXPECT_EQ(key.disposition, Disposition::honoured);
        EXPECT_FALSE(key.doc.empty());
        EXPECT_FALSE(key.example.empty());
        const auto dot = key.name.find('.');
        ASSERT_NE(dot, std::string::npos);
        const std::string section = key.name.substr(0, dot);
        const std::string name = key.name.substr(dot + 1);
        if (section == "ports[]" || section == "bridges[]") {
            continue; // need a whole port; covered above
        }
        const std::string text = section + ": { " + name + " = " + key.example + "; };";
        auto c = parse(text);
        ASSERT_TRUE(c.ok()) << c.error().message;
        EXPECT_THAT(describe(*c), HasSubstr("    " + name + " = " + key.example + ";\n"));
    }
}

TEST(ManagerConfigFile, LoadsFromAFileAndKeepsErrno) {
    gazelle::test::TempDir dir;
    const std::string path = dir.write("gazelle-mgr.conf", "fabric: {\n  max_queues = 0;\n};\n");
    EXPECT_TRUE(fails_with(load_manager_config(path), path + ":2: fabric.max_queues: out of range: 0 is not in 1..64"));
    auto missing = load_manager_config(dir.path() + "/nope.conf");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ENOENT);
}

} // namespace
} // namespace gazelle::conf
