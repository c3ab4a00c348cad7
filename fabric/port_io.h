// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// PortIo: the one packet-path interface a stack uses to receive from and send on its hardware
// queue, whatever the port is: a user-veth (fabric/user_veth.h) or a DPDK ethdev (a tap vdev, a
// real NIC). Plus the primary-side setup of ethdev ports.
//
// Ownership (doc/fabric-ports.md "Ownership"):
//  - rx_burst(slot) returns frames owned by `slot`: every one carries registry.owner_tag(slot)
//    (an ethdev's driver allocated them untagged from the slot's pool, so PortIo tags them), or
//  - tx_burst() always takes ownership of every frame passed: the number returned went out, the
//    rest were freed and counted (QueueStats drop_tx_full, and for user-veth drop_owner_gone /
//    drop_malformed). The caller never touches the frames again; to retry later, don't send.
//    Frames handed to an ethdev get an empty tag first (the driver frees them itself).
//  - PortIo counts QueueStats rx_packets/rx_bytes and tx_packets/tx_bytes of the slot; stacks
//    must not count them again.
//
// Threading and process model: a PortIo is created per port and process (make_port_io) and may
// be used by several threads of that process for *different* slots; rx_burst/tx_burst(slot) only
// by the current owner of slot (it writes the slot's statistics, and for user-veth it is the only
// producer of lane `slot`), rx_burst_adopted(queue, holder) only by the holder of queue's
// adoption lease. Per-burst virtual dispatch; no allocation, lock or syscall inside (the
// tap driver itself does readv/writev, and user-veth may wake a sleeping consumer).

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "conf/result.h"
#include "fabric/registry.h"
#include "fabric/types.h"

struct rte_mbuf;

namespace gazelle::fabric {

class PortIo {
public:
    virtual ~PortIo() = default;

    // Receives up to out.size() frames from the hardware queue of `slot` (a queue slot of this
    // port) and returns the count. 0 when idle or when slot is not a queue of this port.
    virtual unsigned rx_burst(QueueSlot slot, std::span<rte_mbuf*> out) = 0;
    // Adoption (ports without a RETA, doc/fabric-ports.md "Adoption"): receives from the hardware
    // queue of free slot `queue` on behalf of stack `holder`, the holder of its adoption lease
    // (QueueEntry::adopter), which alone may call this. The frames come from `queue`'s pool
    // (refilled through the caller's lcore cache) and are tagged registry.owner_tag(holder), so
    // reclaim of the holder finds them. Counted in holder's adopted_rx_packets/bytes (never in
    // the free queue's statistics, which its next owner's claim resets). 0 for user-veth ports
    // (their RETA keeps free queues empty) and for slots of other ports.
    virtual unsigned rx_burst_adopted(QueueSlot queue, QueueSlot holder, std::span<rte_mbuf*> out) = 0;
    // Sends pkts on the hardware queue of `slot`; returns how many went out. Takes ownership of
    // all of them (see above).
    virtual unsigned tx_burst(QueueSlot slot, std::span<rte_mbuf* const> pkts) = 0;

    virtual PortKind kind() const = 0;
    // True if received frames are steered by the port's PortEntry::rss_key and ::reta (software
    // RSS): pick_local_port() predicts reply queues and the manager keeps the RETA on owned queues
    // (reta_update()). False (every ethdev for now; the tap PMD has no RETA at all): the device
    // spreads flows its own way, queues nobody owns still receive, so a live stack of the port
    // adopts every free queue (rx_burst_adopted), and stacks must expect mis-steered replies.
    virtual bool supports_reta() const = 0;
    // Index of the port in the registry.
    unsigned port() const { return port_; }

protected:
    explicit PortIo(unsigned port) : port_(port) {}

private:
    unsigned port_;
};

using PortIoPtr = std::unique_ptr<PortIo>;

// Any process: the PortIo of the port that queue slot `slot` belongs to (attaches region
// "gz_uveth" for a user-veth port; checks the DPDK port for an ethdev). Errors: EINVAL (slot is
// not a queue of any port), ENOENT/EPROTO (user-veth region, see UserVeth::attach), ENODEV (the
// ethdev is unknown to this process's EAL: was it probed by the primary before we attached?).
Result<PortIoPtr> make_port_io(const Registry& registry, QueueSlot slot);

// --- ethdev ports ------------------------------------------------------------------------------

// DPDK 22.11's tap PMD copies the rx+tx queue fds into a fixed array of 8 (RTE_MP_MAX_FD_NUM) when
// it starts, without a bound check: 5 queues or more smash the primary's stack (fixed in 23.11.3).
inline constexpr std::uint16_t k_tap_max_queues = 4;

struct EthdevParams {
    std::uint16_t rx_descriptors = 512; // each rx queue keeps this many mbufs of its pool posted
    std::uint16_t tx_descriptors = 512;
};

struct EthdevInfo {
    std::uint16_t dpdk_port_id = 0;
    std::string driver;              // e.g. "net_tap"
    std::uint16_t max_rx_queues = 0;
    std::uint16_t max_tx_queues = 0;
    std::uint16_t driver_reta_size = 0; // what the driver reports (informational)
    // Whether the fabric steers this port by PortEntry::reta. Always false for ethdevs in this
    // version: programming a NIC's key and RETA is not implemented (no NIC with one here).
    bool supports_reta = false;
};

// Any process: what the driver of DPDK port `dpdk_port_id` offers. Errors: ENODEV.
Result<EthdevInfo> ethdev_info(std::uint16_t dpdk_port_id);

struct EthdevPortConfig {
    std::string device;           // DPDK device name as given to --vdev, e.g. "net_tap0"
    std::string name;             // registry port name, 1..15 characters
    std::uint16_t nb_queues = 1;
    std::uint32_t ipv4 = 0;       // network byte order, as PortEntry
    std::uint32_t netmask = 0;
    std::uint32_t gateway = 0;
};

// Primary: adds DPDK device config.device to the registry as a port of kind ethdev with
// config.nb_queues queues (new queue slots): DPDK port id, MAC and MTU from the driver, the default
// RSS key, no bridge. Returns the registry port index. Errors: ENODEV (no such device), EINVAL
// (bad name, nb_queues 0 or more than the driver allows, or more than k_tap_max_queues for
// net_tap), and Registry::add_port's errors.
Result<unsigned> add_ethdev_port(Registry& registry, const EthdevPortConfig& config);

// Primary: configures nb_queues rx and tx queues of registry port `port` (kind ethdev), rx queue q
// allocating from pool gz_mbuf_<first_slot + q> (create_mbuf_pool first), and starts the device.
// Start before secondaries attach (the tap PMD hands its queue fds to secondaries when they probe).
// Errors: EINVAL (not an ethdev port, queue limits as above), ENOENT (a pool is missing), and the
// driver's own errors (negative returns of rte_eth_dev_configure / _queue_setup / _start).
Result<EthdevInfo> start_ethdev_port(const Registry& registry, unsigned port, const EthdevParams& params = {});

// Primary: stops and closes the device of registry port `port` (a tap interface disappears).
void stop_ethdev_port(const Registry& registry, unsigned port);

} // namespace gazelle::fabric
