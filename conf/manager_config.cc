// SPDX-License-Identifier: BSD-3-Clause
#include "conf/manager_config.h"

#include <sched.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <map>

#include "conf/cpu_list.h"
#include "conf/parse_internal.h"

namespace gazelle::conf {
namespace {

using internal::KeySpec;
using internal::Kind;
using internal::Lines;
using internal::quote;
using internal::Site;
using internal::Value;

constexpr std::size_t k_max_name_bytes = 31;  // port and bridge names
constexpr std::size_t k_max_iface_bytes = 15; // IFNAMSIZ - 1
constexpr std::size_t k_rss_key_bytes = 40;   // the Toeplitz key size every DPDK PMD accepts
constexpr unsigned k_max_bridges = k_max_ports;

bool is_name(std::string_view text, std::size_t max_bytes) {
    const auto ok_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.';
    };
    return !text.empty() && text.size() <= max_bytes && std::all_of(text.begin(), text.end(), ok_char) &&
           text.front() != '-' && text.front() != '.';
}

std::string name_rule(std::size_t max_bytes) {
    return "1.." + std::to_string(max_bytes) + " letters, digits, '_', '-' or '.', not starting with '-' or '.'";
}

// Absolute path of a file: starts with '/', does not end with one.
bool is_file_path(std::string_view text) {
    return text.size() > 1 && text.front() == '/' && text.back() != '/';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// "0000:03:00.0" or "03:00.0" (domain 0), as DPDK's -a accepts them.
bool is_pci_address(std::string_view text) {
    if (text.size() == 7) {
        return is_pci_address("0000:" + std::string(text));
    }
    if (text.size() != 12 || text[4] != ':' || text[7] != ':' || text[10] != '.') {
        return false;
    }
    for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u}) {
        if (hex_value(text[i]) < 0) {
            return false;
        }
    }
    const int device = hex_value(text[8]) * 16 + hex_value(text[9]);
    return device <= 0x1f && text[11] >= '0' && text[11] <= '7';
}

std::string hex_string(const std::vector<std::uint8_t>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0x0fu];
    }
    return out;
}

// Stores a CPU or lcore list that must not be empty.
void store_id_list(std::vector<unsigned>& field, unsigned limit, const Value& value, const Site& site) {
    auto ids = parse_cpu_list(value.text, limit);
    if (!ids) {
        site.error("invalid list " + quote(value.text) + ": " + ids.error().message);
        return;
    }
    if (ids->empty()) {
        site.error("must not be empty");
        return;
    }
    field = std::move(*ids);
}

// EAL arguments the manager derives from other keys; a second copy in extra_args would conflict.
struct ReservedArg {
    std::string_view name;
    std::string_view instead;
};

constexpr std::array k_reserved_args{
    ReservedArg{"--proc-type", "the manager is always the DPDK primary"},
    ReservedArg{"--file-prefix", "set dpdk.file_prefix"},
    ReservedArg{"--huge-dir", "set dpdk.huge_dir"},
    ReservedArg{"-l", "set dpdk.main_lcore and dpdk.app_lcores"},
    ReservedArg{"--lcores", "set dpdk.main_lcore and dpdk.app_lcores"},
    ReservedArg{"-c", "set dpdk.main_lcore and dpdk.app_lcores"},
    ReservedArg{"--main-lcore", "set dpdk.main_lcore"},
    ReservedArg{"--master-lcore", "set dpdk.main_lcore"},
    ReservedArg{"--socket-limit", "set dpdk.socket_limit_mb"},
    ReservedArg{"--legacy-mem", "set dpdk.memory_mb"},
    ReservedArg{"--socket-mem", "set dpdk.memory_mb"},
    ReservedArg{"-m", "set dpdk.memory_mb"},
    ReservedArg{"-a", "define the port in ports"},
    ReservedArg{"--allow", "define the port in ports"},
    ReservedArg{"-w", "define the port in ports"},
    ReservedArg{"--vdev", "define the port in ports"},
    ReservedArg{"--in-memory", "applications attach as DPDK secondaries, which needs shared runtime files"},
    ReservedArg{"--no-shconf", "applications attach as DPDK secondaries, which needs shared runtime files"},
    ReservedArg{"--no-huge", "DPDK secondaries cannot attach to a primary without hugepages"},
};

void store_extra_args(DpdkConfig& config, const Value& value, const Site& site) {
    bool ok = true;
    for (const auto& arg : value.list) {
        if (arg.find(' ') != std::string::npos) {
            site.error("'" + arg +
                       "' contains a space: give an option and its value as two entries, or as "
                       "--option=value");
            ok = false;
            continue;
        }
        std::string name = arg;
        if (arg.starts_with("--")) {
            name = arg.substr(0, arg.find('='));
        } else if (arg.size() > 2 && arg[0] == '-') {
            name = arg.substr(0, 2);
        }
        for (const auto& reserved : k_reserved_args) {
            if (reserved.name == name) {
                site.error("'" + arg + "' is set by gazelle-mgr itself: " + std::string(reserved.instead));
                ok = false;
            }
        }
    }
    if (ok) {
        config.extra_args = value.list;
    }
}

// --- tables ----------------------------------------------------------------------------------

