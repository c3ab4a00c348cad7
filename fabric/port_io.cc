// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/port_io.h"

#include <cstring>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "fabric/mbuf.h"
#include "fabric/softrss.h"
#include "fabric/user_veth.h"

namespace gazelle::fabric {

namespace {

std::string port_name(const PortEntry& p) { return std::string(p.name, strnlen(p.name, sizeof p.name)); }

// Which port a slot belongs to. nullopt-like: returns nb_ports when none.
unsigned port_of_slot(const Registry& registry, QueueSlot slot) {
    const unsigned nb = registry.layout().nb_ports;
    for (unsigned i = 0; i < nb; ++i) {
        const PortEntry& p = registry.port(i);
        if (slot >= p.first_slot && slot < p.first_slot + p.nb_queues) {
            return i;
        }
    }
    return nb;
}

class UserVethPortIo final : public PortIo {
public:
    UserVethPortIo(unsigned port, UserVeth veth) : PortIo(port), veth_(std::move(veth)) {}

    unsigned rx_burst(QueueSlot slot, std::span<rte_mbuf*> out) override { return veth_.rx_burst(slot, out); }
    unsigned rx_burst_adopted(QueueSlot, QueueSlot, std::span<rte_mbuf*>) override { return 0; }
    unsigned tx_burst(QueueSlot slot, std::span<rte_mbuf* const> pkts) override { return veth_.tx_burst(slot, pkts); }
    PortKind kind() const override { return PortKind::user_veth; }
    bool supports_reta() const override { return true; }

private:
    UserVeth veth_;
};

class EthdevPortIo final : public PortIo {
public:
    EthdevPortIo(unsigned port, const Registry& registry)
        : PortIo(port), registry_(registry), dpdk_port_(registry.port(port).dpdk_port_id),
          first_slot_(registry.port(port).first_slot), nb_queues_(registry.port(port).nb_queues) {}

    unsigned rx_burst(QueueSlot slot, std::span<rte_mbuf*> out) override {
        if (!mine(slot)) {
            return 0;
        }
        std::uint64_t bytes = 0;
        const unsigned n = receive(slot, slot, out, bytes);
        if (n != 0) {
            QueueStats& st = registry_.stats(slot);
            st.rx_packets += n;
            st.rx_bytes += bytes;
        }
        return n;
    }

    unsigned rx_burst_adopted(QueueSlot queue, QueueSlot holder, std::span<rte_mbuf*> out) override {
        if (!mine(queue) || holder >= registry_.nb_slots()) {
            return 0;
        }
        std::uint64_t bytes = 0;
        const unsigned n = receive(queue, holder, out, bytes);
        if (n != 0) {
            QueueStats& st = registry_.stats(holder);
            st.adopted_rx_packets += n;
            st.adopted_rx_bytes += bytes;
        }
        return n;
    }

    unsigned tx_burst(QueueSlot slot, std::span<rte_mbuf* const> pkts) override {
        if (pkts.empty()) {
            return 0;
        }
        if (!mine(slot)) {
            free_burst(pkts);
            return 0;
        }
        std::uint64_t bytes = 0;
        for (rte_mbuf* m : pkts) {
            bytes += rte_pktmbuf_pkt_len(m);
        }
        // The driver frees what it sends (now or at a later tx): nobody of ours owns them then.
        set_owner_burst(pkts, OwnerTag{});
        auto** array = const_cast<rte_mbuf**>(pkts.data());
        unsigned sent = 0;
        while (sent < pkts.size()) {
            const std::uint16_t n = rte_eth_tx_burst(dpdk_port_, hw_queue(slot), array + sent, clamp(pkts.size() - sent));
            if (n == 0) {
                break;
            }
            sent += n;
        }
        QueueStats& st = registry_.stats(slot);
        if (sent < pkts.size()) {
            const auto unsent = pkts.subspan(sent);
            for (rte_mbuf* m : unsent) {
                bytes -= rte_pktmbuf_pkt_len(m);
            }
            free_burst(unsent);
            st.drop_tx_full += unsent.size();
        }
        st.tx_packets += sent;
        st.tx_bytes += bytes;
        return sent;
    }

