// SPDX-License-Identifier: BSD-3-Clause
// ManagerBackend: the D-Bus object's data, read from a live Manager (its public API) and from
// DPDK's memory bookkeeping of this primary.
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>

#include <arpa/inet.h>

#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_memzone.h>

#include "conf/net_address.h"
#include "mgr/bus.h"
#include "mgr/manager.h"

#ifndef GAZELLE_VERSION
#define GAZELLE_VERSION "unknown"
#endif

namespace gazelle::mgr {
namespace {

std::uint64_t load(const std::uint64_t& counter) {
    return __atomic_load_n(&counter, __ATOMIC_RELAXED);
}

// A field-by-field relaxed read of counters the owning stack keeps writing.
fabric::QueueStats snapshot(const fabric::QueueStats& c) {
    fabric::QueueStats s{};
    s.rx_packets = load(c.rx_packets);
    s.rx_bytes = load(c.rx_bytes);
    s.tx_packets = load(c.tx_packets);
    s.tx_bytes = load(c.tx_bytes);
    s.forwarded_out = load(c.forwarded_out);
    s.forwarded_in = load(c.forwarded_in);
    s.arp_fanout = load(c.arp_fanout);
    s.local = load(c.local);
    s.drop_inbox_full = load(c.drop_inbox_full);
    s.drop_no_owner = load(c.drop_no_owner);
    s.drop_owner_gone = load(c.drop_owner_gone);
    s.drop_malformed = load(c.drop_malformed);
    s.drop_tx_full = load(c.drop_tx_full);
    s.drop_alloc_failed = load(c.drop_alloc_failed);
    s.drop_table_full = load(c.drop_table_full);
    s.connections = load(c.connections);
    s.adopted_rx_packets = load(c.adopted_rx_packets);
    s.adopted_rx_bytes = load(c.adopted_rx_bytes);
    s.adopted_queues = load(c.adopted_queues);
    s.l2_allocs = load(c.l2_allocs);
    s.l2_alloc_failed = load(c.l2_alloc_failed);
    s.l2_shed = load(c.l2_shed);
    return s;
}

std::string mac_name(const std::uint8_t (&mac)[6]) {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return text;
}

std::string fixed_string(const char* text, std::size_t size) {
    return std::string(text, strnlen(text, size));
}

PoolInfo pool_info(const rte_mempool* mp, fabric::QueueSlot slot) {
    const fabric::PoolUsage usage = fabric::pool_usage(mp);
    PoolInfo p;
    p.name = fixed_string(mp->name, sizeof mp->name);
    p.slot = slot;
    p.size = usage.size;
    p.available = usage.available;
    p.in_use = usage.in_use;
    p.element_size = mp->header_size + mp->elt_size + mp->trailer_size;
    std::uint64_t bytes = 0;
    rte_mempool_mem_iter(
        const_cast<rte_mempool*>(mp),
        [](rte_mempool*, void* opaque, rte_mempool_memhdr* memhdr, unsigned) {
            *static_cast<std::uint64_t*>(opaque) += memhdr->len;
        },
        &bytes);
    p.bytes = bytes;
    return p;
}

// HugePages_Total / HugePages_Free / Hugepagesize of /proc/meminfo.
void read_meminfo(HugepageInfo& h) {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::uint64_t total = 0;
    std::uint64_t free = 0;
    std::uint64_t page_kib = 0;
    while (meminfo >> key) {
        std::uint64_t value = 0;
        meminfo >> value;
        if (key == "HugePages_Total:") {
            total = value;
        } else if (key == "HugePages_Free:") {
            free = value;
        } else if (key == "Hugepagesize:") {
            page_kib = value;
        }
        meminfo.ignore(256, '\n');
    }
    if (h.page_size == 0) {
        h.page_size = page_kib * 1024;
    }
    if (page_kib * 1024 == h.page_size) {
        h.system_total = total * h.page_size;
        h.system_free = free * h.page_size;
    }
}

class ManagerBackend final : public BusBackend {
public:
    explicit ManagerBackend(Manager& manager) : manager_(manager) {}

    BusProperties properties() override {
        const conf::ManagerConfig& config = manager_.config();
        fabric::Registry& registry = manager_.fabric().registry();
        BusProperties p;
        p.version = GAZELLE_VERSION;
        p.file_prefix = config.dpdk.file_prefix;
        p.huge_dir = config.dpdk.huge_dir;
        p.max_apps = config.manager.max_apps;
        p.max_queues = registry.layout().max_queues;
        for (unsigned i = 0; i < registry.layout().nb_ports && i < fabric::k_max_ports; ++i) {
            const fabric::PortEntry& e = registry.port(i);
            PortInfo port;
            port.name = fixed_string(e.name, sizeof e.name);
            port.type = e.kind == fabric::PortKind::user_veth ? "user-veth" : "ethdev";
            for (const conf::PortConfig& c : config.ports) {
                if (c.name == port.name) {
                    port.type = conf::to_string(c.type);
                }
            }
            port.mac = mac_name(e.mac);
            port.address = ipv4_name(e.ipv4) + "/" + std::to_string(conf::prefix_length(conf::Ipv4{ntohl(e.netmask)}));
            port.first_slot = e.first_slot;
            port.queues = e.nb_queues;
            p.ports.push_back(std::move(port));
        }
        return p;
    }