constexpr KeySpec<DpdkConfig> k_dpdk_keys[] = {
    {.name = "file_prefix",
     .kind = Kind::string,
     .value_text = "1..31 letters, digits, '_', '-', '.'",
     .doc = "EAL --file-prefix of the manager; applications attach with the same one. Separates fabrics on "
            "one host.",
     .example = "\"gz-test\"",
     .store =
         [](DpdkConfig& c, const Value& v, const Site& s) {
             if (!is_name(v.text, k_max_name_bytes)) {
                 s.error(quote(v.text) + " is not a valid prefix (" + name_rule(k_max_name_bytes) + ")");
                 return;
             }
             c.file_prefix = v.text;
         },
     .show = [](const DpdkConfig& c) { return quote(c.file_prefix); }},
    {.name = "huge_dir",
     .kind = Kind::string,
     .value_text = "absolute path",
     .doc = "EAL --huge-dir: a hugetlbfs mount used by this fabric only (a primary deletes the unlocked page "
            "files it finds there).",
     .example = "\"/mnt/huge\"",
     .store =
         [](DpdkConfig& c, const Value& v, const Site& s) {
             if (v.text.empty() || v.text.front() != '/') {
                 s.error(quote(v.text) + " is not an absolute path");
                 return;
             }
             c.huge_dir = v.text;
         },
     .show = [](const DpdkConfig& c) { return quote(c.huge_dir); }},
    {.name = "main_lcore",
     .kind = Kind::integer,
     .min = 0,
     .max = k_max_lcores - 1,
     .doc = "Lcore id of the manager's main thread (RTE_MAX_LCORE is 128). Must not be in app_lcores.",
     .example = "64",
     .field = &DpdkConfig::main_lcore},
    {.name = "app_lcores",
     .kind = Kind::string,
     .value_text = "lcore list such as \"1-63\", ids 0..127",
     .doc = "Lcore ids the manager hands out, one per stack thread, so no two processes ever share an lcore id "
            "(and with it a mempool cache). Needs at least as many ids as the ports have queues.",
     .example = "\"8-15\"",
     .store = [](DpdkConfig& c, const Value& v, const Site& s) { store_id_list(c.app_lcores, k_max_lcores, v, s); },
     .show = [](const DpdkConfig& c) { return quote(format_cpu_list(c.app_lcores)); }},
    {.name = "app_cpus",
     .kind = Kind::string,
     .value_text = "CPU list such as \"0-1\"",
     .doc = "CPUs stack threads run on when their lstack.conf has no num_cpus.",
     .example = "\"2-3\"",
     .store = [](DpdkConfig& c, const Value& v, const Site& s) { store_id_list(c.app_cpus, CPU_SETSIZE, v, s); },
     .show = [](const DpdkConfig& c) { return quote(format_cpu_list(c.app_cpus)); }},
    {.name = "extra_args",
     .kind = Kind::string_list,
     .value_text = "EAL arguments",
     .doc = "More EAL arguments for the manager, e.g. [\"--log-level=lib.eal:debug\"]. Arguments the manager "
            "derives from other keys (--proc-type, --file-prefix, --huge-dir, -l, --lcores, --main-lcore, "
            "--socket-limit, --legacy-mem, --socket-mem, -m, -a, --vdev) and those that stop secondaries from attaching (--in-memory, "
            "--no-shconf, --no-huge) are errors.",
     .example = "[\"--log-level=lib.eal:debug\"]",
     .store = store_extra_args,
     .show = [](const DpdkConfig& c) { return internal::quote_list(c.extra_args); }},
    {.name = "socket_limit_mb",
     .kind = Kind::integer,
     .min = 0,
     .max = 1 << 20,
     .doc = "EAL --socket-limit in MiB for every NUMA node, at least memory_mb; 0: no limit.",
     .example = "2048",
     .field = &DpdkConfig::socket_limit_mb},
    {.name = "memory_mb",
     .kind = Kind::integer,
     .min = 0,
     .max = 1 << 20,
     .doc = "Hugepage memory in MiB the manager maps at start and keeps (EAL -m: preallocated, never "
            "freed): pools, tables and every application's lwIP memory come from it, and while they fit "
            "no page is mapped or freed as apps come and go, so an app that dies or restarts cannot "
            "stall the others (doc/reliability.md). Beyond it, and with 0, EAL maps and frees pages at "
            "run time, each time synchronised with every secondary: a slow or dying one can then stall "
            "the others for seconds. The hugepages must be free when the manager starts.",
     .example = "2048",
     .field = &DpdkConfig::memory_mb},
};

