// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The registry: one shared region (memzone "gz_registry") that says who owns what.
//
// It holds the port table, the queue table (one entry per queue slot: state, owner pid, owner
// epoch, lcore id, heartbeat) and one statistics block per queue slot. The primary creates and
// formats it; stacks attach and update only their own queue entry and statistics block; the
// manager moves queues between states.
//
// Who writes which cache line:
//  - RegistryHeader, PortEntry: the primary, before any secondary attaches (read-only afterwards,
//    except PortEntry::reta, written by the manager when queue ownership changes);
//  - QueueEntry: the manager (state, owner, epoch, lcore), the owner (heartbeat), and the
//    adoption lease (adopter): CAS-claimed by a live stack of the port while the queue is free,
//    released by it, or by reclaim when it died;
//  - QueueStats: the owning stack only (plain counters, readers see them eventually);
//  - L2PoolEntry: the primary, before any secondary attaches (read-only afterwards).
//
// The layout is ABI: no pointers, fixed sizes, static_asserts below; bump k_registry_layout on
// any change.

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "conf/result.h"
#include "fabric/types.h"

namespace gazelle::fabric {

inline constexpr std::uint32_t k_registry_layout = 3; // 2: adoption; 3: L2 pool entry, QueueStats' L2 counters
inline constexpr char k_registry_name[] = "gz_registry";
// Redirection table size of software RSS (user-veth) and what we program into NICs that take it.
inline constexpr unsigned k_reta_size = 128;
inline constexpr unsigned k_rss_key_bytes = 40;

enum class PortKind : std::uint8_t { user_veth = 1, ethdev = 2 };

enum class QueueState : std::uint32_t {
    free = 0,     // nobody owns it; receives nothing (RETA avoids it) or is adopted by a live stack
                  // (ports without a RETA: QueueEntry::adopter)
    owned = 1,    // a live stack polls it
    draining = 2, // owner gone or leaving: no new traffic; reclaim in progress
};

struct alignas(k_cache_line) PortEntry {
    char name[16];
    PortKind kind;
    std::uint8_t mac[6];
    std::uint8_t bridge;          // user-veth: bridge index + 1, 0 = none
    std::uint16_t dpdk_port_id;   // ethdev ports
    std::uint16_t first_slot;     // queue slots first_slot .. first_slot + nb_queues - 1
    std::uint16_t nb_queues;
    std::uint16_t mtu;
    std::uint32_t ipv4;           // network byte order
    std::uint32_t netmask;        // network byte order
    std::uint32_t gateway;        // network byte order, 0 = none
    std::uint8_t rss_key[k_rss_key_bytes];
    // Software RSS redirection table: entries are hardware queue indexes of this port. The manager
    // points it only at owned queues (no packet is stranded on a queue nobody polls).
    std::atomic<std::uint16_t> reta[k_reta_size];
};
static_assert(offsetof(PortEntry, rss_key) == 44);
static_assert(offsetof(PortEntry, reta) == 84);
static_assert(sizeof(PortEntry) == 6 * k_cache_line);

// A port as the primary describes it (a plain, copyable PortEntry without the live RETA).
struct PortSpec {
    char name[16] = {};
    PortKind kind = PortKind::user_veth;
    std::uint8_t mac[6] = {};
    std::uint8_t bridge = 0;
    std::uint16_t dpdk_port_id = 0;
    std::uint16_t nb_queues = 1;
    std::uint16_t mtu = 1500;
    std::uint32_t ipv4 = 0;
    std::uint32_t netmask = 0;
    std::uint32_t gateway = 0;
    std::uint8_t rss_key[k_rss_key_bytes] = {};
};

struct alignas(k_cache_line) QueueEntry {
    std::atomic<QueueState> state;
    std::atomic<std::int32_t> owner_pid;   // 0 when free
    std::atomic<Epoch> epoch;              // bumped on every new owner
    std::atomic<std::uint16_t> lcore_id;   // EAL lcore of the owning stack thread (unique fabric-wide)
    std::uint16_t port;                    // index in the port table
    std::uint16_t hw_queue;                // queue index on that port
    // 1 while the owner is not inside its poll loop (not started yet, or asleep on its doorbell):
    // it holds no routing decision, so reclaim's grace period need not wait for its heartbeat.
    std::atomic<std::uint16_t> parked;
    std::atomic<std::uint64_t> heartbeat;  // bumped by the owner's poll loop, once per iteration
    // Adoption lease (ports without a RETA, where a free queue keeps receiving): the OwnerTag value
    // of the one live stack of the port that polls this queue's rx for it while it is free; 0 =
    // nobody. Taken with a CAS from 0 (Registry::try_adopt), given back by the adopter when the
    // queue stops being free (a new owner waits for 0 before its first rx burst) or when it stops,
    // and by reclaim of the adopter's own slot when it died. doc/fabric-ports.md "Adoption".
    std::atomic<std::uint64_t> adopter;
};
static_assert(offsetof(QueueEntry, heartbeat) == 24);
static_assert(offsetof(QueueEntry, adopter) == 32);
static_assert(sizeof(QueueEntry) == k_cache_line);

// Per queue slot, written only by its owner. Two lines: packet counters, then drops by reason.
struct alignas(k_cache_line) QueueStats {
    std::uint64_t rx_packets;       // from the NIC queue
    std::uint64_t rx_bytes;
    std::uint64_t tx_packets;
    std::uint64_t tx_bytes;
    std::uint64_t forwarded_out;    // mis-steered packets handed to another queue's inbox
    std::uint64_t forwarded_in;     // packets taken from our inbox
    std::uint64_t arp_fanout;       // ARP replies shared with every live queue
    std::uint64_t local;            // delivered to our own stack
    // drops by reason
    alignas(k_cache_line) std::uint64_t drop_inbox_full;
    std::uint64_t drop_no_owner;    // no rule, no listener, handed back (counted by the stack)
    std::uint64_t drop_owner_gone;  // rule points at a queue that is not owned
    std::uint64_t drop_malformed;   // too short / not IPv4 where it must be
    std::uint64_t drop_tx_full;
    std::uint64_t drop_alloc_failed;
    std::uint64_t drop_table_full;  // flow rule could not be added
    std::uint64_t connections;      // gauge, stack-maintained
    // Adoption (ports without a RETA): frames this stack received on free queues it adopted (not
    // in rx_packets/rx_bytes, which count its own queue), and the leases it holds now.
    alignas(k_cache_line) std::uint64_t adopted_rx_packets;
    std::uint64_t adopted_rx_bytes;
    std::uint64_t adopted_queues;   // gauge: leases held
    std::uint64_t adoptions;        // leases taken
    std::uint64_t adopt_handover_waits; // polls of its own queue skipped while a former adopter held it
    // The fabric's L2 mbuf pool (fabric/mbuf.h MbufSource), used when this queue's own pool is low
    std::uint64_t l2_allocs;        // mbufs taken from the L2 pool
    std::uint64_t l2_alloc_failed;  // L1 at its reserve and L2 empty: the frame was not sent (ERR_MEM)
    std::uint64_t l2_shed;          // sheddable work (ARP) refused: L1 and L2 both at their reserve
};
static_assert(offsetof(QueueStats, drop_inbox_full) == k_cache_line);
static_assert(offsetof(QueueStats, adopted_rx_packets) == 2 * k_cache_line);
static_assert(offsetof(QueueStats, l2_allocs) == 2 * k_cache_line + 5 * sizeof(std::uint64_t));
static_assert(sizeof(QueueStats) == 3 * k_cache_line);

// The fabric's second-level mbuf pool (one for the whole fabric, fabric/mbuf.h), as the primary
// made it: secondaries look the pool up by this name, and every MbufSource takes its reserves
// from here, so all stacks apply the same watermarks. mbufs == 0: the fabric has no L2 pool.
struct alignas(k_cache_line) L2PoolEntry {
    char name[32];                  // memzone-style mempool name, NUL-terminated
    std::uint32_t mbufs;            // size of the L2 pool
    std::uint32_t l2_reserve;       // L2 mbufs sheddable work must leave free (l2_low_watermark_percent)
    std::uint32_t l1_reserve;       // mbufs of each queue's own pool a stack leaves free for its NIC
                                    // rx ring's refills: below, it allocates from L2 (same percent)
    std::uint32_t l1_mbufs;         // size of each queue's own pool
    std::uint32_t reserved_[4];
};
static_assert(offsetof(L2PoolEntry, mbufs) == 32);
static_assert(sizeof(L2PoolEntry) == k_cache_line);

struct alignas(k_cache_line) RegistryLayout {
    std::uint32_t max_queues;
    std::uint32_t nb_ports;
    std::uint32_t nb_slots;         // queue slots in use (sum of ports' queues)
    std::uint32_t manager_pid;
    std::atomic<std::uint64_t> live_mask;      // bit q: slot q is owned (cached from QueueEntry::state)
    std::atomic<std::uint64_t> manager_heartbeat;
    PortEntry ports[k_max_ports];
    QueueEntry queues[k_max_queues];
    QueueStats stats[k_max_queues];
    L2PoolEntry l2_pool;
};
static_assert(offsetof(RegistryLayout, ports) == k_cache_line);
static_assert(offsetof(RegistryLayout, stats) ==
              k_cache_line + k_max_ports * sizeof(PortEntry) + k_max_queues * sizeof(QueueEntry));
static_assert(offsetof(RegistryLayout, l2_pool) == offsetof(RegistryLayout, stats) + k_max_queues * sizeof(QueueStats));

// A view of the registry (primary or secondary); owns nothing.
class Registry {
public:
    Registry() = default;
    explicit Registry(RegistryLayout* layout) : layout_(layout) {}

