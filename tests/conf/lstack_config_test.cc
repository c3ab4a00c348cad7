// SPDX-License-Identifier: BSD-3-Clause
#include "conf/lstack_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
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

Result<LstackConfig> parse(const std::string& text) {
    return parse_lstack_config(text, "lstack.conf");
}

LstackConfig parse_ok(const std::string& text) {
    auto c = parse(text);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return c.ok() ? *c : LstackConfig{};
}

std::vector<std::string> warning_lines(const LstackConfig& c) {
    std::vector<std::string> out;
    for (const auto& w : c.warnings) {
        out.push_back(to_string(w));
    }
    return out;
}

TEST(LstackConfig, EmptyFileGivesTheDefaults) {
    const LstackConfig c = parse_ok("");
    EXPECT_EQ(c, LstackConfig{});
    EXPECT_EQ(c.stack_num, 1u);
    EXPECT_EQ(c.tcp_conn_count, 1500u);
    EXPECT_EQ(c.nic_read_number, 32u);
    EXPECT_TRUE(c.udp_enable);
    EXPECT_EQ(c.stack_thread_mode, StackThreadMode::run_to_wakeup);
    EXPECT_EQ(c.mgr_socket, "/run/gazelle/mgr.sock");
    EXPECT_EQ(c.attach_failure, AttachFailure::kernel);
    EXPECT_FALSE(c.host_addr);
}

TEST(LstackConfig, HonouredKeysAreStored) {
    const LstackConfig c = parse_ok(R"(
        host_addr = "198.18.0.1";
        mask_addr = "255.255.255.0";
        gateway_addr = "198.18.0.254";
        devices = "02:00:00:00:00:01";
        num_cpus = "2-3";
        dpdk_args = ["--log-level", "lib.eal:debug", "--syslog=daemon", "-v"];
        tcp_conn_count = 20000;
        mbuf_count_per_conn = 34;
        nic_read_number = 64;
        rpc_number = 8;
        udp_enable = 0;
        stack_interrupt = 1;
        idle_spin_us = 200;
        unix_prefix = "a_";
        attach_failure = "error";
        log_level = "debug";
    )");
    EXPECT_EQ(c.host_addr, Ipv4{0xc6120001u});
    EXPECT_EQ(c.mask_addr, Ipv4{0xffffff00u});
    EXPECT_EQ(c.gateway_addr, Ipv4{0xc61200feu});
    EXPECT_EQ(c.devices, (MacAddr{{2, 0, 0, 0, 0, 1}}));
    EXPECT_EQ(c.num_cpus, (std::vector<unsigned>{2, 3}));
    EXPECT_EQ(c.stack_num, 2u);
    EXPECT_EQ(c.dpdk_args, (std::vector<std::string>{"--log-level", "lib.eal:debug", "--syslog=daemon", "-v"}));
    EXPECT_EQ(c.tcp_conn_count, 20000u);
    EXPECT_EQ(c.mbuf_count_per_conn, 34u);
    EXPECT_EQ(c.nic_read_number, 64u);
    EXPECT_EQ(c.rpc_number, 8u);
    EXPECT_FALSE(c.udp_enable);
    EXPECT_TRUE(c.stack_interrupt);
    EXPECT_EQ(c.idle_spin_us, 200u);
    EXPECT_EQ(effective_mgr_socket(c), "/run/gazelle/a_mgr.sock");
    EXPECT_EQ(c.attach_failure, AttachFailure::error);
    EXPECT_EQ(c.log_level, LogLevel::debug);
    EXPECT_TRUE(c.warnings.empty());
}

// The example of the task: Gazelle's documentation says nic_read_num, the code reads nic_read_number.
TEST(LstackConfig, MisspelledKeyNamesFileLineKeyAndSuggestion) {
    auto c = parse("stack_num = 1;\nudp_enable = 1;\nnic_read_num = 32;\n");
    EXPECT_EQ(error_lines(c),
              std::vector<std::string>{"lstack.conf:3: nic_read_num: unknown key (did you mean 'nic_read_number'?)"});
    // The typo in the table of Gazelle's user guide.
    EXPECT_TRUE(
        fails_with(parse("kni_swith = 0"), "lstack.conf:1: kni_swith: unknown key (did you mean 'kni_switch'?)"));
    EXPECT_TRUE(fails_with(parse("frobnicate = 1"), "lstack.conf:1: frobnicate: unknown key"));
    // Removed keys are not suggested.
    EXPECT_TRUE(fails_with(parse("send_ring_siz = 1"), "lstack.conf:1: send_ring_siz: unknown key"));
}