constexpr KeySpec<FabricConfig> k_fabric_keys[] = {
    {.name = "max_queues",
     .kind = Kind::integer,
     .min = 1,
     .max = k_max_queues,
     .doc = "Queue slots of the fabric; the ports' queues together must fit. At most 64 because queue sets "
            "are 64-bit masks.",
     .example = "32",
     .field = &FabricConfig::max_queues},
    {.name = "ring_size",
     .kind = Kind::integer,
     .min = 64,
     .max = 16384,
     .power_of_two = true,
     .doc = "Slots of each per-producer lane of a queue's inbox (packets forwarded to it by one other queue).",
     .example = "2048",
     .field = &FabricConfig::ring_size},
    {.name = "flow_table_size",
     .kind = Kind::integer,
     .min = 1024,
     .max = 1 << 24,
     .power_of_two = true,
     .doc = "Entries of the shared flow table (5-tuple to owning queue): the connections the fabric can steer.",
     .example = "131072",
     .field = &FabricConfig::flow_table_size},
    {.name = "listener_table_size",
     .kind = Kind::integer,
     .min = 64,
     .max = 65536,
     .power_of_two = true,
     .doc = "Entries of the listener table (local address and port to listening queues).",
     .example = "4096",
     .field = &FabricConfig::listener_table_size},
    {.name = "mbufs_per_queue",
     .kind = Kind::integer,
     .min = 512,
     .max = (1 << 20) - 1,
     .doc = "Mbufs in each queue's pool. 2^n - 1 uses the pool's ring best.",
     .example = "16383",
     .field = &FabricConfig::mbufs_per_queue},
    {.name = "mbuf_cache_size",
     .kind = Kind::integer,
     .min = 0,
     .max = 512,
     .doc = "Per-lcore cache of every mbuf pool (RTE_MEMPOOL_CACHE_MAX_SIZE is 512). DPDK also needs 1.5 times "
            "it to fit in the pool.",
     .example = "128",
     .field = &FabricConfig::mbuf_cache_size},
    {.name = "mbuf_data_room",
     .kind = Kind::integer,
     .min = 1024,
     .max = 65535,
     .doc = "Bytes of one mbuf's buffer including the 128-byte headroom; every port's mtu + 18 must fit after "
            "the headroom.",
     .example = "9344",
     .field = &FabricConfig::mbuf_data_room},
    {.name = "l2_pool_mbufs",
     .kind = Kind::integer,
     .min = 512,
     .max = (1 << 20) - 1,
     .doc = "Mbufs of the fabric's one L2 pool: a stack whose own queue pool is below the low watermark "
            "allocates from it (the rest of its own pool stays for the NIC's receive refills).",
     .example = "32767",
     .field = &FabricConfig::l2_pool_mbufs},
    {.name = "l2_low_watermark_percent",
     .kind = Kind::integer,
     .min = 1,
     .max = 90,
     .doc = "The low watermark of every mbuf pool, in percent of its mbufs. Below it in a queue's own pool, "
            "the stack allocates from the L2 pool; below it in the L2 pool, the fabric sheds L2 work (ARP frames "
            "and ARP reply fan-out, counted as l2_shed) instead of exhausting the pool; other frames may take the "
            "L2 pool down to empty.",
     .example = "20",
     .field = &FabricConfig::l2_low_watermark_percent},
};

bool is_user_veth(const PortConfig& p) {
    return p.type == PortType::user_veth;
}
bool is_tap(const PortConfig& p) {
    return p.type == PortType::tap;
}
bool is_pci(const PortConfig& p) {
    return p.type == PortType::pci;
}

