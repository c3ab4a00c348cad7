// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// What gazelle-mgr's D-Bus object shows, as plain data, and where it comes from.
//
// The D-Bus layer (mgr/bus.h) never reads shared memory itself: it asks a BusBackend for
// snapshots (the apps, the queue table, the flow rules, the counters, the memory), joins and
// filters them, and encodes them as D-Bus structs. ManagerBackend (mgr/bus_backend.cc) answers
// from a live Manager; tests answer from canned data (tests/mgr/bus_fake_backend.h), so the whole
// D-Bus API runs without DPDK. The wire format of every member is in doc/dbus-api.md.
//
// Threading: the event-loop thread only, like the Manager.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "conf/result.h"
#include "fabric/flow_table.h"
#include "fabric/memp_registry.h"
#include "fabric/registry.h"
#include "mgr/manager.h"

namespace gazelle::mgr {

// The bus names (doc/dbus-api.md).
inline constexpr char k_bus_name[] = "org.openeuler.Gazelle1";
inline constexpr char k_bus_path[] = "/org/openeuler/Gazelle1";
inline constexpr char k_bus_interface[] = "org.openeuler.Gazelle1.Manager";
inline constexpr char k_bus_error_no_such_app[] = "org.openeuler.Gazelle1.Error.NoSuchApp";

// Longest ListRules filter accepted (longer: InvalidArgs, not parsed).
inline constexpr std::size_t k_max_filter_bytes = 1024;

// One port, as the Ports property shows it.
struct PortInfo {
    std::string name;
    std::string type;    // "user-veth", "tap", "pci" (conf::to_string(PortType)) or "ethdev"
    std::string mac;     // "02:00:00:00:00:01"
    std::string address; // "198.18.0.1/24"
    fabric::QueueSlot first_slot = 0;
    std::uint16_t queues = 0;
};

struct BusProperties {
    std::string version;
    std::string file_prefix;
    std::string huge_dir;
    std::vector<PortInfo> ports;
    unsigned max_apps = 0;
    unsigned max_queues = 0;
};

// One entry of the queue table (fabric::QueueEntry, read once).
struct QueueInfo {
    fabric::QueueSlot slot = 0;
    unsigned port = 0; // index into BusProperties::ports
    std::uint16_t hw_queue = 0;
    fabric::QueueState state = fabric::QueueState::free;
    std::int32_t owner_pid = 0;
    fabric::Epoch epoch = 0;
    std::uint16_t lcore = 0;
    std::uint64_t heartbeat = 0;
    bool parked = false;
};

struct SlotStats {
    fabric::QueueSlot slot = 0;
    fabric::QueueStats counters{};
};

struct StatsSnapshot {
    std::uint64_t timestamp_usec = 0; // CLOCK_MONOTONIC when the counters were read
    std::vector<SlotStats> queues;    // every slot in use
    fabric::FlowTableStats flows{};
    std::uint32_t flow_capacity = 0;
};

// One mbuf pool (one per queue slot).
struct PoolInfo {
    std::string name;
    fabric::QueueSlot slot = fabric::k_no_queue;
    unsigned size = 0;      // mbufs
    unsigned available = 0; // in the ring and every lcore cache
    unsigned in_use = 0;
    unsigned element_size = 0; // bytes per mbuf: object header + mbuf + private area + data room
    std::uint64_t bytes = 0;   // hugepage memory the pool's objects occupy
};

struct MemzoneInfo {
    std::string name;
    std::uint64_t bytes = 0;
};

struct HugepageInfo {
    std::uint64_t page_size = 0;      // bytes
    std::uint64_t mapped = 0;         // hugepage memory DPDK holds for the fabric (all processes)
    std::uint64_t heap_allocated = 0; // of that, allocated (memzones, pools, rte_malloc)
    std::uint64_t heap_free = 0;      // of that, free in DPDK's heaps
    std::uint64_t system_total = 0;   // the host's hugepages of page_size (/proc/meminfo)
    std::uint64_t system_free = 0;
};

struct MemorySnapshot {
    std::vector<PoolInfo> pools;
    std::vector<fabric::MempInfo> memps;
    std::vector<MemzoneInfo> memzones;
    HugepageInfo hugepages;
};

// The data source of the D-Bus object. Every call is a fresh snapshot; none may block for long.
class BusBackend {
public:
    virtual ~BusBackend() = default;
    virtual BusProperties properties() = 0;
    virtual std::vector<AppRecord> apps() = 0;
    virtual std::vector<QueueInfo> queues() = 0;
    virtual Result<std::vector<fabric::FlowRule>> rules() = 0;
    virtual StatsSnapshot stats() = 0;
    virtual MemorySnapshot memory() = 0;
    // Mutating: Manager::reclaim_app(). ENOENT when no app has that pid.
    virtual Result<AppGone> reclaim(pid_t pid) = 0;
};

// --- ListRules filters ------------------------------------------------------------------------

// "pid=123 slot=2 port=80" (space or comma separated; every term must match). Keys:
//   pid=N     connection owned by pid N, or listener with a queue of pid N in its set
//   slot=N    connection owned by slot N, or listener with slot N in its set
//   port=N    local or remote port N;  lport=N / rport=N: only the local / remote port
//   ip=A.B.C.D local or remote address; lip= / rip=: only the local / remote address
//   proto=tcp|udp   kind=connection|listener
// "" matches everything.
struct RuleFilter {
    std::optional<pid_t> pid;
    std::optional<fabric::QueueSlot> slot;
    std::optional<std::uint16_t> port;
    std::optional<std::uint16_t> local_port;
    std::optional<std::uint16_t> remote_port;
    std::optional<std::uint32_t> ip; // host byte order
    std::optional<std::uint32_t> local_ip;
    std::optional<std::uint32_t> remote_ip;
    std::optional<std::uint8_t> proto;
    std::optional<fabric::FlowKeyKind> kind;

    bool empty() const;
};

// Errors (EINVAL): the message names the bad term and says what is expected, e.g.
// "bad filter term 'prot=tcp': unknown key 'prot' (keys: pid, slot, port, ...)".
[[nodiscard]] Result<RuleFilter> parse_rule_filter(std::string_view text);

// `pid_of_slot[s]` is the owner pid of queue slot s (0 when free), for pid= terms.
[[nodiscard]] bool rule_matches(const RuleFilter& filter, const fabric::FlowRule& rule,
                                const std::vector<std::int32_t>& pid_of_slot);

// --- names on the wire ------------------------------------------------------------------------

[[nodiscard]] const char* queue_state_name(fabric::QueueState state); // "free", "owned", "draining"
[[nodiscard]] std::string proto_name(std::uint8_t proto);             // "tcp", "udp" or the number
[[nodiscard]] std::string ipv4_name(std::uint32_t network_order);     // "198.18.0.1"
// How an app ended, as AppDetached / AppCrashed carry it: "detached", "exited", "hung", "forced".
[[nodiscard]] const char* app_end_name(AppEnd end);
// AppDetached for a clean detach; AppCrashed for every other end (exited, hung, forced).
[[nodiscard]] bool is_crash(AppEnd end);

} // namespace gazelle::mgr