TEST(LstackConfig, BadAddressNamesFileLineKey) {
    EXPECT_TRUE(fails_with(parse("\nhost_addr = \"192.168.1\";"),
                           "lstack.conf:2: host_addr: '192.168.1' is not a valid IPv4 address (expected a.b.c.d)"));
    EXPECT_TRUE(
        fails_with(parse("gateway_addr = \"192.168.01.1\";"),
                   "lstack.conf:1: gateway_addr: '192.168.01.1' is not a valid IPv4 address (expected a.b.c.d)"));
    EXPECT_TRUE(fails_with(parse("mask_addr = \"255.0.255.0\";"),
                           "lstack.conf:1: mask_addr: '255.0.255.0' is not a contiguous netmask (its one bits must "
                           "come first)"));
    EXPECT_TRUE(fails_with(parse("devices = \"aa:bb:cc:dd:ee\";"),
                           "lstack.conf:1: devices: 'aa:bb:cc:dd:ee' is not a valid MAC address (expected six hex "
                           "pairs like 02:00:00:00:00:01)"));
    EXPECT_TRUE(fails_with(parse("devices = \"01:00:5e:00:00:01\";"),
                           "lstack.conf:1: devices: '01:00:5e:00:00:01' is not a unicast MAC address, so no port can "
                           "have it"));
}

TEST(LstackConfig, EmptyAddressMeansUnset) {
    const LstackConfig c = parse_ok("host_addr = \"\"; mask_addr = \"\"; gateway_addr = \"\"; devices = \"\";");
    EXPECT_FALSE(c.host_addr);
    EXPECT_FALSE(c.mask_addr);
    EXPECT_FALSE(c.gateway_addr);
    EXPECT_FALSE(c.devices);
}

TEST(LstackConfig, OutOfRangeStatesTheRange) {
    EXPECT_TRUE(fails_with(parse("nic_read_number = 128;"),
                           "lstack.conf:1: nic_read_number: out of range: 128 is not in 1..64"));
    EXPECT_TRUE(fails_with(parse("stack_num = 65;"), "lstack.conf:1: stack_num: out of range: 65 is not in 0..64"));
    EXPECT_TRUE(fails_with(parse("tcp_conn_count = -5;"),
                           "lstack.conf:1: tcp_conn_count: out of range: -5 is not in 1..20000"));
    EXPECT_TRUE(fails_with(parse("udp_enable = 2;"), "lstack.conf:1: udp_enable: out of range: 2 is not 0 or 1"));
}

TEST(LstackConfig, WrongTypeSaysWhatWasExpected) {
    EXPECT_TRUE(fails_with(parse("tcp_conn_count = \"1500\";"),
                           "lstack.conf:1: tcp_conn_count: wrong type: expected an integer, got a string"));
    EXPECT_TRUE(
        fails_with(parse("host_addr = 1;"), "lstack.conf:1: host_addr: wrong type: expected a string, got an integer"));
    EXPECT_TRUE(fails_with(parse("dpdk_args = \"-v\";"),
                           "lstack.conf:1: dpdk_args: wrong type: expected a list of strings like [\"a\", \"b\"], got "
                           "a string"));
    EXPECT_TRUE(fails_with(parse("dpdk_args = [1, 2];"),
                           "lstack.conf:1: dpdk_args: wrong type: expected a list of strings, entry 0 is an integer"));
    EXPECT_TRUE(fails_with(parse("udp_enable = \"yes\";"),
                           "lstack.conf:1: udp_enable: wrong type: expected 0 or 1, got a string"));
    EXPECT_TRUE(fails_with(parse("host_addr: { a = 1; };"),
                           "lstack.conf:1: host_addr: wrong type: expected a string, got a group"));
    EXPECT_TRUE(fails_with(parse("stack_num = 1.0;"),
                           "lstack.conf:1: stack_num: wrong type: expected an integer, got a float"));
}

TEST(LstackConfig, FlagsAcceptLibconfigBooleans) {
    const LstackConfig c = parse_ok("udp_enable = false; low_power_mode = true; use_ltran = false;");
    EXPECT_FALSE(c.udp_enable);
    EXPECT_TRUE(c.low_power_mode);
}