constexpr KeySpec<PortConfig> k_port_keys[] = {
    {.name = "name",
     .kind = Kind::string,
     .value_text = "1..31 letters, digits, '_', '-', '.'",
     .doc = "Unique name of the port.",
     .example = "\"veth2\"",
     .required = true,
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             if (!is_name(v.text, k_max_name_bytes)) {
                 s.error(quote(v.text) + " is not a valid name (" + name_rule(k_max_name_bytes) + ")");
                 return;
             }
             c.name = v.text;
         },
     .show = [](const PortConfig& c) { return quote(c.name); }},
    {.name = "type",
     .kind = Kind::string,
     .choices = "user-veth|tap|pci",
     .doc = "\"user-veth\": software port between applications on this host, plugged into a bridge. \"tap\": a "
            "DPDK tap device, the kernel sees interface iface. \"pci\": a NIC bound to a DPDK driver.",
     .example = "\"tap\"",
     .required = true,
     .store =
         [](PortConfig& c, const Value& v, const Site&) {
             c.type = v.text == "tap" ? PortType::tap : v.text == "pci" ? PortType::pci : PortType::user_veth;
         },
     .show = [](const PortConfig& c) { return quote(to_string(c.type)); }},
    {.name = "mac",
     .kind = Kind::string,
     .value_text = "unicast MAC address",
     .doc = "The port's MAC address; unique. Required except for pci ports, where \"\" keeps the NIC's own.",
     .example = "\"02:00:00:00:00:09\"",
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             if (v.text.empty()) {
                 c.mac.reset();
                 return;
             }
             auto mac = parse_mac(v.text);
             if (!mac) {
                 s.error(mac.error().message);
                 return;
             }
             if (mac->is_multicast() || mac->is_zero()) {
                 s.error("'" + v.text + "' is not a unicast MAC address");
                 return;
             }
             c.mac = *mac;
         },
     .show = [](const PortConfig& c) { return quote(c.mac ? to_string(*c.mac) : ""); }},
    {.name = "ipv4",
     .kind = Kind::string,
     .value_text = "IPv4 address",
     .doc = "The port's address; unique. Applications choose a port by it (lstack.conf host_addr).",
     .example = "\"198.18.0.3\"",
     .required = true,
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             auto a = parse_ipv4(v.text);
             if (!a) {
                 s.error(a.error().message);
                 return;
             }
             c.ipv4 = *a;
         },
     .show = [](const PortConfig& c) { return quote(to_string(c.ipv4)); }},
    {.name = "netmask",
     .kind = Kind::string,
     .value_text = "contiguous IPv4 netmask",
     .doc = "Netmask of ipv4.",
     .example = "\"255.255.0.0\"",
     .required = true,
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             auto m = parse_netmask(v.text);
             if (!m) {
                 s.error(m.error().message);
                 return;
             }
             c.netmask = *m;
         },
     .show = [](const PortConfig& c) { return quote(to_string(c.netmask)); }},
    {.name = "gateway",
     .kind = Kind::string,
     .value_text = "IPv4 address in the port's subnet, or \"\"",
     .doc = "Default gateway of the port; \"\": none (only the subnet is reachable).",
     .example = "\"198.18.0.254\"",
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             if (v.text.empty()) {
                 c.gateway.reset();
                 return;
             }
             auto a = parse_ipv4(v.text);
             if (!a) {
                 s.error(a.error().message);
                 return;
             }
             c.gateway = *a;
         },
     .show = [](const PortConfig& c) { return quote(c.gateway ? to_string(*c.gateway) : ""); }},
    {.name = "queues",
     .kind = Kind::integer,
     .min = 1,
     .max = k_max_queues,
     .doc = "Queues of the port, each served by one stack thread of one application. Tap ports: at most 4 (DPDK "
            "22.11's tap PMD overflows its fd array above 4). All ports together: at most fabric.max_queues.",
     .example = "2",
     .field = &PortConfig::queues},
    {.name = "rx_ring_size",
     .kind = Kind::integer,
     .min = 64,
     .max = 16384,
     .power_of_two = true,
     .doc = "Receive descriptors per queue (lstack.conf's nic_rxqueue_size in Gazelle).",
     .example = "2048",
     .field = &PortConfig::rx_ring_size},
    {.name = "tx_ring_size",
     .kind = Kind::integer,
     .min = 64,
     .max = 16384,
     .power_of_two = true,
     .doc = "Transmit descriptors per queue (lstack.conf's nic_txqueue_size in Gazelle).",
     .example = "2048",
     .field = &PortConfig::tx_ring_size},
    {.name = "mtu",
     .kind = Kind::integer,
     .min = 68,
     .max = 9000,
     .doc = "IP MTU. mtu + 18 + 128 must fit in fabric.mbuf_data_room (no scattered receive).",
     .example = "9000",
     .field = &PortConfig::mtu},
    {.name = "bridge",
     .kind = Kind::string,
     .value_text = "a name from bridges, or \"\"",
     .doc = "user-veth only: the bridge the port is plugged into; \"\": none.",
     .example = "\"br0\"",
     .field = &PortConfig::bridge,
     .applies = is_user_veth},
    {.name = "iface",
     .kind = Kind::string,
     .value_text = "interface name, 1..15 characters",
     .doc = "tap only, required: name of the kernel's interface.",
     .example = "\"gztap0\"",
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             if (!is_name(v.text, k_max_iface_bytes)) {
                 s.error(quote(v.text) + " is not a valid interface name (" + name_rule(k_max_iface_bytes) + ")");
                 return;
             }
             c.iface = v.text;
         },
     .show = [](const PortConfig& c) { return quote(c.iface); },
     .applies = is_tap},
    {.name = "pci",
     .kind = Kind::string,
     .value_text = "PCI address \"0000:03:00.0\"",
     .doc = "pci only, required: the NIC's PCI address.",
     .example = "\"0000:03:00.0\"",
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             if (!is_pci_address(v.text)) {
                 s.error(quote(v.text) + " is not a PCI address (expected domain:bus:device.function, e.g. "
                                         "\"0000:03:00.0\")");
                 return;
             }
             c.pci = v.text;
         },
     .show = [](const PortConfig& c) { return quote(c.pci); },
     .applies = is_pci},
    {.name = "rss_key",
     .kind = Kind::string,
     .value_text = "80 hex digits (40 bytes), or \"\"",
     .doc = "Toeplitz RSS key of the port; \"\": the PMD's default.",
     .example = "\"6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa\"",
     .store =
         [](PortConfig& c, const Value& v, const Site& s) {
             std::vector<std::uint8_t> key;
             bool ok = v.text.size() == 2 * k_rss_key_bytes || v.text.empty();
             for (std::size_t i = 0; ok && i < v.text.size(); i += 2) {
                 const int hi = hex_value(v.text[i]);
                 const int lo = hex_value(v.text[i + 1]);
                 ok = hi >= 0 && lo >= 0;
                 key.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
             }
             if (!ok) {
                 s.error("expected " + std::to_string(2 * k_rss_key_bytes) + " hex digits (" +
                         std::to_string(k_rss_key_bytes) + " bytes) or \"\"");
                 return;
             }
             c.rss_key = std::move(key);
         },
     .show = [](const PortConfig& c) { return quote(hex_string(c.rss_key)); }},
};

constexpr KeySpec<BridgeConfig> k_bridge_keys[] = {
    {.name = "name",
     .kind = Kind::string,
     .value_text = "1..31 letters, digits, '_', '-', '.'",
     .doc = "Unique name of the bridge; user-veth ports join it with ports[].bridge.",
     .example = "\"br1\"",
     .required = true,
     .store =
         [](BridgeConfig& c, const Value& v, const Site& s) {
             if (!is_name(v.text, k_max_name_bytes)) {
                 s.error(quote(v.text) + " is not a valid name (" + name_rule(k_max_name_bytes) + ")");
                 return;
             }
             c.name = v.text;
         },
     .show = [](const BridgeConfig& c) { return quote(c.name); }},
};