    // Primary: creates and zeroes the region. Secondary: attaches (errors name the region).
    static Result<Registry> create(unsigned max_queues);
    static Result<Registry> attach();

    bool valid() const { return layout_ != nullptr; }
    RegistryLayout& layout() const { return *layout_; }
    PortEntry& port(unsigned index) const { return layout_->ports[index]; }
    QueueEntry& queue(QueueSlot slot) const { return layout_->queues[slot]; }
    QueueStats& stats(QueueSlot slot) const { return layout_->stats[slot]; }
    L2PoolEntry& l2_pool() const { return layout_->l2_pool; }
    unsigned nb_slots() const { return layout_->nb_slots; }
    std::uint64_t live_mask() const { return layout_->live_mask.load(std::memory_order_acquire); }
    bool is_live(QueueSlot slot) const { return (live_mask() >> slot) & 1u; }

    // Primary: adds a port owning `nb_queues` new queue slots. EINVAL/ENOSPC when limits are hit.
    Result<unsigned> add_port(const PortSpec& spec);
    Result<unsigned> add_port(const PortEntry& entry);

    // Manager: free -> owned for (pid, lcore); returns the new owner's epoch. EBUSY if not free.
    Result<Epoch> claim(QueueSlot slot, std::int32_t pid, std::uint16_t lcore_id);
    // Manager: owned -> draining (stops new traffic; RETA re-pointed by the caller).
    void begin_drain(QueueSlot slot);
    // Manager: draining -> free, after reclaim.
    void release(QueueSlot slot);
    // Adoption leases (QueueEntry::adopter). Any stack, for a queue of its own RETA-less port:
    // takes the lease of free queue `queue` for `adopter` (its own owner tag). False when the queue
    // is not free or another stack holds the lease. Seq_cst with claim(): either the adopter sees
    // the queue owned (and lets go at once) or the new owner sees the lease (and waits).
    bool try_adopt(QueueSlot queue, OwnerTag adopter);
    // The adopter: gives the lease back (no-op if it does not hold it).
    void release_adoption(QueueSlot queue, OwnerTag adopter);
    // Reclaim, for a dead (or stopped) stack: gives back every lease it held; returns the count.
    unsigned release_adoptions_of(OwnerTag adopter);
    // Who polls `queue` for it now (empty: nobody).
    OwnerTag adopter_of(QueueSlot slot) const {
        return OwnerTag{queue(slot).adopter.load(std::memory_order_seq_cst)};
    }
    // Owner tag an owner of `slot` writes into its mbufs now.
    OwnerTag owner_tag(QueueSlot slot) const {
        return OwnerTag::of(slot, queue(slot).epoch.load(std::memory_order_acquire));
    }

private:
    RegistryLayout* layout_ = nullptr;
};

} // namespace gazelle::fabric