TEST(LstackConfig, EnumeratedStringsListTheirValues) {
    EXPECT_TRUE(fails_with(parse("stack_thread_mode = \"rtc\";"),
                           "lstack.conf:1: stack_thread_mode: invalid value \"rtc\" (expected \"run-to-wakeup\" or "
                           "\"run-to-completion\")"));
    EXPECT_TRUE(
        fails_mentioning(parse("log_level = \"verbose\";"), {"log_level: invalid value \"verbose\"", "\"debug\""}));
    EXPECT_TRUE(fails_mentioning(parse("attach_failure = \"ignore\";"), {"attach_failure", "\"kernel\" or \"error\""}));
}

TEST(LstackConfig, EveryErrorOfAPassIsReportedSortedByLine) {
    auto c = parse("nic_read_number = 0;\n"
                   "host_addr = \"1.2.3\";\n"
                   "use_ltran = 1;\n"
                   "nic_read_num = 4;\n"
                   "stack_num = \"x\";\n");
    EXPECT_THAT(error_lines(c),
                ElementsAre("lstack.conf:1: nic_read_number: out of range: 0 is not in 1..64",
                            "lstack.conf:2: host_addr: '1.2.3' is not a valid IPv4 address (expected a.b.c.d)",
                            "lstack.conf:3: use_ltran: ltran does not exist here: the decentralized fabric replaces "
                            "it; remove the key or set 0",
                            "lstack.conf:4: nic_read_num: unknown key (did you mean 'nic_read_number'?)",
                            "lstack.conf:5: stack_num: wrong type: expected an integer, got a string"));
    EXPECT_EQ(c.error().code, EINVAL);
}

// --- cross-field ---------------------------------------------------------------------------

TEST(LstackConfig, StackNumFollowsNumCpusOrMustAgreeWithIt) {
    EXPECT_EQ(parse_ok("num_cpus = \"2,22\";").stack_num, 2u);
    EXPECT_EQ(parse_ok("num_cpus = \"2,22\"; stack_num = 2;").stack_num, 2u);
    EXPECT_EQ(parse_ok("stack_num = 3;").stack_num, 3u);
    // 0 was Gazelle's default ("not the single NUMA-bound stack"): here it means "as num_cpus says".
    EXPECT_EQ(parse_ok("stack_num = 0;").stack_num, 1u);
    EXPECT_EQ(parse_ok("stack_num = 0; num_cpus = \"2,22\";").stack_num, 2u);
    EXPECT_TRUE(fails_with(parse("stack_num = 3;\nnum_cpus = \"2,22\";"),
                           "lstack.conf:1: stack_num: 3 stack threads, but num_cpus lists 2 CPUs (one per stack "
                           "thread); make them agree or drop one"));
    EXPECT_TRUE(fails_mentioning(parse("num_cpus = \"0-64\";"), {"num_cpus: 65 CPUs listed", "at most 64"}));
    EXPECT_TRUE(
        fails_mentioning(parse("num_cpus = \"2,2\";"), {"num_cpus: invalid CPU list \"2,2\": id 2 is listed twice"}));
}

TEST(LstackConfig, GatewayMustBeInTheSubnet) {
    EXPECT_TRUE(fails_with(parse("host_addr = \"192.168.1.10\";\nmask_addr = \"255.255.255.0\";\n"
                                 "gateway_addr = \"192.168.2.1\";"),
                           "lstack.conf:3: gateway_addr: 192.168.2.1 is not in the subnet of host_addr "
                           "192.168.1.10/24"));
    EXPECT_TRUE(fails_with(parse("host_addr = \"192.168.1.10\"; mask_addr = \"255.255.255.0\"; "
                                 "gateway_addr = \"192.168.1.10\";"),
                           "lstack.conf:1: gateway_addr: is host_addr itself"));
    EXPECT_TRUE(fails_with(parse("host_addr = \"192.168.1.0\"; mask_addr = \"255.255.255.0\";"),
                           "lstack.conf:1: host_addr: 192.168.1.0 is the network or broadcast address of its subnet "
                           "/24"));
    EXPECT_TRUE(parse("host_addr = \"192.168.1.255\"; mask_addr = \"255.255.255.255\";").ok());
    // Without a mask nothing can be compared (the manager checks it against the port).
    EXPECT_TRUE(parse("host_addr = \"192.168.1.10\"; gateway_addr = \"10.0.0.1\";").ok());
}