constexpr KeySpec<DaemonConfig> k_manager_keys[] = {
    {.name = "socket",
     .kind = Kind::string,
     .value_text = "absolute path, < 108 bytes",
     .doc = "Unix socket applications connect to (lstack.conf mgr_socket).",
     .example = "\"/run/gazelle/test.sock\"",
     .store =
         [](DaemonConfig& c, const Value& v, const Site& s) {
             if (!is_file_path(v.text)) {
                 s.error(quote(v.text) + " is not an absolute file path");
                 return;
             }
             if (v.text.size() >= sizeof(sockaddr_un::sun_path)) {
                 s.error("longer than a unix socket address allows (" +
                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
                 return;
             }
             c.socket = v.text;
         },
     .show = [](const DaemonConfig& c) { return quote(c.socket); }},
    {.name = "bus",
     .kind = Kind::string,
     .value_text = "\"system\", \"session\" or a D-Bus address \"unix:path=...\"",
     .doc = "D-Bus the manager serves its API on.",
     .example = "\"session\"",
     .store =
         [](DaemonConfig& c, const Value& v, const Site& s) {
             const bool ok = v.text == "system" || v.text == "session" ||
                             (v.text.starts_with("unix:path=/") && v.text.size() > 11) ||
                             (v.text.starts_with("unix:abstract=") && v.text.size() > 14);
             if (!ok) {
                 s.error("invalid value " + quote(v.text) +
                         " (expected \"system\", \"session\", \"unix:path=/...\" or \"unix:abstract=...\")");
                 return;
             }
             c.bus = v.text;
         },
     .show = [](const DaemonConfig& c) { return quote(c.bus); }},
    {.name = "max_apps",
     .kind = Kind::integer,
     .min = 1,
     .max = k_max_lcores,
     .doc = "Applications attached at the same time.",
     .example = "8",
     .field = &DaemonConfig::max_apps},
    {.name = "heartbeat_timeout_ms",
     .kind = Kind::integer,
     .min = 100,
     .max = 600000,
     .doc = "An application whose stacks have not reported for this long is treated as dead and reclaimed.",
     .example = "5000",
     .field = &DaemonConfig::heartbeat_timeout_ms},
    {.name = "reclaim_timeout_ms",
     .kind = Kind::integer,
     .min = 10,
     .max = 60000,
     .doc = "How long reclaiming a dead application's queues may wait for in-flight packets before forcing it.",
     .example = "2000",
     .field = &DaemonConfig::reclaim_timeout_ms},
    {.name = "log_level",
     .kind = Kind::string,
     .choices = k_log_level_choices,
     .doc = "The most verbose level the manager logs.",
     .example = "\"debug\"",
     .store = [](DaemonConfig& c, const Value& v,
                 const Site&) { c.log_level = parse_log_level(v.text).value_or(LogLevel::info); },
     .show = [](const DaemonConfig& c) { return quote(to_string(c.log_level)); }},
};

constexpr std::string_view k_sections[] = {"dpdk", "fabric", "ports", "bridges", "manager"};

unsigned line_in(const Lines& lines, std::string_view key, unsigned fallback) {
    const auto it = lines.find(key);
    return it == lines.end() ? fallback : it->second;
}

// Everything the cross-field checks need to know about where keys were.
struct Layout {
    Lines top; // section name -> line
    Lines dpdk;
    Lines fabric;
    Lines manager;
    std::vector<Lines> ports; // per port: key -> line
    std::vector<unsigned> port_lines;
    std::vector<Lines> bridges;
    std::vector<unsigned> bridge_lines;
    bool ports_given = false; // false: the default ports, which have no lines and are known valid
};

std::string port_key(std::size_t index, std::string_view key) {
    return "ports[" + std::to_string(index) + "]." + std::string(key);
}

void check_ports(ManagerConfig& config, const Layout& layout, internal::Findings& findings) {
    const unsigned ports_line = line_in(layout.top, "ports", 0);
    if (config.ports.size() > k_max_ports) {
        findings.error(ports_line, "ports",
                       std::to_string(config.ports.size()) + " ports, at most " + std::to_string(k_max_ports));
    }
    std::map<std::string, std::size_t> names;
    std::map<std::string, std::size_t> macs;
    std::map<std::uint32_t, std::size_t> addresses;
    std::map<std::string, std::size_t> ifaces;
    std::map<std::string, std::size_t> pcis;
    const auto duplicate = [&](auto& seen, const auto& value, std::size_t index, std::string_view key,
                               const std::string& shown) {
        const auto [it, inserted] = seen.emplace(value, index);
        if (!inserted) {
            findings.error(line_in(layout.ports[index], key, layout.port_lines[index]), port_key(index, key),
                           shown + " is already used by port '" + config.ports[it->second].name + "' (ports[" +
                               std::to_string(it->second) + "])");
        }
    };
    for (std::size_t i = 0; i < config.ports.size(); ++i) {
        const PortConfig& port = config.ports[i];
        const Lines& lines = layout.ports[i];
        const unsigned group_line = layout.port_lines[i];
        const auto at = [&](std::string_view key) { return line_in(lines, key, group_line); };
        const unsigned needed = port.mtu + k_l2_overhead + k_mbuf_headroom;
        if (needed > config.fabric.mbuf_data_room) {
            // Reported where the user wrote the number that is too big (or too small).
            const std::string why =
                "needs mbufs with " + std::to_string(needed) + " bytes of data room (mtu + 18 + 128 of headroom)";
            if (lines.contains("mtu")) {
                findings.error(at("mtu"), port_key(i, "mtu"),
                               std::to_string(port.mtu) + " " + why + ", fabric.mbuf_data_room is " +
                                   std::to_string(config.fabric.mbuf_data_room));
            } else {
                findings.error(line_in(layout.fabric, "mbuf_data_room", group_line), "fabric.mbuf_data_room",
                               std::to_string(config.fabric.mbuf_data_room) + " is too small: port '" + port.name +
                                   "' with mtu " + std::to_string(port.mtu) + " " + why);
            }
        }
        // Keys that only one port type has.
        const std::pair<std::string_view, bool (*)(const PortConfig&)> typed[] = {
            {"bridge", is_user_veth}, {"iface", is_tap}, {"pci", is_pci}};
        for (const auto& [key, applies] : typed) {
            if (lines.contains(key) && !applies(port)) {
                const char* owner = key == "bridge" ? "user-veth" : key == "iface" ? "tap" : "pci";
                findings.error(at(key), port_key(i, key),
                               std::string("only ") + owner + " ports have this key, this port is " +
                                   to_string(port.type));
            }
        }
        if (!layout.ports_given) {
            // The default ports are valid by construction, but a bridges list may drop their bridge.
            const bool known = std::any_of(config.bridges.begin(), config.bridges.end(),
                                           [&](const BridgeConfig& b) { return b.name == port.bridge; });
            if (!port.bridge.empty() && !known) {
                findings.error(line_in(layout.top, "bridges", 0), "bridges",
                               "the default port '" + port.name + "' is plugged into bridge '" + port.bridge +
                                   "', which this list does not define; keep it or give ports too");
            }
            continue;
        }
        if (!lines.contains("mac") && port.type != PortType::pci) {
            findings.error(group_line, port_key(i, "mac"), "missing required key (only pci ports may leave it out)");
        } else if (!port.mac && port.type != PortType::pci && lines.contains("mac") &&
                   !findings.has_error_for(port_key(i, "mac"))) {
            findings.error(at("mac"), port_key(i, "mac"),
                           "must not be empty for a " + std::string(to_string(port.type)) + " port");
        }
        if (port.type == PortType::tap) {
            if (!lines.contains("iface")) {
                findings.error(group_line, port_key(i, "iface"), "missing required key for a tap port");
            }
            if (port.queues > k_max_tap_queues) {
                findings.error(at("queues"), port_key(i, "queues"),
                               "out of range: " + std::to_string(port.queues) + " is not in 1.." +
                                   std::to_string(k_max_tap_queues) +
                                   " for a tap port (DPDK 22.11's tap PMD overflows its fd array above " +
                                   std::to_string(k_max_tap_queues) + " queues)");
            }
        }
        if (port.type == PortType::pci && !lines.contains("pci")) {
            findings.error(group_line, port_key(i, "pci"), "missing required key for a pci port");
        }
        // Addresses (only when both parsed; otherwise their own errors are already reported).
        if (lines.contains("ipv4") && lines.contains("netmask") && !findings.has_error_for(port_key(i, "ipv4")) &&
            !findings.has_error_for(port_key(i, "netmask"))) {
            const unsigned prefix = prefix_length(port.netmask);
            const std::uint32_t host_bits = port.ipv4.value & ~port.netmask.value;
            if (prefix <= 30 && (host_bits == 0 || host_bits == ~port.netmask.value)) {
                findings.error(at("ipv4"), port_key(i, "ipv4"),
                               to_string(port.ipv4) + " is the network or broadcast address of its subnet /" +
                                   std::to_string(prefix));
            }
            if (port.gateway) {
                if (!same_subnet(*port.gateway, port.ipv4, port.netmask)) {
                    findings.error(at("gateway"), port_key(i, "gateway"),
                                   to_string(*port.gateway) + " is not in the port's subnet " +
                                       to_string(Ipv4{port.ipv4.value & port.netmask.value}) + "/" +
                                       std::to_string(prefix));
                } else if (*port.gateway == port.ipv4) {
                    findings.error(at("gateway"), port_key(i, "gateway"), "is the port's own address");
                }
            }
        }
        if (!port.bridge.empty() && port.type == PortType::user_veth) {
            const bool known = std::any_of(config.bridges.begin(), config.bridges.end(),
                                           [&](const BridgeConfig& b) { return b.name == port.bridge; });
            if (!known) {
                findings.error(at("bridge"), port_key(i, "bridge"),
                               "unknown bridge '" + port.bridge + "' (not in bridges)");
            }
        }
        // Uniqueness (a value that failed to parse is not compared).
        if (!port.name.empty()) {
            duplicate(names, port.name, i, "name", "name '" + port.name + "'");
        }
        if (port.mac) {
            duplicate(macs, to_string(*port.mac), i, "mac", "MAC " + to_string(*port.mac));
        }
        if (lines.contains("ipv4") && !findings.has_error_for(port_key(i, "ipv4"))) {
            duplicate(addresses, port.ipv4.value, i, "ipv4", "address " + to_string(port.ipv4));
        }
        if (port.type == PortType::tap && !port.iface.empty()) {
            duplicate(ifaces, port.iface, i, "iface", "interface '" + port.iface + "'");
        }
        if (port.type == PortType::pci && !port.pci.empty()) {
            duplicate(pcis, port.pci, i, "pci", "PCI address " + port.pci);
        }
    }
}

void check_bridges(const ManagerConfig& config, const Layout& layout, internal::Findings& findings) {
    const unsigned bridges_line = line_in(layout.top, "bridges", 0);
    if (config.bridges.size() > k_max_bridges) {
        findings.error(bridges_line, "bridges",
                       std::to_string(config.bridges.size()) + " bridges, at most " + std::to_string(k_max_bridges));
    }
    std::map<std::string, std::size_t> names;
    for (std::size_t i = 0; i < config.bridges.size(); ++i) {
        const BridgeConfig& bridge = config.bridges[i];
        if (bridge.name.empty()) {
            continue;
        }
        const unsigned line = line_in(layout.bridges[i], "name", layout.bridge_lines[i]);
        const std::string key = "bridges[" + std::to_string(i) + "].name";
        const auto [it, inserted] = names.emplace(bridge.name, i);
        if (!inserted) {
            findings.error(line, key,
                           "name '" + bridge.name + "' is already used by bridges[" + std::to_string(it->second) + "]");
            continue;
        }
        const bool used = std::any_of(config.ports.begin(), config.ports.end(), [&](const PortConfig& p) {
            return p.type == PortType::user_veth && p.bridge == bridge.name;
        });
        if (!used) {
            findings.warn(line, key, "no port is plugged into bridge '" + bridge.name + "'");
        }
    }
}

void cross_check(ManagerConfig& config, const Layout& layout, internal::Findings& findings) {
    check_ports(config, layout, findings);
    check_bridges(config, layout, findings);

    const unsigned queues = total_queues(config);
    if (queues > config.fabric.max_queues) {
        const bool in_file = layout.fabric.contains("max_queues");
        findings.error(in_file ? line_in(layout.fabric, "max_queues", 0) : line_in(layout.top, "ports", 0),
                       in_file ? "fabric.max_queues" : "ports",
                       "the ports have " + std::to_string(queues) + " queues together, more than fabric.max_queues (" +
                           std::to_string(config.fabric.max_queues) + ")");
    }
    if (config.dpdk.socket_limit_mb != 0 && config.dpdk.socket_limit_mb < config.dpdk.memory_mb) {
        findings.error(line_in(layout.dpdk, "socket_limit_mb", line_in(layout.dpdk, "memory_mb", 0)),
                       "dpdk.socket_limit_mb",
                       std::to_string(config.dpdk.socket_limit_mb) + " is below dpdk.memory_mb (" +
                           std::to_string(config.dpdk.memory_mb) +
                           "): the memory mapped at start would not fit; raise it or lower memory_mb");
    }
    const auto& lcores = config.dpdk.app_lcores;
    if (std::find(lcores.begin(), lcores.end(), config.dpdk.main_lcore) != lcores.end()) {
        findings.error(line_in(layout.dpdk, "main_lcore", line_in(layout.dpdk, "app_lcores", 0)), "dpdk.main_lcore",
                       std::to_string(config.dpdk.main_lcore) + " is also in dpdk.app_lcores; the manager's lcore "
                                                                "must not be handed to an application");
    }
    if (lcores.size() < queues) {
        findings.error(line_in(layout.dpdk, "app_lcores", line_in(layout.top, "ports", 0)), "dpdk.app_lcores",
                       std::to_string(lcores.size()) + " lcore ids for " + std::to_string(queues) +
                           " queues; every queue's stack thread needs its own lcore id");
    }
    const auto& fabric = config.fabric;
    const unsigned cache_line = line_in(layout.fabric, "mbuf_cache_size", 0);
    // rte_mempool_create() refuses a cache whose flush threshold (1.5 x size) exceeds the pool.
    using Pool = std::pair<const char*, unsigned>;
    for (const auto& [pool, mbufs] :
         {Pool{"fabric.mbufs_per_queue", fabric.mbufs_per_queue}, Pool{"fabric.l2_pool_mbufs", fabric.l2_pool_mbufs}}) {
        if (fabric.mbuf_cache_size * 3 / 2 > mbufs) {
            findings.error(cache_line, "fabric.mbuf_cache_size",
                           std::to_string(fabric.mbuf_cache_size) + " is too large for " + pool + " = " +
                               std::to_string(mbufs) + " (DPDK needs 1.5 x the cache size to fit in the pool)");
        }
    }
}

template <typename T>
void read_section(const config_setting_t* setting, std::span<const KeySpec<T>> specs, T& target,
                  const std::string& name, internal::Source& source, internal::Findings& findings, Lines& lines) {
    if (config_setting_type(setting) != CONFIG_TYPE_GROUP) {
        findings.error(internal::line_of(setting), name,
                       std::string("wrong type: expected a group { ... }, got ") +
                           internal::type_name(config_setting_type(setting)));
        return;
    }
    internal::read_group<T>(setting, specs, target, name + ".", source, findings, lines);
}

// Reads `ports` or `bridges`: a list of groups.
template <typename T>
void read_list(const config_setting_t* setting, std::span<const KeySpec<T>> specs, std::vector<T>& out,
               std::vector<Lines>& lines, std::vector<unsigned>& group_lines, const std::string& name,
               internal::Source& source, internal::Findings& findings) {
    out.clear();
    if (config_setting_type(setting) != CONFIG_TYPE_LIST) {
        findings.error(internal::line_of(setting), name,
                       std::string("wrong type: expected a list of groups ( { ... }, { ... } ), got ") +
                           internal::type_name(config_setting_type(setting)));
        return;
    }
    const int count = config_setting_length(setting);
    for (int i = 0; i < count; ++i) {
        const config_setting_t* element = config_setting_get_elem(setting, static_cast<unsigned>(i));
        const std::string prefix = name + "[" + std::to_string(i) + "]";
        if (config_setting_type(element) != CONFIG_TYPE_GROUP) {
            findings.error(internal::line_of(element), prefix,
                           std::string("wrong type: expected a group { ... }, got ") +
                               internal::type_name(config_setting_type(element)));
            continue;
        }
        T item{};
        Lines item_lines;
        internal::read_group<T>(element, specs, item, prefix + ".", source, findings, item_lines);
        out.push_back(std::move(item));
        lines.push_back(std::move(item_lines));
        group_lines.push_back(internal::line_of(element));
    }
}

template <typename T>
std::string describe_list(std::string_view name, std::span<const KeySpec<T>> specs, const std::vector<T>& items) {
    std::string out = std::string(name) + " = (";
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += std::string(i == 0 ? "\n" : ",\n") + "    {\n" +
               internal::describe_group<T>(specs, items[i], "        ") + "    }";
    }
    return out + (items.empty() ? ");\n" : "\n);\n");
}

} // namespace

