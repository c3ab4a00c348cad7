// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/attach_policy.h"

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>

#include "conf/net_address.h"
#include "mgr/registration.h"

namespace gazelle::mgr {

namespace {

std::string mac_text(const std::uint8_t* mac) {
    conf::MacAddr m;
    std::memcpy(m.bytes.data(), mac, m.bytes.size());
    return conf::to_string(m);
}

std::string ipv4_text(std::uint32_t network_order) {
    return conf::to_string(conf::Ipv4{ntohl(network_order)});
}

// "veth0 (198.18.0.1, 02:00:00:00:00:01), veth1 (...)"
std::string port_list(std::span<const PortView> ports) {
    if (ports.empty()) {
        return "none";
    }
    std::string out;
    for (const PortView& p : ports) {
        out += (out.empty() ? "" : ", ") + p.name + " (" + ipv4_text(p.ipv4) + ", " + mac_text(p.mac) + ")";
    }
    return out;
}

std::string queues_text(std::size_t n) {
    return std::to_string(n) + (n == 1 ? " free queue" : " free queues");
}

} // namespace

Result<std::size_t> select_port(const fabric::mgr_protocol::AttachRequest& request, std::span<const PortView> ports) {
    using fabric::mgr_protocol::PortSelector;
    const std::size_t want = request.queues;
    std::size_t found = ports.size();
    switch (request.selector) {
    case PortSelector::any: {
        std::string free;
        for (std::size_t i = 0; i < ports.size(); ++i) {
            if (ports[i].free_slots.size() >= want) {
                return i;
            }
            free += (free.empty() ? "" : ", ") + ports[i].name + " " + std::to_string(ports[i].free_slots.size());
        }
        return make_error(EBUSY, "no port has " + std::to_string(want) + " free queues (free queues: " +
                                     (free.empty() ? std::string("no ports") : free) + ")");
    }
    case PortSelector::by_ipv4:
        for (std::size_t i = 0; i < ports.size() && found == ports.size(); ++i) {
            found = ports[i].ipv4 == request.ipv4 ? i : found;
        }
        break;
    case PortSelector::by_mac:
        for (std::size_t i = 0; i < ports.size() && found == ports.size(); ++i) {
            found = std::memcmp(ports[i].mac, request.mac, sizeof request.mac) == 0 ? i : found;
        }
        break;
    case PortSelector::by_name: {
        const std::string name(request.port_name, strnlen(request.port_name, sizeof request.port_name));
        for (std::size_t i = 0; i < ports.size() && found == ports.size(); ++i) {
            found = ports[i].name == name ? i : found;
        }
        break;
    }
    default:
        return make_error(EINVAL, "unknown port selector " +
                                      std::to_string(static_cast<std::uint32_t>(request.selector)) +
                                      " (0 any, 1 by IPv4, 2 by MAC, 3 by name)");
    }
    if (found == ports.size()) {
        return make_error(EINVAL, "no port matches: app asked for " + describe_selector(request) +
                                      "; ports: " + port_list(ports));
    }
    const PortView& port = ports[found];
    if (port.free_slots.size() < want) {
        return make_error(EBUSY, "port " + port.name + " has " + queues_text(port.free_slots.size()) + ", app asked " +
                                     std::to_string(want));
    }
    return found;
}

LcorePool::LcorePool(std::span<const unsigned> app_lcores, unsigned main_lcore) {
    for (unsigned id : app_lcores) {
        if (id != main_lcore && id < fabric::k_max_lcores) {
            ids_.push_back(static_cast<std::uint16_t>(id));
        }
    }
    std::sort(ids_.begin(), ids_.end());
    ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
    taken_.assign(ids_.size(), false);
}

Result<std::vector<std::uint16_t>> LcorePool::take(unsigned n) {
    if (free_count() < n) {
        return make_error(EBUSY, std::to_string(size() - free_count()) + " of " + std::to_string(size()) +
                                     " lcore ids of dpdk.app_lcores are in use, app asked " + std::to_string(n));
    }
    std::vector<std::uint16_t> out;
    for (std::size_t i = 0; i < ids_.size() && out.size() < n; ++i) {
        if (!taken_[i]) {
            taken_[i] = true;
            out.push_back(ids_[i]);
        }
    }
    return out;
}

void LcorePool::give_back(std::span<const std::uint16_t> ids) {
    for (std::uint16_t id : ids) {
        const auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
        if (it != ids_.end() && *it == id) {
            taken_[static_cast<std::size_t>(it - ids_.begin())] = false;
        }
    }
}

unsigned LcorePool::free_count() const {
    return static_cast<unsigned>(std::count(taken_.begin(), taken_.end(), false));
}

bool LcorePool::taken(std::uint16_t id) const {
    const auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
    return it != ids_.end() && *it == id && taken_[static_cast<std::size_t>(it - ids_.begin())];
}

CpuRoundRobin::CpuRoundRobin(std::span<const unsigned> cpus) {
    for (unsigned cpu : cpus) {
        cpus_.push_back(static_cast<std::uint16_t>(cpu));
    }
}

std::uint16_t CpuRoundRobin::next() {
    if (cpus_.empty()) {
        return 0;
    }
    const std::uint16_t cpu = cpus_[next_ % cpus_.size()];
    ++next_;
    return cpu;
}

} // namespace gazelle::mgr
