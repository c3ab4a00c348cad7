// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// gazelle-mgr.conf: the configuration of the manager daemon (the DPDK primary that owns ports,
// mbuf pools, the flow table and the inboxes, and assigns queues and lcores to applications).
//
// Sections: dpdk (EAL of the primary and the lcores/CPUs it hands to apps), fabric (sizes of the
// shared objects), ports (the NICs and virtual devices), bridges (user-veth switches) and manager
// (the daemon itself). Every limit is stated where it is enforced, in manager_config.cc, and in
// doc/config.md (generated from the same table).
//
// Thread and process model: plain functions without global state; they never print or exit.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "conf/diagnostic.h"
#include "conf/key_info.h"
#include "conf/log_level.h"
#include "conf/net_address.h"
#include "conf/result.h"

namespace gazelle::conf {

// Limits that are properties of the code, not of a file (the fabric's own constants in
// fabric/types.h must agree; conf/ is the leaf layer and cannot include them).
inline constexpr unsigned k_max_queues = 64;     // queue sets are 64-bit masks
inline constexpr unsigned k_max_lcores = 128;    // RTE_MAX_LCORE of Debian's DPDK 22.11
inline constexpr unsigned k_max_ports = 8;       // fabric::k_max_ports
inline constexpr unsigned k_max_tap_queues = 4;  // DPDK 22.11's tap PMD overflows its fd array above 4 queues
inline constexpr unsigned k_mbuf_headroom = 128; // RTE_PKTMBUF_HEADROOM
inline constexpr unsigned k_l2_overhead = 18;    // Ethernet header plus one VLAN tag

struct DpdkConfig {
    std::string file_prefix = "gazelle";                     // EAL --file-prefix, shared by manager and apps
    std::string huge_dir = "/mnt/gazelle-huge";              // EAL --huge-dir (a hugetlbfs mount)
    unsigned main_lcore = 0;                                 // the manager's own lcore id
    std::vector<unsigned> app_lcores = default_app_lcores(); // lcore ids handed out to stack threads
    std::vector<unsigned> app_cpus = {0, 1};                 // CPUs those stack threads may run on
    std::vector<std::string> extra_args;                     // more EAL arguments of the primary
    unsigned socket_limit_mb = 0;                            // EAL --socket-limit per NUMA node; 0: no limit
    // Hugepage memory EAL maps at start and never returns (-m: preallocated, pinned); beyond it,
    // and with 0, EAL's dynamic memory maps and frees pages at run time and synchronises every
    // secondary each time.
    unsigned memory_mb = 512;

    static std::vector<unsigned> default_app_lcores();
    bool operator==(const DpdkConfig&) const = default;
};

struct FabricConfig {
    unsigned max_queues = 16;               // queue slots over all ports (<= 64)
    unsigned ring_size = 1024;              // slots of each per-producer inbox lane (power of two)
    unsigned flow_table_size = 65536;       // entries of the shared 5-tuple hash (power of two)
    unsigned listener_table_size = 1024;    // entries of the listener table (power of two)
    unsigned mbufs_per_queue = 8191;        // mbufs of each queue's pool (2^n - 1 is optimal)
    unsigned mbuf_cache_size = 256;         // per-lcore cache of every pool
    unsigned mbuf_data_room = 2176;         // bytes per mbuf including headroom (RTE_MBUF_DEFAULT_BUF_SIZE)
    unsigned l2_pool_mbufs = 16383;         // mbufs of the fabric's L2 pool (stacks whose own pool is low)
    unsigned l2_low_watermark_percent = 10; // low watermark of every pool: L1 -> use L2; L2 -> shed ARP work

    bool operator==(const FabricConfig&) const = default;
};

enum class PortType {
    user_veth, // "user-veth": a software port between apps on this host (one end of a bridge)
    tap,       // "tap": a DPDK tap device, the kernel sees interface `iface`
    pci,       // "pci": a NIC bound to a DPDK driver, at address `pci`
};

struct PortConfig {
    std::string name;
    PortType type = PortType::user_veth;
    std::optional<MacAddr> mac; // required except for pci ports (unset: the NIC's own)
    Ipv4 ipv4;
    Ipv4 netmask;
    std::optional<Ipv4> gateway;
    unsigned queues = 1;
    unsigned rx_ring_size = 1024;
    unsigned tx_ring_size = 1024;
    unsigned mtu = 1500;
    std::string bridge;                // user-veth: the bridge it is plugged into ("" = none)
    std::string iface;                 // tap: kernel interface name
    std::string pci;                   // pci: "0000:03:00.0"
    std::vector<std::uint8_t> rss_key; // 40 bytes, or empty for the PMD's default key

    bool operator==(const PortConfig&) const = default;
};

struct BridgeConfig {
    std::string name;

    bool operator==(const BridgeConfig&) const = default;
};

struct DaemonConfig {
    std::string socket = "/run/gazelle/mgr.sock"; // apps connect here (lstack.conf mgr_socket)
    std::string bus = "system";                   // "system", "session" or "unix:path=..."
    unsigned max_apps = 32;
    unsigned heartbeat_timeout_ms = 3000; // an app silent this long is considered dead
    unsigned reclaim_timeout_ms = 1000;   // time a dead app's queues get to drain before reuse
    LogLevel log_level = LogLevel::info;

    bool operator==(const DaemonConfig&) const = default;
};

struct ManagerConfig {
    DpdkConfig dpdk;
    FabricConfig fabric;
    std::vector<PortConfig> ports;
    std::vector<BridgeConfig> bridges;
    DaemonConfig manager;

    // Keys accepted with a warning, by line.
    std::vector<Diagnostic> warnings;

    bool operator==(const ManagerConfig&) const = default;
};

inline constexpr const char* k_default_manager_config_path = "/etc/gazelle/gazelle-mgr.conf";

// The built-in configuration, identical to what the shipped conf/gazelle-mgr.conf states: two
// user-veth ports on bridge "br0": "veth0" 198.18.0.1/24 with 4 queues (servers) and "veth1"
// 198.18.0.2/24 with 2 queues (clients).
[[nodiscard]] ManagerConfig default_manager_config();

// Loads and validates a file. Keys left out keep their defaults; a `ports` list replaces the
// default ports (and, when `bridges` is absent, the default bridge too).
// Errors: the errno of open/read with "cannot open 'path': ...", or EINVAL with every finding as
// "path:line: key: reason", one per line.
[[nodiscard]] Result<ManagerConfig> load_manager_config(const std::string& path);
// The same for text in memory; `file_name` labels the findings.
[[nodiscard]] Result<ManagerConfig> parse_manager_config(const std::string& text, const std::string& file_name);

// The effective values in libconfig syntax (loading the result gives the same config, minus warnings).
[[nodiscard]] std::string describe(const ManagerConfig& config);

[[nodiscard]] const char* to_string(PortType type);
// Total queues of all ports.
[[nodiscard]] unsigned total_queues(const ManagerConfig& config);

} // namespace gazelle::conf