std::vector<unsigned> DpdkConfig::default_app_lcores() {
    std::vector<unsigned> ids;
    for (unsigned id = 1; id < k_max_lcores / 2; ++id) {
        ids.push_back(id);
    }
    return ids;
}

ManagerConfig default_manager_config() {
    ManagerConfig config;
    constexpr std::uint32_t subnet = (198u << 24) | (18u << 16); // 198.18.0.0/15 is for benchmarking (RFC 2544)
    config.ports = {
        PortConfig{.name = "veth0",
                   .type = PortType::user_veth,
                   .mac = MacAddr{{0x02, 0, 0, 0, 0, 0x01}},
                   .ipv4 = Ipv4{subnet | 1u},
                   .netmask = Ipv4{0xffffff00u},
                   .queues = 4,
                   .bridge = "br0"},
        PortConfig{.name = "veth1",
                   .type = PortType::user_veth,
                   .mac = MacAddr{{0x02, 0, 0, 0, 0, 0x02}},
                   .ipv4 = Ipv4{subnet | 2u},
                   .netmask = Ipv4{0xffffff00u},
                   .queues = 2,
                   .bridge = "br0"},
    };
    config.bridges = {BridgeConfig{.name = "br0"}};
    return config;
}

Result<ManagerConfig> parse_manager_config(const std::string& text, const std::string& file_name) {
    internal::Findings findings(file_name);
    internal::Source source;
    if (!internal::read_source(text, source, findings)) {
        return findings.to_error();
    }
    ManagerConfig config = default_manager_config();
    Layout layout;
    const config_setting_t* root = source.config.root();
    const int count = config_setting_length(root);
    bool ports_given = false;
    bool bridges_given = false;
    for (int i = 0; i < count; ++i) {
        const config_setting_t* setting = config_setting_get_elem(root, static_cast<unsigned>(i));
        const std::string name = config_setting_name(setting);
        layout.top[name] = internal::line_of(setting);
        if (name == "dpdk") {
            read_section<DpdkConfig>(setting, k_dpdk_keys, config.dpdk, name, source, findings, layout.dpdk);
        } else if (name == "fabric") {
            read_section<FabricConfig>(setting, k_fabric_keys, config.fabric, name, source, findings, layout.fabric);
        } else if (name == "manager") {
            read_section<DaemonConfig>(setting, k_manager_keys, config.manager, name, source, findings, layout.manager);
        } else if (name == "ports") {
            ports_given = true;
            read_list<PortConfig>(setting, k_port_keys, config.ports, layout.ports, layout.port_lines, name, source,
                                  findings);
            if (config.ports.empty() && config_setting_type(setting) == CONFIG_TYPE_LIST &&
                config_setting_length(setting) == 0) {
                findings.error(internal::line_of(setting), name, "at least one port is required");
            }
        } else if (name == "bridges") {
            bridges_given = true;
            read_list<BridgeConfig>(setting, k_bridge_keys, config.bridges, layout.bridges, layout.bridge_lines, name,
                                    source, findings);
        } else {
            findings.error(internal::line_of(setting), name, "unknown key" + internal::suggest(name, k_sections));
        }
    }
    // The default bridge belongs to the default ports.
    if (ports_given && !bridges_given) {
        config.bridges.clear();
    }
    layout.ports_given = ports_given;
    if (!ports_given) {
        layout.ports.assign(config.ports.size(), Lines{});
        layout.port_lines.assign(config.ports.size(), 0);
    }
    if (!bridges_given) {
        layout.bridges.assign(config.bridges.size(), Lines{});
        layout.bridge_lines.assign(config.bridges.size(), 0);
    }
    cross_check(config, layout, findings);
    internal::report_unread_overflows(source, findings);
    if (!findings.ok()) {
        return findings.to_error();
    }
    config.warnings = findings.warnings_by_line();
    return config;
}