    PortKind kind() const override { return PortKind::ethdev; }
    bool supports_reta() const override { return false; }

private:
    // One rx burst from the hardware queue of `queue`, tagged for `holder`.
    unsigned receive(QueueSlot queue, QueueSlot holder, std::span<rte_mbuf*> out, std::uint64_t& bytes) {
        const std::uint16_t n = rte_eth_rx_burst(dpdk_port_, hw_queue(queue), out.data(), clamp(out.size()));
        if (n == 0) {
            return 0;
        }
        // The driver refilled its ring from the queue's pool behind our back: untagged until now.
        const std::span<rte_mbuf* const> got(out.data(), n);
        set_owner_burst(got, registry_.owner_tag(holder));
        for (rte_mbuf* m : got) {
            bytes += rte_pktmbuf_pkt_len(m);
        }
        return n;
    }
    bool mine(QueueSlot slot) const { return slot >= first_slot_ && slot < first_slot_ + nb_queues_; }
    std::uint16_t hw_queue(QueueSlot slot) const { return static_cast<std::uint16_t>(slot - first_slot_); }
    static std::uint16_t clamp(std::size_t n) { return static_cast<std::uint16_t>(std::min<std::size_t>(n, 0xffff)); }

    Registry registry_;
    std::uint16_t dpdk_port_;
    std::uint16_t first_slot_;
    std::uint16_t nb_queues_;
};

Result<void> check_queue_count(const EthdevInfo& info, std::uint16_t nb_queues, const std::string& what) {
    if (nb_queues == 0 || nb_queues > info.max_rx_queues || nb_queues > info.max_tx_queues) {
        return make_error(EINVAL, what + ": " + std::to_string(nb_queues) + " queues requested, driver " +
                                      info.driver + " allows 1.." +
                                      std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)));
    }
    if (info.driver == "net_tap" && nb_queues > k_tap_max_queues) {
        return make_error(EINVAL, what + ": " + std::to_string(nb_queues) + " queues requested, the tap PMD of DPDK " +
                                      "22.11 supports at most " + std::to_string(k_tap_max_queues) +
                                      " (more overflow its fd array when the port starts)");
    }
    return {};
}

} // namespace

Result<PortIoPtr> make_port_io(const Registry& registry, QueueSlot slot) {
    if (!registry.valid()) {
        return make_error(EINVAL, "port io: the registry is not attached");
    }
    const unsigned port = port_of_slot(registry, slot);
    if (port == registry.layout().nb_ports) {
        return make_error(EINVAL, "port io: queue slot " + std::to_string(slot) + " belongs to no port");
    }
    const PortEntry& p = registry.port(port);
    switch (p.kind) {
    case PortKind::user_veth: {
        auto veth = UserVeth::attach(registry);
        if (!veth) {
            return veth.error();
        }
        return PortIoPtr(std::make_unique<UserVethPortIo>(port, std::move(*veth)));
    }
    case PortKind::ethdev:
        if (!rte_eth_dev_is_valid_port(p.dpdk_port_id)) {
            return make_error(ENODEV, "port io: port '" + port_name(p) + "' is DPDK port " +
                                          std::to_string(p.dpdk_port_id) +
                                          ", which this process does not know (was it probed by the primary "
                                          "before this process started?)");
        }
        return PortIoPtr(std::make_unique<EthdevPortIo>(port, registry));
    }
    return make_error(EINVAL, "port io: port '" + port_name(p) + "' has unknown kind " +
                                  std::to_string(static_cast<unsigned>(p.kind)));
}

Result<EthdevInfo> ethdev_info(std::uint16_t dpdk_port_id) {
    rte_eth_dev_info dev{};
    const int rc = rte_eth_dev_info_get(dpdk_port_id, &dev);
    if (rc != 0) {
        return make_error(-rc, "Failed to get information of DPDK port " + std::to_string(dpdk_port_id) + ": " +
                                   rte_strerror(-rc));
    }
    EthdevInfo info;
    info.dpdk_port_id = dpdk_port_id;
    info.driver = dev.driver_name != nullptr ? dev.driver_name : "";
    info.max_rx_queues = dev.max_rx_queues;
    info.max_tx_queues = dev.max_tx_queues;
    info.driver_reta_size = dev.reta_size;
    info.supports_reta = false;
    return info;
}