TEST(LstackConfig, RunToCompletionHasNoStackThreads) {
    EXPECT_TRUE(fails_with(parse("stack_thread_mode = \"run-to-completion\";\nstack_interrupt = 1;"),
                           "lstack.conf:2: stack_interrupt: needs stack threads to block, but stack_thread_mode = "
                           "\"run-to-completion\" has none"));
    const LstackConfig c =
        parse_ok("stack_thread_mode = \"run-to-completion\";\nlow_power_mode = 1;\nnum_cpus = \"1\";");
    EXPECT_THAT(warning_lines(c),
                ElementsAre("lstack.conf:2: low_power_mode: has no effect: stack_thread_mode = \"run-to-completion\" "
                            "has no stack threads to slow down",
                            "lstack.conf:3: num_cpus: has no effect: stack_thread_mode = \"run-to-completion\" has no "
                            "stack threads to pin"));
}

TEST(LstackConfig, IdleBackoffCombinationsThatDoNothingWarn) {
    EXPECT_THAT(
        warning_lines(parse_ok("idle_spin_us = 10;")),
        ElementsAre("lstack.conf:1: idle_spin_us: has no effect: neither low_power_mode nor stack_interrupt is 1"));
    EXPECT_TRUE(parse_ok("idle_spin_us = 50;").warnings.empty()); // the default, spelled out
    EXPECT_TRUE(parse_ok("idle_spin_us = 10; low_power_mode = 1;").warnings.empty());
    EXPECT_THAT(warning_lines(parse_ok("low_power_mode = 1;\nstack_interrupt = 1;")),
                ElementsAre("lstack.conf:1: low_power_mode: has no effect: stack_interrupt = 1 blocks on an event "
                            "instead of sleeping"));
}

TEST(LstackConfig, ManagerSocketAndPrefix) {
    EXPECT_EQ(effective_mgr_socket(parse_ok("")), "/run/gazelle/mgr.sock");
    EXPECT_EQ(effective_mgr_socket(parse_ok("mgr_socket = \"/tmp/x/m.sock\"; unix_prefix = \"b-\";")),
              "/tmp/x/b-m.sock");
    EXPECT_TRUE(fails_with(parse("unix_prefix = \"../x\";"),
                           "lstack.conf:1: unix_prefix: \"../x\" may contain only letters, digits, '.', '_' and '-'"));
    EXPECT_TRUE(fails_with(parse("mgr_socket = \"run/mgr.sock\";"),
                           "lstack.conf:1: mgr_socket: \"run/mgr.sock\" is not an absolute path"));
    EXPECT_TRUE(fails_with(parse("mgr_socket = \"/run/\";"),
                           "lstack.conf:1: mgr_socket: \"/run/\" names a directory, not a socket"));
    EXPECT_TRUE(fails_mentioning(
        parse("mgr_socket = \"/run/gazelle/mgr.sock\";\nunix_prefix = \"" + std::string(100, 'p') + "\";"),
        {"lstack.conf:2: unix_prefix: the socket path", "longer than a unix socket address "
                                                        "allows (107 bytes)"}));
}

// --- every key of the table ----------------------------------------------------------------

// The complete list of Gazelle's lstack.conf keys (its parse table, lstack_cfg.c).
const std::vector<std::string> k_gazelle_keys = {"use_ltran",         "tcp_conn_count",   "mbuf_count_per_conn",
                                                 "nic_rxqueue_size",  "nic_txqueue_size", "mem_cache_num",
                                                 "app_bind_numa",     "stack_num",        "num_cpus",
                                                 "dpdk_args",         "xdp_eth_name",     "host_addr",
                                                 "host_addr6",        "mask_addr",        "gateway_addr",
                                                 "devices",           "low_power_mode",   "kni_switch",
                                                 "listen_shadow",     "app_exclude_cpus", "main_thread_affinity",
                                                 "unix_prefix",       "rpc_number",       "nic_read_number",
                                                 "num_process",       "process_numa",     "process_idx",
                                                 "tuple_filter",      "bond_mode",        "bond_miimon",
                                                 "bond_slave_mac",    "use_sockmap",      "udp_enable",
                                                 "stack_thread_mode", "mem_async_mode",   "nic_vlan_mode",
                                                 "send_cache_mode",   "flow_bifurcation", "stack_interrupt"};