Result<ManagerConfig> load_manager_config(const std::string& path) {
    auto text = internal::read_file(path);
    if (!text) {
        return text.error();
    }
    return parse_manager_config(*text, path);
}

std::string describe(const ManagerConfig& config) {
    std::string out = "// gazelle-mgr.conf: effective values\n";
    out += "dpdk: {\n" + internal::describe_group<DpdkConfig>(k_dpdk_keys, config.dpdk, "    ") + "};\n";
    out += "fabric: {\n" + internal::describe_group<FabricConfig>(k_fabric_keys, config.fabric, "    ") + "};\n";
    out += describe_list<PortConfig>("ports", k_port_keys, config.ports);
    out += describe_list<BridgeConfig>("bridges", k_bridge_keys, config.bridges);
    out += "manager: {\n" + internal::describe_group<DaemonConfig>(k_manager_keys, config.manager, "    ") + "};\n";
    return out;
}

const char* to_string(PortType type) {
    switch (type) {
    case PortType::user_veth:
        return "user-veth";
    case PortType::tap:
        return "tap";
    case PortType::pci:
        return "pci";
    }
    return "user-veth";
}

unsigned total_queues(const ManagerConfig& config) {
    unsigned total = 0;
    for (const auto& port : config.ports) {
        total += port.queues;
    }
    return total;
}

namespace internal {

std::vector<KeyInfo> manager_key_infos() {
    std::vector<KeyInfo> out;
    const ManagerConfig defaults = default_manager_config();
    for (const auto& spec : k_dpdk_keys) {
        out.push_back(key_info(spec, "dpdk.", defaults.dpdk));
    }
    for (const auto& spec : k_fabric_keys) {
        out.push_back(key_info(spec, "fabric.", defaults.fabric));
    }
    const PortConfig port_defaults{};
    for (const auto& spec : k_port_keys) {
        out.push_back(key_info(spec, "ports[].", port_defaults));
    }
    const BridgeConfig bridge_defaults{};
    for (const auto& spec : k_bridge_keys) {
        out.push_back(key_info(spec, "bridges[].", bridge_defaults));
    }
    for (const auto& spec : k_manager_keys) {
        out.push_back(key_info(spec, "manager.", defaults.manager));
    }
    return out;
}

} // namespace internal

} // namespace gazelle::conf
