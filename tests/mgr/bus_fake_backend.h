// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// A BusBackend with canned, deterministic data: the D-Bus object (mgr/bus.h) and gazellectl can
// be tested against it without DPDK, hugepages or a manager.
//
// The data set (every test that checks values relies on it):
//  ports   veth0 (user-veth, 198.18.0.1/24, slots 0..3), veth1 (user-veth, 198.18.0.2/24, slots 4..5)
//  apps    1001 "redis-server" slots 0,1 (epochs 3,4) lcores 1,2; 1002 "nginx" slot 2 (epoch 1) lcore 3
//  queues  0,1 -> 1001, 2 -> 1002, 3 free, 4 free, 5 -> 1003 (owned, but not a registered app)
//  rules   4 connections (slots 0, 1, 2, 5) and 2 listeners (tcp *:80 on slot 2; tcp 198.18.0.1:6379 on 0,1)
//  stats   every GetStats adds k_rx_step rx packets etc. to each owned queue and k_stats_tick_usec to
//          the timestamp, so rates are exact whatever the real interval
//  memory  6 pools of 1023 mbufs (in use: 0, 100, 512, 1023, 0, 7), one memp pool, 3 memzones

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "mgr/bus_model.h"

namespace gazelle::test {

class FakeBackend final : public mgr::BusBackend {
public:
    static constexpr std::uint64_t k_rx_step = 1000;
    static constexpr std::uint64_t k_rx_bytes_step = 64000;
    static constexpr std::uint64_t k_stats_tick_usec = 1000000;
    static constexpr unsigned k_pool_size = 1023;
    static constexpr unsigned k_element_size = 2432;
    static constexpr unsigned k_pool_in_use[6] = {0, 100, 512, 1023, 0, 7};

    FakeBackend() {
        add_app(1001, "redis-server", {0, 1}, {3, 4}, {1, 2});
        add_app(1002, "nginx", {2}, {1}, {3});
    }

    // Called when Reclaim removed an app (the real manager calls on_app_gone).
    std::function<void(const mgr::AppGone&)> on_reclaimed;

    void add_app(pid_t pid, const std::string& program, std::vector<fabric::QueueSlot> slots,
                 std::vector<fabric::Epoch> epochs, std::vector<std::uint16_t> lcores) {
        mgr::AppRecord app;
        app.pid = pid;
        app.uid = 0;
        app.program = program;
        app.port = 0;
        app.slots = std::move(slots);
        app.epochs = std::move(epochs);
        app.lcores = std::move(lcores);
        app.attached_at = std::chrono::system_clock::now() - std::chrono::seconds(90);
        apps_[pid] = app;
    }
    bool remove_app(pid_t pid) { return apps_.erase(pid) > 0; }
    const std::map<pid_t, mgr::AppRecord>& app_map() const { return apps_; }

    mgr::BusProperties properties() override {
        mgr::BusProperties p;
        p.version = "0.0-test";
        p.file_prefix = "gz-fake";
        p.huge_dir = "/tmp/gz-fake-huge";
        p.ports = {{"veth0", "user-veth", "02:00:00:00:00:01", "198.18.0.1/24", 0, 4},
                   {"veth1", "user-veth", "02:00:00:00:00:02", "198.18.0.2/24", 4, 2}};
        p.max_apps = 32;
        p.max_queues = 16;
        return p;
    }

    std::vector<mgr::AppRecord> apps() override {
        std::vector<mgr::AppRecord> out;
        for (const auto& [pid, app] : apps_) {
            out.push_back(app);
        }
        return out;
    }

    std::vector<mgr::QueueInfo> queues() override {
        std::vector<mgr::QueueInfo> out;
        for (fabric::QueueSlot s = 0; s < 6; ++s) {
            mgr::QueueInfo q;
            q.slot = s;
            q.port = s < 4 ? 0 : 1;
            q.hw_queue = static_cast<std::uint16_t>(s < 4 ? s : s - 4);
            q.owner_pid = owner_of(s);
            q.state = q.owner_pid != 0 ? fabric::QueueState::owned : fabric::QueueState::free;
            q.epoch = s + 1u;
            q.lcore = q.owner_pid != 0 ? static_cast<std::uint16_t>(s + 1) : 0;
            q.heartbeat = q.owner_pid != 0 ? 1000u * (s + 1u) : 0;
            q.parked = s == 1;
            out.push_back(q);
        }
        return out;
    }