Result<unsigned> add_ethdev_port(Registry& registry, const EthdevPortConfig& config) {
    PortEntry entry{};
    if (config.name.empty() || config.name.size() >= sizeof entry.name) {
        return make_error(EINVAL, "port name '" + config.name + "' must have 1.." +
                                      std::to_string(sizeof entry.name - 1) + " characters");
    }
    const std::string what = "DPDK device '" + config.device + "'";
    std::uint16_t port_id = 0;
    if (rte_eth_dev_get_port_by_name(config.device.c_str(), &port_id) != 0) {
        return make_error(ENODEV, what + " does not exist (is it in the primary's --vdev?)");
    }
    auto info = ethdev_info(port_id);
    if (!info) {
        return info.error();
    }
    if (auto ok = check_queue_count(*info, config.nb_queues, what); !ok) {
        return ok.error();
    }
    rte_ether_addr mac{};
    if (const int rc = rte_eth_macaddr_get(port_id, &mac); rc != 0) {
        return make_error(-rc, "Failed to get the MAC of " + what + ": " + rte_strerror(-rc));
    }
    std::uint16_t mtu = RTE_ETHER_MTU;
    (void)rte_eth_dev_get_mtu(port_id, &mtu); // keeps the Ethernet default if the driver cannot say
    std::memcpy(entry.name, config.name.data(), config.name.size());
    entry.kind = PortKind::ethdev;
    std::memcpy(entry.mac, mac.addr_bytes, sizeof entry.mac);
    entry.bridge = 0;
    entry.dpdk_port_id = port_id;
    entry.nb_queues = config.nb_queues;
    entry.mtu = mtu;
    entry.ipv4 = config.ipv4;
    entry.netmask = config.netmask;
    entry.gateway = config.gateway;
    std::memcpy(entry.rss_key, k_default_rss_key.data(), sizeof entry.rss_key);
    return registry.add_port(entry);
}

Result<EthdevInfo> start_ethdev_port(const Registry& registry, unsigned port, const EthdevParams& params) {
    if (port >= registry.layout().nb_ports || registry.port(port).kind != PortKind::ethdev) {
        return make_error(EINVAL, "start_ethdev_port: registry port " + std::to_string(port) + " is not an ethdev port");
    }
    const PortEntry& p = registry.port(port);
    const std::string what = "port '" + port_name(p) + "' (DPDK port " + std::to_string(p.dpdk_port_id) + ")";
    auto info = ethdev_info(p.dpdk_port_id);
    if (!info) {
        return info.error();
    }
    if (auto ok = check_queue_count(*info, p.nb_queues, what); !ok) {
        return ok.error();
    }
    // No RSS configuration: the fabric cannot program the device's RETA (see EthdevInfo), so the
    // device spreads flows its own way (the tap: the kernel's flow hash over its queues).
    rte_eth_conf conf{};
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
    conf.txmode.mq_mode = RTE_ETH_MQ_TX_NONE;
    if (const int rc = rte_eth_dev_configure(p.dpdk_port_id, p.nb_queues, p.nb_queues, &conf); rc != 0) {
        return make_error(-rc, "Failed to configure " + what + " with " + std::to_string(p.nb_queues) +
                                   " queues: " + rte_strerror(-rc));
    }
    const int socket = rte_eth_dev_socket_id(p.dpdk_port_id);
    const unsigned socket_id = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (std::uint16_t q = 0; q < p.nb_queues; ++q) {
        auto pool = lookup_mbuf_pool(static_cast<QueueSlot>(p.first_slot + q));
        if (!pool) {
            return pool.error();
        }
        if (const int rc = rte_eth_rx_queue_setup(p.dpdk_port_id, q, params.rx_descriptors, socket_id, nullptr, *pool);
            rc != 0) {
            return make_error(-rc, "Failed to set up rx queue " + std::to_string(q) + " of " + what + ": " +
                                       rte_strerror(-rc));
        }
        if (const int rc = rte_eth_tx_queue_setup(p.dpdk_port_id, q, params.tx_descriptors, socket_id, nullptr);
            rc != 0) {
            return make_error(-rc, "Failed to set up tx queue " + std::to_string(q) + " of " + what + ": " +
                                       rte_strerror(-rc));
        }
    }
    if (const int rc = rte_eth_dev_start(p.dpdk_port_id); rc != 0) {
        return make_error(-rc, "Failed to start " + what + ": " + rte_strerror(-rc));
    }
    return info;
}

void stop_ethdev_port(const Registry& registry, unsigned port) {
    if (port >= registry.layout().nb_ports || registry.port(port).kind != PortKind::ethdev) {
        return;
    }
    const std::uint16_t id = registry.port(port).dpdk_port_id;
    (void)rte_eth_dev_stop(id);  // fails only for an unknown port: nothing to undo then
    (void)rte_eth_dev_close(id); // same
}

} // namespace gazelle::fabric