TEST(LstackKeys, EveryGazelleKeyHasADispositionAndNothingElseClaimsToBeGazelles) {
    ASSERT_EQ(k_gazelle_keys.size(), 39u);
    const auto keys = config_keys(ConfigFile::lstack);
    std::set<std::string> from_gazelle;
    for (const auto& key : keys) {
        if (key.from_gazelle) {
            from_gazelle.insert(key.name);
        }
    }
    EXPECT_EQ(from_gazelle, std::set<std::string>(k_gazelle_keys.begin(), k_gazelle_keys.end()));
    std::set<std::string> removed;
    for (const auto& key : keys) {
        if (key.disposition == Disposition::removed) {
            removed.insert(key.name);
        }
    }
    EXPECT_EQ(removed, (std::set<std::string>{"nonblock_mode", "send_connect_number", "read_connect_number",
                                              "num_wakeup", "mbuf_pool_size", "send_ring_size"}));
    for (const auto& own : {"mgr_socket", "attach_failure", "idle_spin_us", "log_level"}) {
        EXPECT_TRUE(std::any_of(keys.begin(), keys.end(), [&](const KeyInfo& k) { return k.name == own; })) << own;
    }
}

TEST(LstackKeys, EveryKeyIsDocumentedAndHasAnExample) {
    std::set<std::string> names;
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        EXPECT_TRUE(names.insert(key.name).second) << "listed twice: " << key.name;
        EXPECT_FALSE(key.example.empty()) << key.name;
        if (key.disposition == Disposition::honoured) {
            EXPECT_FALSE(key.doc.empty()) << key.name;
            EXPECT_FALSE(key.default_value.empty()) << key.name;
        } else {
            EXPECT_FALSE(key.reason.empty()) << key.name;
        }
    }
}

// Each honoured key: its example loads and describe() prints it back unchanged; a value of
// another type is a "wrong type" error; integers one past their range are out of range.
TEST(LstackKeys, HonouredKeysLoadTheirExampleAndRejectOtherTypes) {
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        if (key.disposition != Disposition::honoured) {
            continue;
        }
        SCOPED_TRACE(key.name);
        const std::string line = key.name + " = " + key.example + ";";
        auto loaded = parse(line);
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        EXPECT_THAT(describe(*loaded), HasSubstr("\n" + line + "\n"));

        const std::string other = key.type == "string" ? "1" : "\"text\"";
        EXPECT_TRUE(fails_mentioning(parse(key.name + " = " + other + ";"),
                                     {"lstack.conf:1: " + key.name + ": wrong type: expected "}));
        if (key.type == "integer") {
            const auto dots = key.range.find("..");
            ASSERT_NE(dots, std::string::npos);
            const long long max = std::stoll(key.range.substr(dots + 2));
            EXPECT_TRUE(fails_with(parse(key.name + " = " + std::to_string(max + 1) + ";"),
                                   "lstack.conf:1: " + key.name + ": out of range: " + std::to_string(max + 1) +
                                       " is not in " + key.range));
        }
    }
}

TEST(LstackKeys, WarningKeysWarnWithTheirReasonUnlessTheValueMatchesOurBehaviour) {
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        if (key.disposition != Disposition::warning) {
            continue;
        }
        SCOPED_TRACE(key.name);
        const LstackConfig c = parse_ok("\n" + key.name + " = " + key.example + ";");
        EXPECT_THAT(warning_lines(c), ElementsAre("lstack.conf:2: " + key.name + ": " + key.reason));
        EXPECT_EQ(c.stack_num, LstackConfig{}.stack_num);
        if (!key.accepted.empty()) {
            EXPECT_EQ(parse_ok(key.name + " = " + key.accepted + ";"), LstackConfig{});
        }
        // Still type checked: a wrong type is an error, not a warning.
        EXPECT_FALSE(parse(key.name + " = [\"x\"];").ok());
    }
}

TEST(LstackKeys, ErrorKeysFailWithTheirReasonUnlessTheValueMatchesOurBehaviour) {
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        if (key.disposition != Disposition::error) {
            continue;
        }
        SCOPED_TRACE(key.name);
        EXPECT_EQ(error_lines(parse(key.name + " = " + key.example + ";")),
                  std::vector<std::string>{"lstack.conf:1: " + key.name + ": " + key.reason});
        ASSERT_FALSE(key.accepted.empty());
        EXPECT_EQ(parse_ok(key.name + " = " + key.accepted + ";"), LstackConfig{});
    }
}