    Result<std::vector<fabric::FlowRule>> rules() override {
        const auto ip = [](std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
            return htonl((a << 24) | (b << 16) | (c << 8) | d);
        };
        const auto conn = [&](std::uint8_t proto, std::uint16_t lport, std::uint16_t rport, fabric::QueueSlot slot,
                              fabric::Epoch epoch) {
            fabric::FlowRule r;
            r.key =
                fabric::FlowKey::connection(proto, ip(198, 18, 0, 1), htons(lport), ip(198, 18, 0, 2), htons(rport));
            r.hit.kind = fabric::FlowHitKind::connection;
            r.hit.slot = slot;
            r.hit.epoch = epoch;
            return r;
        };
        const auto listen = [&](std::uint32_t local, std::uint16_t port, std::uint64_t mask) {
            fabric::FlowRule r;
            r.key = fabric::FlowKey::listener(IPPROTO_TCP, local, htons(port));
            r.hit.kind = fabric::FlowHitKind::listener;
            r.hit.mask = mask;
            return r;
        };
        return std::vector<fabric::FlowRule>{
            conn(IPPROTO_TCP, 6379, 40001, 0, 3),
            conn(IPPROTO_UDP, 53, 40002, 1, 4),
            conn(IPPROTO_TCP, 80, 40000, 2, 1),
            conn(IPPROTO_TCP, 8080, 40003, 5, 6),
            listen(0, 80, 1u << 2),
            listen(ip(198, 18, 0, 1), 6379, 0x3),
        };
    }

    mgr::StatsSnapshot stats() override {
        ++stats_calls_;
        mgr::StatsSnapshot s;
        s.timestamp_usec = 5000000 + stats_calls_ * k_stats_tick_usec;
        for (fabric::QueueSlot slot = 0; slot < 6; ++slot) {
            mgr::SlotStats q{};
            q.slot = slot;
            if (owner_of(slot) != 0) {
                q.counters.rx_packets = stats_calls_ * k_rx_step * (slot + 1u);
                q.counters.rx_bytes = stats_calls_ * k_rx_bytes_step * (slot + 1u);
                q.counters.tx_packets = stats_calls_ * k_rx_step / 2;
                q.counters.tx_bytes = stats_calls_ * k_rx_bytes_step / 2;
                q.counters.forwarded_out = stats_calls_ * 10;
                q.counters.forwarded_in = stats_calls_ * 20;
                q.counters.arp_fanout = 3;
                q.counters.local = stats_calls_ * k_rx_step * (slot + 1u) - stats_calls_ * 10;
                q.counters.drop_inbox_full = 1;
                q.counters.drop_no_owner = stats_calls_;
                q.counters.drop_malformed = 2;
                q.counters.connections = slot + 1u;
                q.counters.l2_allocs = 7;
                q.counters.l2_alloc_failed = 1;
                q.counters.l2_shed = 2;
            }
            s.queues.push_back(q);
        }
        s.flows.adds = 40;
        s.flows.deletes = 36;
        s.flows.freed = 35;
        s.flows.listener_joins = 3;
        s.flows.listener_creates = 2;
        s.flows.pending_free = 1;
        s.flows.keys = 6;
        s.flow_capacity = 65536;
        return s;
    }

    mgr::MemorySnapshot memory() override {
        mgr::MemorySnapshot m;
        for (fabric::QueueSlot slot = 0; slot < 6; ++slot) {
            mgr::PoolInfo p;
            p.name = "gz_mbuf_" + std::to_string(slot);
            p.slot = slot;
            p.size = k_pool_size;
            p.in_use = k_pool_in_use[slot];
            p.available = k_pool_size - p.in_use;
            p.element_size = k_element_size;
            p.bytes = std::uint64_t{k_pool_size} * k_element_size;
            m.pools.push_back(p);
        }
        m.memps.push_back(fabric::MempInfo{0, "gz_memp_0_1", "tcp_pcb", 65536});
        m.memzones = {{"gz_registry", 24576}, {"gz_flow_state", 1u << 20}, {"MP_gz_mbuf_0", 2u << 20}};
        m.hugepages.page_size = 2u << 20;
        m.hugepages.mapped = 64u << 20;
        m.hugepages.heap_allocated = 40u << 20;
        m.hugepages.heap_free = 24u << 20;
        m.hugepages.system_total = std::uint64_t{2} << 30;
        m.hugepages.system_free = std::uint64_t{1} << 30;
        return m;
    }

    Result<mgr::AppGone> reclaim(pid_t pid) override {
        const auto it = apps_.find(pid);
        if (it == apps_.end()) {
            return make_error(ENOENT, "no app with pid " + std::to_string(pid));
        }
        mgr::AppGone gone;
        gone.app = it->second;
        gone.how = mgr::AppEnd::forced;
        for (std::size_t i = 0; i < gone.app.slots.size(); ++i) {
            fabric::ReclaimReport r;
            r.slot = gone.app.slots[i];
            r.pid = pid;
            r.epoch = gone.app.epochs[i];
            r.was_owned = true;
            r.rules = 1;
            r.mbufs_returned = 100;
            r.usec = 250.5;
            gone.reclaimed.push_back(r);
        }
        apps_.erase(it);
        if (on_reclaimed) {
            on_reclaimed(gone);
        }
        return gone;
    }

private:
    std::int32_t owner_of(fabric::QueueSlot slot) const {
        for (const auto& [pid, app] : apps_) {
            for (const auto s : app.slots) {
                if (s == slot) {
                    return pid;
                }
            }
        }
        return slot == 5 ? 1003 : 0;
    }

    std::map<pid_t, mgr::AppRecord> apps_;
    std::uint64_t stats_calls_ = 0;
};

} // namespace gazelle::test