    std::vector<AppRecord> apps() override {
        std::vector<AppRecord> out;
        for (const auto& [pid, app] : manager_.apps()) {
            out.push_back(app);
        }
        return out;
    }

    std::vector<QueueInfo> queues() override {
        fabric::Registry& registry = manager_.fabric().registry();
        std::vector<QueueInfo> out;
        for (fabric::QueueSlot s = 0; s < registry.nb_slots() && s < fabric::k_max_queues; ++s) {
            const fabric::QueueEntry& q = registry.queue(s);
            QueueInfo info;
            info.slot = s;
            info.port = q.port;
            info.hw_queue = q.hw_queue;
            info.state = q.state.load(std::memory_order_acquire);
            info.owner_pid = q.owner_pid.load(std::memory_order_relaxed);
            info.epoch = q.epoch.load(std::memory_order_relaxed);
            info.lcore = q.lcore_id.load(std::memory_order_relaxed);
            info.heartbeat = q.heartbeat.load(std::memory_order_relaxed);
            info.parked = q.parked.load(std::memory_order_relaxed) != 0;
            out.push_back(info);
        }
        return out;
    }

    Result<std::vector<fabric::FlowRule>> rules() override { return manager_.fabric().flows().rules(); }

    StatsSnapshot stats() override {
        fabric::Fabric& fabric = manager_.fabric();
        StatsSnapshot s;
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        s.timestamp_usec =
            static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
        for (fabric::QueueSlot slot = 0; slot < fabric.registry().nb_slots() && slot < fabric::k_max_queues; ++slot) {
            s.queues.push_back(SlotStats{slot, snapshot(fabric.registry().stats(slot))});
        }
        s.flows = fabric.flows().stats();
        s.flow_capacity = fabric.flows().capacity();
        return s;
    }

    MemorySnapshot memory() override {
        fabric::Fabric& fabric = manager_.fabric();
        MemorySnapshot m;
        for (fabric::QueueSlot slot = 0; slot < fabric.registry().nb_slots() && slot < fabric::k_max_queues; ++slot) {
            if (const rte_mempool* mp = fabric.pool(slot); mp != nullptr) {
                m.pools.push_back(pool_info(mp, slot));
            }
        }
        if (const rte_mempool* mp = fabric.l2_pool(); mp != nullptr) {
            m.pools.push_back(pool_info(mp, fabric::k_no_queue)); // the fabric's, no queue's
        }
        m.memps = fabric.memps().list();
        rte_memzone_walk(
            [](const rte_memzone* mz, void* opaque) {
                static_cast<std::vector<MemzoneInfo>*>(opaque)->push_back(
                    MemzoneInfo{fixed_string(mz->name, sizeof mz->name), mz->len});
            },
            &m.memzones);
        rte_memseg_list_walk(
            [](const rte_memseg_list* msl, void* opaque) {
                auto& h = *static_cast<HugepageInfo*>(opaque);
                if (msl->external == 0) {
                    h.page_size = h.page_size != 0 ? h.page_size : msl->page_sz;
                    h.mapped += std::uint64_t{msl->memseg_arr.count} * msl->page_sz;
                }
                return 0;
            },
            &m.hugepages);
        for (unsigned i = 0; i < rte_socket_count(); ++i) {
            rte_malloc_socket_stats st{};
            if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0) {
                m.hugepages.heap_allocated += st.heap_allocsz_bytes;
                m.hugepages.heap_free += st.heap_freesz_bytes;
            }
        }
        read_meminfo(m.hugepages);
        return m;
    }

    Result<AppGone> reclaim(pid_t pid) override { return manager_.reclaim_app(pid); }

private:
    Manager& manager_;
};

} // namespace

std::unique_ptr<BusBackend> make_manager_backend(Manager& manager) {
    return std::make_unique<ManagerBackend>(manager);
}

Result<std::unique_ptr<Bus>> start_bus(Manager& manager, const std::string& address_or_kind) {
    auto backend = make_manager_backend(manager);
    auto started = Bus::start(*backend, manager.event(), address_or_kind);
    if (!started) {
        return started.error();
    }
    std::unique_ptr<Bus> bus = std::move(*started);
    bus->owned_backend_ = std::move(backend);
    Bus* b = bus.get();
    // Chain to observers the manager may have set itself; restore them when the Bus goes.
    auto previous_attached = manager.on_app_attached;
    auto previous_gone = manager.on_app_gone;
    manager.on_app_attached = [b, previous_attached](const AppRecord& app) {
        if (previous_attached) {
            previous_attached(app);
        }
        b->emit_app_attached(app);
    };
    manager.on_app_gone = [b, previous_gone](const AppGone& gone) {
        if (previous_gone) {
            previous_gone(gone);
        }
        b->emit_app_gone(gone);
    };
    bus->unhook_ = [&manager, previous_attached, previous_gone] {
        manager.on_app_attached = previous_attached;
        manager.on_app_gone = previous_gone;
    };
    return bus;
}

} // namespace gazelle::mgr