TEST(LstackKeys, RemovedKeysSaySo) {
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        if (key.disposition != Disposition::removed) {
            continue;
        }
        EXPECT_EQ(error_lines(parse(key.name + " = " + key.example + ";")),
                  std::vector<std::string>{"lstack.conf:1: " + key.name + ": removed in Gazelle; not supported"});
    }
}

TEST(LstackKeys, SpecificReasonsNameWhatToDoInstead) {
    EXPECT_TRUE(fails_mentioning(parse("kni_switch = 1;"), {"kni_switch: KNI was removed in DPDK 22.11", "\"tap\""}));
    EXPECT_TRUE(fails_mentioning(parse("tuple_filter = 1;"), {"tuple_filter: queues are assigned by gazelle-mgr"}));
    EXPECT_TRUE(fails_mentioning(parse("num_process = 2;"), {"num_process: queues are assigned by gazelle-mgr"}));
    EXPECT_TRUE(fails_mentioning(parse("process_idx = 1;"), {"process_idx: queues are assigned by gazelle-mgr"}));
    EXPECT_TRUE(fails_mentioning(parse("bond_mode = 4;"), {"bond_mode: bonding is not supported"}));
    LstackConfig c = parse_ok("nic_rxqueue_size = 4096;\nnic_txqueue_size = 2048;\nmem_cache_num = 32;");
    EXPECT_THAT(warning_lines(c),
                ElementsAre(HasSubstr(":1: nic_rxqueue_size: has no effect: a port property, set by "
                                      "ports[].rx_ring_size in gazelle-mgr.conf"),
                            HasSubstr(":2: nic_txqueue_size: has no effect: a port property, set by "
                                      "ports[].tx_ring_size in gazelle-mgr.conf"),
                            HasSubstr(":3: mem_cache_num: has no effect: mbuf pools and their caches are created by "
                                      "gazelle-mgr (fabric.mbuf_cache_size)")));
}

// --- dpdk_args -----------------------------------------------------------------------------

TEST(LstackDpdkArgs, HarmlessArgumentsArePassedThrough) {
    const LstackConfig c =
        parse_ok("dpdk_args = [\"--log-level=lib.eal:debug\", \"--log-level\", \"8\", \"-v\", \"--no-telemetry\", "
                 "\"--trace=eal\"];");
    EXPECT_EQ(c.dpdk_args, (std::vector<std::string>{"--log-level=lib.eal:debug", "--log-level", "8", "-v",
                                                     "--no-telemetry", "--trace=eal"}));
    EXPECT_TRUE(c.warnings.empty());
}

TEST(LstackDpdkArgs, ArgumentsTheManagerAssignsAreErrorsNamingTheArgument) {
    auto c = parse("dpdk_args = [\"--proc-type\", \"primary\", \"--file-prefix=x\", \"-l\", \"0-3\", \"--lcores\", "
                   "\"0@1\", \"--huge-dir\", \"/mnt\", \"-a\", \"0000:03:00.0\", \"--vdev=net_tap0\", \"--no-huge\", "
                   "\"-l2\"];");
    const auto lines = error_lines(c);
    ASSERT_EQ(lines.size(), 9u) << c.error().message;
    EXPECT_THAT(lines[0], HasSubstr("lstack.conf:1: dpdk_args: '--proc-type primary': gazelle-mgr assigns it: "
                                    "applications always attach as DPDK secondaries of gazelle-mgr; remove it"));
    EXPECT_THAT(lines[1], HasSubstr("'--file-prefix=x': gazelle-mgr assigns it (dpdk.file_prefix"));
    EXPECT_THAT(lines[2], HasSubstr("'-l 0-3': gazelle-mgr assigns lcore ids (dpdk.app_lcores"));
    EXPECT_THAT(lines[3], HasSubstr("'--lcores 0@1': gazelle-mgr assigns lcore ids"));
    EXPECT_THAT(lines[4], HasSubstr("'--huge-dir /mnt': gazelle-mgr assigns it (dpdk.huge_dir"));
    EXPECT_THAT(lines[5], HasSubstr("'-a 0000:03:00.0': ports belong to gazelle-mgr"));
    EXPECT_THAT(lines[6], HasSubstr("'--vdev=net_tap0': ports belong to gazelle-mgr"));
    EXPECT_THAT(lines[7],
                HasSubstr("'--no-huge': a secondary can only attach to gazelle-mgr's shared hugepage memory"));
    EXPECT_THAT(lines[8], HasSubstr("'-l2': gazelle-mgr assigns lcore ids"));
}

