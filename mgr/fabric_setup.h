// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// From gazelle-mgr.conf to a running DPDK primary: the EAL arguments, the fabric's parameters
// (ports resolved to DPDK devices), the ethdev start-up, and the pre-flight check that no other
// fabric uses the file prefix.
//
// Ports:
//   user-veth  a registry port of kind user_veth; bridge = index of its bridge in `bridges` + 1
//   tap        --vdev=net_tap<k>,iface=<iface>,mac=<mac> (k counts tap ports), then an ethdev port
//              configured with rx_ring_size/tx_ring_size descriptors and started
//   pci        allowed with -a <pci> (without any pci port EAL runs with --no-pci) and used as an
//              ethdev the same way; ENODEV when EAL has no ethdev for it (not bound to a DPDK
//              driver)
//
// Threading: main thread, around EAL init (no event loop yet).

#include <string>
#include <vector>

#include "conf/manager_config.h"
#include "conf/result.h"
#include "fabric/fabric.h"

namespace gazelle::mgr {

// The primary's EAL arguments, in order: --proc-type=primary --file-prefix --huge-dir
// --lcores=<main_lcore>@<main_cpu>, --no-pci or one -a per pci port, -m <memory_mb> when
// memory_mb is set, --single-file-segments unless extra_args has it, --socket-limit (one value
// per NUMA node) when socket_limit_mb is set, one --vdev per tap port, then dpdk.extra_args.
[[nodiscard]] std::vector<std::string> primary_eal_args(const conf::ManagerConfig& config, unsigned main_cpu,
                                                        unsigned numa_nodes = 1);

// The DPDK device name of each port: "net_tap<k>" for the k-th tap port, the PCI address for a
// pci port, "" for a user-veth port.
[[nodiscard]] std::vector<std::string> ethdev_device_names(const conf::ManagerConfig& config);

// After EAL init. Errors: ENODEV (EAL created no ethdev for a tap/pci port), EINVAL (a port name
// longer than the registry's 15 characters, more queues than the driver has, a bridge that does
// not exist).
[[nodiscard]] Result<fabric::FabricParams> fabric_params(const conf::ManagerConfig& config);

// After Fabric::create(): configures and starts every ethdev port (rx/tx descriptors from the
// port's rx_ring_size/tx_ring_size, MTU from its mtu). Returns the registry indexes started, to
// stop at shutdown (stop_ethdev_ports()). On error the ports already started are stopped.
[[nodiscard]] Result<std::vector<unsigned>> start_ethdev_ports(fabric::Fabric& fabric,
                                                               const conf::ManagerConfig& config);
void stop_ethdev_ports(fabric::Fabric& fabric, const std::vector<unsigned>& ports);

// DPDK's runtime directory of a file prefix: /var/run/dpdk/<prefix> for root, else
// $XDG_RUNTIME_DIR/dpdk/<prefix> (or /tmp/dpdk/<prefix>), as EAL computes it.
[[nodiscard]] std::string dpdk_runtime_dir(const std::string& file_prefix);

// Before EAL init. EBUSY when another DPDK primary holds the prefix ("another DPDK primary (pid
// N, 'gazelle-mgr') runs with file prefix 'P'..."), or when processes of an earlier fabric with
// this prefix still run (DPDK secondaries of a manager that died: a new primary cannot adopt
// their memory, see doc/manager.md "When the manager dies"); the message lists their pids.
[[nodiscard]] Result<void> check_file_prefix_free(const std::string& file_prefix);

// Pids of live processes that map the runtime files of `file_prefix` (DPDK processes of that
// fabric), found by their mp_socket_<pid>_* files; excludes this process.
[[nodiscard]] std::vector<pid_t> fabric_processes(const std::string& file_prefix);

// After rte_eal_cleanup() and only when no other process of the fabric is alive: removes the
// hugepage files <huge_dir>/<prefix>map_* and the runtime directory (EAL leaves both behind).
void remove_fabric_files(const std::string& file_prefix, const std::string& huge_dir);

} // namespace gazelle::mgr
