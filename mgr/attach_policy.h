// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// What an attach request gets: which port (the request's selector against the ports), which of
// its queue slots (the free ones, lowest first), which lcore ids (from dpdk.app_lcores, never
// two live apps with one id) and which CPUs (dpdk.app_cpus, round robin over every stack thread
// the manager ever placed). Plain data in, decisions out: no shared memory, no syscalls, so the
// refusal messages are unit-tested as they are.
//
// Threading: the event-loop thread (plain objects, no locking).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "conf/result.h"
#include "fabric/mgr_protocol.h"
#include "fabric/types.h"

namespace gazelle::mgr {

// A port as the attach policy sees it: its identity and its free queue slots right now.
struct PortView {
    unsigned index = 0; // registry port index
    std::string name;
    std::uint32_t ipv4 = 0; // network byte order, as PortEntry
    std::uint8_t mac[6] = {};
    unsigned nb_queues = 0;
    std::vector<fabric::QueueSlot> free_slots; // ascending
};

// Chooses the port for `request`. by_ipv4 / by_mac / by_name: the port that has it, else EINVAL
// naming what was asked and listing the ports; then EBUSY "port 'X' has N free queues, app asked
// M" when too few of its queues are free. any: the first port (configuration order) with enough
// free queues, else EBUSY listing every port's free queues. An unknown selector value: EINVAL.
// Returns an index into `ports`.
[[nodiscard]] Result<std::size_t> select_port(const fabric::mgr_protocol::AttachRequest& request,
                                              std::span<const PortView> ports);

// The lcore ids apps may have (dpdk.app_lcores minus the manager's main lcore).
class LcorePool {
public:
    LcorePool() = default;
    LcorePool(std::span<const unsigned> app_lcores, unsigned main_lcore);

    // The n lowest free ids, now taken; EBUSY ("N of M lcore ids of dpdk.app_lcores are in use,
    // app asked K") when fewer are free.
    [[nodiscard]] Result<std::vector<std::uint16_t>> take(unsigned n);
    // Gives ids back (ids that are not taken are ignored).
    void give_back(std::span<const std::uint16_t> ids);

    unsigned size() const { return static_cast<unsigned>(ids_.size()); }
    unsigned free_count() const;
    bool taken(std::uint16_t id) const;

private:
    std::vector<std::uint16_t> ids_; // ascending
    std::vector<bool> taken_;        // parallel to ids_
};

// dpdk.app_cpus handed out round robin.
class CpuRoundRobin {
public:
    CpuRoundRobin() = default;
    explicit CpuRoundRobin(std::span<const unsigned> cpus);
    std::uint16_t next();

private:
    std::vector<std::uint16_t> cpus_;
    std::size_t next_ = 0;
};

} // namespace gazelle::mgr