TEST(LstackDpdkArgs, MemoryArgumentsHaveNoEffect) {
    const LstackConfig c =
        parse_ok("dpdk_args = [\"--socket-mem\", \"1024,0\", \"-m\", \"512\", \"--legacy-mem\", \"-v\"];");
    EXPECT_THAT(warning_lines(c),
                ElementsAre("lstack.conf:1: dpdk_args: '--socket-mem 1024,0' has no effect: memory belongs to "
                            "gazelle-mgr, the DPDK primary (dpdk in gazelle-mgr.conf)",
                            HasSubstr("'-m 512' has no effect"), HasSubstr("'--legacy-mem' has no effect")));
    EXPECT_EQ(c.dpdk_args, std::vector<std::string>{"-v"});
}

TEST(LstackDpdkArgs, MalformedEntriesAreExplained) {
    EXPECT_TRUE(fails_with(parse("dpdk_args = [\"--map-perfect\"];"),
                           "lstack.conf:1: dpdk_args: '--map-perfect': an openEuler DPDK patch option for ltran; "
                           "upstream DPDK 22.11 has no such option; remove it"));
    EXPECT_TRUE(fails_mentioning(parse("dpdk_args = [\"--frobnicate\"];"),
                                 {"'--frobnicate' is not an EAL option lstack.conf may set (allowed: --log-level, "
                                  "--syslog, -v"}));
    EXPECT_TRUE(fails_mentioning(parse("dpdk_args = [\"--proc\", \"primary\"];"),
                                 {"'--proc' abbreviates '--proc-type': write EAL options in full"}));
    EXPECT_TRUE(fails_mentioning(parse("dpdk_args = [\"--log-level 8\"];"),
                                 {"'--log-level 8' contains a space: give an option and its value as two entries"}));
    EXPECT_TRUE(fails_mentioning(parse("dpdk_args = [\"primary\"];"), {"'primary' is not an EAL option"}));
    EXPECT_TRUE(
        fails_with(parse("dpdk_args = [\"--log-level\"];"), "lstack.conf:1: dpdk_args: '--log-level' needs a value"));
}

// --- properties ----------------------------------------------------------------------------

TEST(LstackConfig, DescribeLoadsBackToTheSameConfig) {
    const LstackConfig original = parse_ok(R"(
        host_addr = "10.1.2.3"; mask_addr = "255.255.0.0"; gateway_addr = "10.1.0.1"; devices = "02:aa:bb:cc:dd:ee";
        num_cpus = "5,3,4"; stack_thread_mode = "run-to-wakeup"; dpdk_args = ["--log-level", "lib.eal:info"];
        tcp_conn_count = 77; mbuf_count_per_conn = 12; nic_read_number = 1; rpc_number = 1024; udp_enable = 0;
        low_power_mode = 1; idle_spin_us = 0; mgr_socket = "/tmp/with \"quotes\"/m.sock"; unix_prefix = "x.";
        attach_failure = "error"; log_level = "notice";
    )");
    const std::string text = describe(original);
    auto again = parse_lstack_config(text, "described");
    ASSERT_TRUE(again.ok()) << again.error().message << "\n" << text;
    EXPECT_EQ(*again, original);
    EXPECT_EQ(describe(*again), text);
    EXPECT_EQ(*parse_lstack_config(describe(LstackConfig{}), "d"), LstackConfig{});
}

