// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/fabric_setup.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <rte_ethdev.h>

#include "fabric/eal.h"
#include "fabric/port_io.h"
#include "fabric/softrss.h"
#include "fabric/unique_fd.h"
#include "mgr/log.h"
#include "mgr/procfs.h"

namespace gazelle::mgr {

namespace fs = std::filesystem;
using conf::PortType;

namespace {

std::string process_label(pid_t pid) {
    const std::string name = process_name(pid);
    return name.empty() ? "?" : name;
}

std::string pid_list(const std::vector<pid_t>& pids) {
    std::string out;
    for (pid_t pid : pids) {
        out += (out.empty() ? "" : ", ") + std::to_string(pid) + " '" + process_label(pid) + "'";
    }
    return out;
}

template <std::size_t N> void copy_name(char (&out)[N], const std::string& name) {
    const std::size_t n = std::min(name.size(), N - 1);
    std::memcpy(out, name.data(), n);
    out[n] = '\0';
}

Result<fabric::PortSpec> ethdev_spec(const conf::PortConfig& port, const std::string& device) {
    fabric::PortSpec spec;
    const std::string what =
        "port '" + port.name + "' (" + conf::to_string(port.type) + ", DPDK device '" + device + "')";
    std::uint16_t port_id = 0;
    if (rte_eth_dev_get_port_by_name(device.c_str(), &port_id) != 0) {
        return make_error(ENODEV, port.type == PortType::pci
                                      ? what +
                                            ": EAL has no ethdev for it; is the NIC bound to a DPDK driver "
                                            "(dpdk-devbind.py -b vfio-pci " +
                                            port.pci + ")?"
                                      : what + ": EAL did not create it (see its messages above)");
    }
    auto info = fabric::ethdev_info(port_id);
    if (!info) {
        return info.error();
    }
    if (port.queues > info->max_rx_queues || port.queues > info->max_tx_queues) {
        return make_error(EINVAL, what + ": " + std::to_string(port.queues) + " queues, the driver " + info->driver +
                                      " has at most " +
                                      std::to_string(std::min(info->max_rx_queues, info->max_tx_queues)));
    }
    if (port.mac && port.type == PortType::pci) {
        rte_ether_addr mac{};
        std::memcpy(mac.addr_bytes, port.mac->bytes.data(), sizeof mac.addr_bytes);
        if (const int rc = rte_eth_dev_default_mac_addr_set(port_id, &mac); rc != 0) {
            return make_error(-rc, "Failed to set the MAC of " + what + " to " + conf::to_string(*port.mac) + ": " +
                                       rte_strerror(-rc));
        }
    }
    rte_ether_addr mac{};
    if (const int rc = rte_eth_macaddr_get(port_id, &mac); rc != 0) {
        return make_error(-rc, "Failed to get the MAC of " + what + ": " + rte_strerror(-rc));
    }
    std::memcpy(spec.mac, mac.addr_bytes, sizeof spec.mac);
    spec.kind = fabric::PortKind::ethdev;
    spec.dpdk_port_id = port_id;
    return spec;
}

} // namespace

std::vector<std::string> ethdev_device_names(const conf::ManagerConfig& config) {
    std::vector<std::string> names;
    unsigned taps = 0;
    for (const conf::PortConfig& port : config.ports) {
        switch (port.type) {
        case PortType::user_veth:
            names.emplace_back();
            break;
        case PortType::tap:
            names.push_back("net_tap" + std::to_string(taps++));
            break;
        case PortType::pci:
            names.push_back(port.pci);
            break;
        }
    }
    return names;
}

std::vector<std::string> primary_eal_args(const conf::ManagerConfig& config, unsigned main_cpu, unsigned numa_nodes) {
    const conf::DpdkConfig& dpdk = config.dpdk;
    std::vector<std::string> args = {
        "--proc-type=primary",
        "--file-prefix=" + dpdk.file_prefix,
        "--huge-dir=" + dpdk.huge_dir,
        "--lcores=" + std::to_string(dpdk.main_lcore) + "@" + std::to_string(main_cpu),
    };
    const bool any_pci = std::any_of(config.ports.begin(), config.ports.end(),
                                     [](const conf::PortConfig& p) { return p.type == PortType::pci; });
    if (!any_pci) {
        args.emplace_back("--no-pci");
    }
    if (dpdk.memory_mb != 0) {
        // Preallocated memory: these pages are mapped here, before any app, and pinned (EAL's
        // dynamic mode never frees what -m reserved). Each page mapped or freed later (an app's
        // lwIP memory at attach, its release at reclaim) is an mp_malloc_sync with every
        // secondary; one that is slow or dying made the others wait up to 5 s, neighbour stacks
        // included (doc/reliability.md). Not --legacy-mem: that maps every free hugepage of the
        // huge dir at start (12 GiB here: 3 s warm, over 30 s on a fresh VM) and leaves each app
        // one descriptor per page.
        args.push_back("-m");
        args.push_back(std::to_string(dpdk.memory_mb));
    }
    // One hugepage file per memseg list instead of one per page: an attached app then holds a
    // handful of DPDK descriptors, not one per 2 MiB page (hundreds with memory_mb), which pushes
    // its own descriptors up (wrk refuses fd numbers above its connection count).
    if (std::find(dpdk.extra_args.begin(), dpdk.extra_args.end(), "--single-file-segments") == dpdk.extra_args.end()) {
        args.emplace_back("--single-file-segments");
    }
    if (dpdk.socket_limit_mb != 0) {
        std::string limits;
        for (unsigned node = 0; node < std::max(1u, numa_nodes); ++node) {
            limits += (node == 0 ? "" : ",") + std::to_string(dpdk.socket_limit_mb);
        }
        args.push_back("--socket-limit=" + limits);
    }
    const auto devices = ethdev_device_names(config);
    for (std::size_t i = 0; i < config.ports.size(); ++i) {
        const conf::PortConfig& port = config.ports[i];
        if (port.type == PortType::pci) {
            args.emplace_back("-a");
            args.push_back(port.pci);
        } else if (port.type == PortType::tap) {
            std::string vdev = "--vdev=" + devices[i] + ",iface=" + port.iface;
            if (port.mac) {
                vdev += ",mac=" + conf::to_string(*port.mac);
            }
            args.push_back(vdev);
        }
    }
    // Apps map the hugepages at the manager's addresses: fabric::k_base_virtaddr_arg says
    // where and why. A --base-virtaddr in extra_args wins.
    const bool base_given = std::any_of(dpdk.extra_args.begin(), dpdk.extra_args.end(), [](const std::string& a) {
        return a.rfind("--base-virtaddr", 0) == 0;
    });
    if (!base_given) {
        args.emplace_back(fabric::k_base_virtaddr_arg);
    }
    args.insert(args.end(), dpdk.extra_args.begin(), dpdk.extra_args.end());
    return args;
}

Result<fabric::FabricParams> fabric_params(const conf::ManagerConfig& config) {
    fabric::FabricParams params;
    const conf::FabricConfig& f = config.fabric;
    params.max_queues = f.max_queues;
    params.forward_lane_capacity = f.ring_size;
    params.flows.rules = f.flow_table_size;
    // The listener table holds at most 65535 sets (its indexes are 16-bit with 0 = none).
    params.flows.listeners = std::min(f.listener_table_size, 65535u);
    params.pool.mbufs = f.mbufs_per_queue;
    params.pool.cache_size = f.mbuf_cache_size;
    params.pool.data_room = static_cast<std::uint16_t>(f.mbuf_data_room);
    params.l2_pool_mbufs = f.l2_pool_mbufs;
    params.low_watermark_percent = f.l2_low_watermark_percent;
    params.grace_timeout = std::chrono::milliseconds(config.manager.reclaim_timeout_ms);
    unsigned rx_lanes = 64;
    const auto devices = ethdev_device_names(config);
    for (std::size_t i = 0; i < config.ports.size(); ++i) {
        const conf::PortConfig& port = config.ports[i];
        fabric::PortSpec spec;
        if (port.name.empty() || port.name.size() >= sizeof spec.name) {
            return make_error(EINVAL, "port '" + port.name + "': the fabric's registry keeps names of 1.." +
                                          std::to_string(sizeof spec.name - 1) + " characters");
        }
        if (port.type == PortType::user_veth) {
            spec.kind = fabric::PortKind::user_veth;
            if (port.mac) {
                std::memcpy(spec.mac, port.mac->bytes.data(), sizeof spec.mac);
            }
            if (!port.bridge.empty()) {
                const auto it = std::find_if(config.bridges.begin(), config.bridges.end(),
                                             [&](const conf::BridgeConfig& b) { return b.name == port.bridge; });
                if (it == config.bridges.end()) {
                    return make_error(EINVAL, "port '" + port.name + "': bridge '" + port.bridge + "' does not exist");
                }
                spec.bridge = static_cast<std::uint8_t>(it - config.bridges.begin() + 1);
            }
            rx_lanes = std::max(rx_lanes, port.rx_ring_size);
        } else {
            auto ethdev = ethdev_spec(port, devices[i]);
            if (!ethdev) {
                return ethdev.error();
            }
            spec = *ethdev;
        }
        copy_name(spec.name, port.name);
        spec.nb_queues = static_cast<std::uint16_t>(port.queues);
        spec.mtu = static_cast<std::uint16_t>(port.mtu);
        spec.ipv4 = htonl(port.ipv4.value);
        spec.netmask = htonl(port.netmask.value);
        spec.gateway = port.gateway ? htonl(port.gateway->value) : 0;
        if (port.rss_key.size() == sizeof spec.rss_key) {
            std::memcpy(spec.rss_key, port.rss_key.data(), sizeof spec.rss_key);
        } else {
            std::memcpy(spec.rss_key, fabric::k_default_rss_key.data(), sizeof spec.rss_key);
        }
        params.ports.push_back(spec);
    }
    params.rx_lane_capacity = rx_lanes;
    return params;
}

Result<std::vector<unsigned>> start_ethdev_ports(fabric::Fabric& fabric, const conf::ManagerConfig& config) {
    std::vector<unsigned> started;
    fabric::Registry& registry = fabric.registry();
    for (unsigned index = 0; index < registry.layout().nb_ports && index < config.ports.size(); ++index) {
        const fabric::PortEntry& entry = registry.port(index);
        if (entry.kind != fabric::PortKind::ethdev) {
            continue;
        }
        const conf::PortConfig& port = config.ports[index];
        const fabric::EthdevParams params{static_cast<std::uint16_t>(port.rx_ring_size),
                                          static_cast<std::uint16_t>(port.tx_ring_size)};
        auto info = fabric::start_ethdev_port(registry, index, params);
        if (!info) {
            stop_ethdev_ports(fabric, started);
            return info.error();
        }
        started.push_back(index);
        std::uint16_t mtu = 0;
        if (rte_eth_dev_get_mtu(entry.dpdk_port_id, &mtu) == 0 && mtu != port.mtu) {
            if (const int rc = rte_eth_dev_set_mtu(entry.dpdk_port_id, static_cast<std::uint16_t>(port.mtu)); rc != 0) {
                log_warning("Failed to set the MTU of port '%s' to %u: %s, keeping %u", port.name.c_str(), port.mtu,
                            rte_strerror(-rc), mtu);
            }
        }
        log_info("Started port '%s' (%s, DPDK port %u, driver %s, %u queues)", port.name.c_str(),
                 conf::to_string(port.type), entry.dpdk_port_id, info->driver.c_str(), entry.nb_queues);
    }
    return started;
}

void stop_ethdev_ports(fabric::Fabric& fabric, const std::vector<unsigned>& ports) {
    for (auto it = ports.rbegin(); it != ports.rend(); ++it) {
        fabric::stop_ethdev_port(fabric.registry(), *it);
    }
}

std::string dpdk_runtime_dir(const std::string& file_prefix) {
    std::string base = "/var/run";
    if (getuid() != 0) {
        const char* xdg = std::getenv("XDG_RUNTIME_DIR");
        base = xdg != nullptr && xdg[0] != '\0' ? xdg : "/tmp";
    }
    return base + "/dpdk/" + file_prefix;
}

std::vector<pid_t> fabric_processes(const std::string& file_prefix) {
    const std::string runtime = dpdk_runtime_dir(file_prefix);
    std::vector<pid_t> pids;
    std::error_code ec;
    // /proc/<pid>/maps names files by their real path (/var/run is a link to /run on most systems).
    const fs::path real = fs::canonical(runtime, ec);
    if (ec) {
        return pids;
    }
    const std::string mapped_as = real.string();
    for (const auto& entry : fs::directory_iterator(runtime, ec)) {
        // EAL's multi-process channel: "mp_socket" (primary), "mp_socket_<pid>_<tsc>" (secondaries).
        const std::string name = entry.path().filename().string();
        constexpr std::string_view k_prefix = "mp_socket_";
        if (name.rfind(k_prefix, 0) != 0) {
            continue;
        }
        const long pid = std::strtol(name.c_str() + k_prefix.size(), nullptr, 10);
        if (pid <= 0 || pid == getpid() || ::kill(static_cast<pid_t>(pid), 0) != 0) {
            continue; // a stale file of a dead process
        }
        // The pid may have been reused: it counts only if it maps this fabric's runtime files.
        const std::string text = read_text_file("/proc/" + std::to_string(pid) + "/maps", 64u << 20);
        if (text.find(mapped_as + "/") != std::string::npos) {
            pids.push_back(static_cast<pid_t>(pid));
        }
    }
    std::sort(pids.begin(), pids.end());
    return pids;
}

Result<void> check_file_prefix_free(const std::string& file_prefix) {
    const std::string runtime = dpdk_runtime_dir(file_prefix);
    // A live primary holds a write lock on <runtime>/config (eal.c rte_eal_config_create()).
    fabric::UniqueFd config(open((runtime + "/config").c_str(), O_RDONLY | O_CLOEXEC));
    if (config) {
        struct flock lock {};
        lock.l_type = F_WRLCK;
        lock.l_whence = SEEK_SET;
        if (fcntl(config.get(), F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK) {
            return make_error(EBUSY, "another DPDK primary (pid " + std::to_string(lock.l_pid) + " '" +
                                         process_label(lock.l_pid) + "') runs with file prefix '" + file_prefix +
                                         "': is gazelle-mgr already running? Stop it, or set another "
                                         "dpdk.file_prefix");
        }
    }
    const auto survivors = fabric_processes(file_prefix);
    if (!survivors.empty()) {
        return make_error(EBUSY, std::to_string(survivors.size()) +
                                     " process(es) of an earlier fabric with file prefix '" + file_prefix +
                                     "' still run (pids " + pid_list(survivors) +
                                     "): a new manager cannot adopt their shared memory (doc/manager.md, \"When the "
                                     "manager dies\"). Stop them first, or set another dpdk.file_prefix");
    }
    return {};
}

void remove_fabric_files(const std::string& file_prefix, const std::string& huge_dir) {
    std::error_code ec;
    unsigned removed = 0;
    const std::string page_prefix = file_prefix + "map_";
    for (const auto& entry : fs::directory_iterator(huge_dir, ec)) {
        if (entry.path().filename().string().rfind(page_prefix, 0) == 0 && fs::remove(entry.path(), ec)) {
            ++removed;
        }
    }
    fs::remove_all(dpdk_runtime_dir(file_prefix), ec);
    if (removed != 0) {
        log_debug("Removed %u hugepage files of file prefix '%s'", removed, file_prefix.c_str());
    }
}

} // namespace gazelle::mgr
