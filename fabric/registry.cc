// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/registry.h"

#include <cstring>

#include "fabric/shared_region.h"

namespace gazelle::fabric {

namespace {
constexpr std::uint64_t k_registry_magic = make_magic("GZREGSTR");
} // namespace

Result<Registry> Registry::create(unsigned max_queues) {
    if (max_queues == 0 || max_queues > k_max_queues) {
        return make_error(EINVAL, "registry: max_queues " + std::to_string(max_queues) + " is out of range 1.." +
                                      std::to_string(k_max_queues));
    }
    auto region = create_region(k_registry_name, sizeof(RegistryLayout), k_registry_magic, k_registry_layout);
    if (!region) {
        return region.error();
    }
    auto* layout = static_cast<RegistryLayout*>(*region);
    layout->max_queues = max_queues;
    for (unsigned q = 0; q < k_max_queues; ++q) {
        layout->queues[q].port = 0xffff;
    }
    return Registry(layout);
}

Result<Registry> Registry::attach() {
    auto region = attach_region(k_registry_name, k_registry_magic, k_registry_layout);
    if (!region) {
        return region.error();
    }
    return Registry(static_cast<RegistryLayout*>(*region));
}

Result<unsigned> Registry::add_port(const PortSpec& spec) {
    PortEntry entry{};
    std::memcpy(entry.name, spec.name, sizeof entry.name);
    entry.kind = spec.kind;
    std::memcpy(entry.mac, spec.mac, sizeof entry.mac);
    entry.bridge = spec.bridge;
    entry.dpdk_port_id = spec.dpdk_port_id;
    entry.nb_queues = spec.nb_queues;
    entry.mtu = spec.mtu;
    entry.ipv4 = spec.ipv4;
    entry.netmask = spec.netmask;
    entry.gateway = spec.gateway;
    std::memcpy(entry.rss_key, spec.rss_key, sizeof entry.rss_key);
    return add_port(entry);
}

Result<unsigned> Registry::add_port(const PortEntry& entry) {
    RegistryLayout& l = *layout_;
    if (l.nb_ports >= k_max_ports) {
        return make_error(ENOSPC, "registry: more than " + std::to_string(k_max_ports) + " ports");
    }
    if (entry.nb_queues == 0 || l.nb_slots + entry.nb_queues > l.max_queues) {
        return make_error(ENOSPC, "registry: port '" + std::string(entry.name, strnlen(entry.name, sizeof entry.name)) +
                                      "' needs " + std::to_string(entry.nb_queues) + " queue slots, " +
                                      std::to_string(l.max_queues - l.nb_slots) + " left of max_queues=" +
                                      std::to_string(l.max_queues));
    }
    const unsigned index = l.nb_ports;
    PortEntry& p = l.ports[index];
    std::memcpy(p.name, entry.name, sizeof p.name);
    p.kind = entry.kind;
    std::memcpy(p.mac, entry.mac, sizeof p.mac);
    p.bridge = entry.bridge;
    p.dpdk_port_id = entry.dpdk_port_id;
    p.first_slot = static_cast<std::uint16_t>(l.nb_slots);
    p.nb_queues = entry.nb_queues;
    p.mtu = entry.mtu;
    p.ipv4 = entry.ipv4;
    p.netmask = entry.netmask;
    p.gateway = entry.gateway;
    std::memcpy(p.rss_key, entry.rss_key, sizeof p.rss_key);
    for (unsigned i = 0; i < k_reta_size; ++i) {
        p.reta[i].store(static_cast<std::uint16_t>(i % entry.nb_queues), std::memory_order_relaxed);
    }
    for (unsigned q = 0; q < entry.nb_queues; ++q) {
        QueueEntry& e = l.queues[l.nb_slots + q];
        e.port = static_cast<std::uint16_t>(index);
        e.hw_queue = static_cast<std::uint16_t>(q);
    }
    l.nb_slots += entry.nb_queues;
    l.nb_ports = index + 1;
    return index;
}

Result<Epoch> Registry::claim(QueueSlot slot, std::int32_t pid, std::uint16_t lcore_id) {
    if (slot >= layout_->nb_slots) {
        return make_error(EINVAL, "registry: queue slot " + std::to_string(slot) + " does not exist");
    }
    QueueEntry& e = queue(slot);
    QueueState expected = QueueState::free;
    // Seq_cst, paired with try_adopt(): an adopter that took the lease either sees this store and
    // lets go before polling, or the new owner sees its lease and waits for it (engine).
    if (!e.state.compare_exchange_strong(expected, QueueState::owned, std::memory_order_seq_cst)) {
        return make_error(EBUSY, "registry: queue slot " + std::to_string(slot) + " is owned by pid " +
                                     std::to_string(e.owner_pid.load()));
    }
    const Epoch epoch = e.epoch.fetch_add(1, std::memory_order_acq_rel) + 1;
    e.owner_pid.store(pid, std::memory_order_relaxed);
    e.lcore_id.store(lcore_id, std::memory_order_relaxed);
    e.heartbeat.store(0, std::memory_order_relaxed);
    e.parked.store(1, std::memory_order_relaxed); // until its stack enters the poll loop
    stats(slot) = QueueStats{};
    layout_->live_mask.fetch_or(std::uint64_t{1} << slot, std::memory_order_acq_rel);
    return epoch;
}

bool Registry::try_adopt(QueueSlot slot, OwnerTag adopter) {
    if (slot >= layout_->nb_slots || adopter.empty()) {
        return false;
    }
    QueueEntry& e = queue(slot);
    std::uint64_t expected = 0;
    if (!e.adopter.compare_exchange_strong(expected, adopter.value, std::memory_order_seq_cst)) {
        return false;
    }
    // Lease first, state second (claim() does the opposite): if a claim slipped in between our
    // caller's check and the CAS, one of the two sees the other.
    if (e.state.load(std::memory_order_seq_cst) != QueueState::free) {
        e.adopter.store(0, std::memory_order_seq_cst);
        return false;
    }
    return true;
}

void Registry::release_adoption(QueueSlot slot, OwnerTag adopter) {
    if (slot >= layout_->nb_slots) {
        return;
    }
    std::uint64_t expected = adopter.value;
    // Release: our last rx burst on the queue happens before the new owner's first one.
    (void)queue(slot).adopter.compare_exchange_strong(expected, 0, std::memory_order_seq_cst);
}

unsigned Registry::release_adoptions_of(OwnerTag adopter) {
    unsigned released = 0;
    for (QueueSlot s = 0; s < layout_->nb_slots; ++s) {
        std::uint64_t expected = adopter.value;
        if (!adopter.empty() && queue(s).adopter.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) {
            ++released;
        }
    }
    return released;
}

void Registry::begin_drain(QueueSlot slot) {
    queue(slot).state.store(QueueState::draining, std::memory_order_release);
    layout_->live_mask.fetch_and(~(std::uint64_t{1} << slot), std::memory_order_acq_rel);
}

void Registry::release(QueueSlot slot) {
    QueueEntry& e = queue(slot);
    e.owner_pid.store(0, std::memory_order_relaxed);
    e.state.store(QueueState::free, std::memory_order_release);
}

} // namespace gazelle::fabric