// Parsing is order independent: every permutation of the lines gives the same config, and the
// same findings apart from their line numbers.
TEST(LstackConfig, KeyOrderDoesNotMatter) {
    std::vector<std::string> lines = {"num_cpus = \"4,6\";", "host_addr = \"10.0.0.2\";", "mask_addr = \"255.0.0.0\";",
                                      "gateway_addr = \"10.0.0.1\";", "low_power_mode = 1;"};
    std::sort(lines.begin(), lines.end());
    std::optional<LstackConfig> first;
    do {
        std::string text;
        for (const auto& l : lines) {
            text += l + "\n";
        }
        const LstackConfig c = parse_ok(text);
        if (!first) {
            first = c;
        }
        EXPECT_EQ(c, *first) << text;
    } while (std::next_permutation(lines.begin(), lines.end()));
    EXPECT_EQ(first->stack_num, 2u);

    std::vector<std::string> bad = {"stack_num = 3;", "num_cpus = \"1,2\";", "gateway_addr = \"11.0.0.1\";",
                                    "host_addr = \"10.0.0.2\";", "mask_addr = \"255.0.0.0\";"};
    std::sort(bad.begin(), bad.end());
    std::optional<std::multiset<std::string>> expected;
    do {
        std::string text;
        for (const auto& l : bad) {
            text += l + "\n";
        }
        std::multiset<std::string> findings;
        for (const auto& line : error_lines(parse(text))) {
            findings.insert(line.substr(line.find(": ") + 2)); // drop "lstack.conf:N"
        }
        if (!expected) {
            expected = findings;
        }
        EXPECT_EQ(findings, *expected) << text;
    } while (std::next_permutation(bad.begin(), bad.end()));
    EXPECT_EQ(expected->size(), 2u);
}

// A crude fuzzer with a fixed seed: the parser must never crash, and whatever it says names the file.
TEST(LstackConfig, SurvivesMutatedInput) {
    const std::string seed = "dpdk_args = [\"--log-level\", \"8\"];\nhost_addr = \"192.168.1.10\";\n"
                             "num_cpus = \"2,22\";\nuse_ltran = 0;\n/* c */ tcp_conn_count = 1500; # x\n";
    const std::string alphabet = "=;:,\"[](){}#/*@\\\n 0123456789xL-.abc_";
    std::mt19937 rng(20240601);
    for (int round = 0; round < 3000; ++round) {
        std::string text = seed;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = rng() % (text.size() + 1);
            const char c = alphabet[rng() % alphabet.size()];
            switch (rng() % 3) {
            case 0:
                text.insert(at, 1, c);
                break;
            case 1:
                if (at < text.size()) {
                    text.erase(at, 1);
                }
                break;
            default:
                if (at < text.size()) {
                    text[at] = c;
                }
            }
        }
        auto c = parse_lstack_config(text, "fuzz.conf");
        if (!c.ok()) {
            for (const auto& line : error_lines(c)) {
                ASSERT_TRUE(line.starts_with("fuzz.conf")) << line << "\n--- input:\n" << text;
            }
        }
    }
}

// --- files and the environment -------------------------------------------------------------

TEST(LstackConfigFile, MessagesUseThePathAsGiven) {
    gazelle::test::TempDir dir;
    const std::string path = dir.write("lstack.conf", "stack_num = 1;\nnic_read_num = 4;\n");
    auto c = load_lstack_config(path);
    EXPECT_TRUE(fails_with(c, path + ":2: nic_read_num: unknown key (did you mean 'nic_read_number'?)"));
    const std::string good = dir.write("good.conf", "num_cpus = \"1\";\n");
    auto ok = load_lstack_config(good);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_EQ(ok->num_cpus, std::vector<unsigned>{1});
}

TEST(LstackConfigFile, MissingFileKeepsItsErrno) {
    auto c = load_lstack_config("/nonexistent/lstack.conf");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ENOENT);
    EXPECT_EQ(c.error().message, "cannot open '/nonexistent/lstack.conf': No such file or directory");
    auto dir = load_lstack_config("/");
    ASSERT_FALSE(dir.ok());
    EXPECT_EQ(dir.error().code, EISDIR);
}

TEST(LstackConfigPath, EnvironmentOverridesTheDefault) {
    const char* saved = std::getenv("LSTACK_CONF_PATH");
    const std::string restore = saved != nullptr ? saved : "";
    ::unsetenv("LSTACK_CONF_PATH");
    EXPECT_EQ(lstack_config_path(), "/etc/gazelle/lstack.conf");
    ::setenv("LSTACK_CONF_PATH", "", 1);
    EXPECT_EQ(lstack_config_path(), "/etc/gazelle/lstack.conf");
    ::setenv("LSTACK_CONF_PATH", "/tmp/my.conf", 1);
    EXPECT_EQ(lstack_config_path(), "/tmp/my.conf");
    if (saved != nullptr) {
        ::setenv("LSTACK_CONF_PATH", restore.c_str(), 1);
    } else {
        ::unsetenv("LSTACK_CONF_PATH");
    }
}

} // namespace
} // namespace gazelle::conf
