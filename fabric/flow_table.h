// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// FlowTable: the fabric's shared flow rules, one rte_hash in hugepage memory that every process
// reads and writes. It answers "which queue owns this packet?":
//  - connection rules: FlowKey (4-tuple + proto) -> owner (QueueSlot, Epoch), stored in the 64-bit
//    hash data value itself (no pointer, nothing to free);
//  - listener sets: FlowKey (proto, local ip, local port) -> the set of queues listening, kept in
//    a listener table of our own (region "<name>_state"); the hash data is an index into it.
// Shared memory: rte_hash "<name>" (DPDK's memzones "HT_<name>", "RG_HT_<name>", ...), region
// "<name>_state" (listener table, deferred-free lists, stripe locks, counters) and region
// "<name>_qsbr" (the rte_rcu_qsbr variable); <name> is "gz_flow" by default.
// Design, measurements and limits: doc/fabric-flow-table.md.
//
// Process and thread model:
//  - the primary (gazelle-mgr, or a test) creates the table; stacks attach. FlowTable is a view:
//    cheap to copy, owns nothing; only the creator calls destroy().
//  - Readers (lookup, lookup_burst) never lock and never write shared memory. A reader thread
//    is a QSBR reader with id = its queue slot: reader_online(slot) before its first lookup,
//    reader_quiescent(slot) once per poll loop (outside any lookup), reader_offline(slot)
//    before it stops or blocks. Lookups from a thread that is not online are unsafe against
//    concurrent deletes (a freed key slot may be reused under it).
//  - Writers (every call that adds, removes or reclaims) must run on an EAL lcore thread whose
//    lcore id is unique across all processes of the fabric: rte_hash's multi-writer mode keeps a
//    free-slot cache per lcore id, unlocked (two processes with one lcore id corrupt the table;
//    a non-EAL thread would index past the array, so writers return -EINVAL there). The writer
//    id (`slot`/`deleter`/`writer` arguments) is the caller's queue slot, or k_manager_slot for
//    the manager; one thread per writer id. Stacks forward listen()/close() to their lcore thread.
//  - Deleted key slots are freed after a grace period: each delete appends (position, token) to
//    the deleting writer's deferred list, in shared memory; reclaim_deferred(writer), called
//    from the writer's poll loop after reader_quiescent(), frees what is safe. Nothing blocks: a
//    full deferred list makes deletes return -EAGAIN.
//  - Crash reclaim (manager): take_reader_offline(dead), remove_owned_by(dead, epoch), then
//    reclaim_deferred(dead) until deferred_pending(dead) == 0.
//  - `hash` arguments must be flow_hash(key): reclaim recomputes it for keys found by iteration.
//
// Packet-path calls are noexcept and return counts or negative errno; control-path calls return
// Result<T>. Nothing here logs, allocates on the packet path, or ends the process.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "conf/result.h"
#include "fabric/flow_key.h"
#include "fabric/types.h"

struct rte_hash;
struct rte_rcu_qsbr;

namespace gazelle::fabric {

inline constexpr char k_flow_table_name[] = "gz_flow";
// Writer and QSBR reader id of the manager: one past the last queue slot.
inline constexpr QueueSlot k_manager_slot = static_cast<QueueSlot>(k_max_queues);
// Writer ids (deferred lists) and QSBR reader ids: every queue slot plus the manager.
inline constexpr unsigned k_flow_writers = k_max_queues + 1;

struct FlowTableConfig {
    // Table name; memzones "<name>_state" and "<name>_qsbr" and rte_hash "<name>" are created.
    // At most 20 characters (memzone names are limited to 31).
    std::string name = k_flow_table_name;
    // rte_hash entries: connection rules plus one key per listener set. rte_hash rounds the
    // bucket array up to a power of two; a table reliably fills to ~90% of this.
    std::uint32_t rules = 65536;
    // Listener sets (distinct (proto, ip, port) being listened on), 1..65535.
    std::uint32_t listeners = 1024;
    // Deferred-free list length per writer id (power of two, 2..1M): deletes not yet freed.
    std::uint32_t deferred_per_writer = 1024;
};

enum class FlowHitKind : std::uint8_t { none = 0, connection = 1, listener = 2 };

// One lookup result.
struct FlowHit {
    FlowHitKind kind = FlowHitKind::none;
    std::uint8_t reserved_ = 0;
    QueueSlot slot = k_no_queue; // connection: owner
    Epoch epoch = 0;             // connection: owner's epoch
    std::uint64_t mask = 0;      // listener: bit q set = queue slot q listens (never 0 on a hit)

    friend constexpr bool operator==(const FlowHit&, const FlowHit&) = default;
};
static_assert(sizeof(FlowHit) == 16);

// One rule, for "show rules" and reclaim.
struct FlowRule {
    FlowKey key;
    FlowHit hit;
};

// Sums over every writer id (each writer counts its own operations on its own cache line).
struct FlowTableStats {
    std::uint64_t adds = 0;                 // connection rules inserted
    std::uint64_t add_existing = 0;         // add of a rule the caller already owns (no-op, 0)
    std::uint64_t add_failed_exists = 0;    // -EEXIST: the key belongs to another owner
    std::uint64_t add_failed_full = 0;      // -ENOSPC: table or listener table full
    std::uint64_t deletes = 0;              // keys deleted (connection rules and listener keys)
    std::uint64_t delete_failed_busy = 0;   // -EAGAIN: deleter's deferred list full
    std::uint64_t freed = 0;                // key slots freed after their grace period
    std::uint64_t listener_joins = 0;
    std::uint64_t listener_leaves = 0;
    std::uint64_t listener_creates = 0;     // listener keys inserted (first joiner)
    // Join-vs-last-leave races: the last leaver found a joiner's bit and kept the set, or a joiner
    // found the set closing after adding its bit (and settled it under the stripe lock).
    std::uint64_t listener_reopened = 0;
    std::uint64_t listener_join_raced = 0;
    std::uint64_t pending_free = 0;         // gauge: deleted, waiting for a grace period
    std::uint32_t keys = 0;                 // gauge: count()
};

// What remove_owned_by() did for one dead owner.
struct OwnerSweep {
    unsigned connections = 0;   // connection rules deleted
    unsigned listeners = 0;     // listener sets the owner was removed from
    unsigned locks_broken = 0;  // table stripe locks the dead writer still held
    bool intent_finished = false; // a delete it was in the middle of was completed
    bool complete = true;       // false: the manager's deferred list filled up; call again later
};

class FlowTable {
public:
    FlowTable() = default;

    // Primary: creates the rte_hash and the regions. Errors: EINVAL (config out of range, says
    // which field), EEXIST (a table of that name exists), ENOMEM (hugepages; says how much).
    static Result<FlowTable> create(const FlowTableConfig& config);
    // Any process: finds table `name` (rte_hash_find_existing) and its regions. Errors: ENOENT,
    // EPROTO (region made by another build).
    static Result<FlowTable> attach(const std::string& name = k_flow_table_name);
    // Creator only, once no other process uses the table: frees the hash and the regions.
    static void destroy(const std::string& name = k_flow_table_name);

    bool valid() const noexcept { return hash_ != nullptr; }
    std::uint32_t capacity() const noexcept;
    std::uint32_t listener_capacity() const noexcept;
    std::uint32_t deferred_capacity() const noexcept;
    // Keys present (connection rules + listener keys), excluding deleted keys whose slots wait
    // for a grace period. Exact when no write is in flight.
    std::uint32_t count() const noexcept;
    FlowTableStats stats() const noexcept;

    // --- packet path: connections -------------------------------------------------------------
    // Adds key -> (slot, epoch). Writer = slot (< k_max_queues). Returns 0 when added, or when the
    // same (slot, epoch) already owns it (idempotent); -EEXIST when another owner (another slot,
    // or an earlier epoch of this slot) has it; -ENOSPC when the table is full (counted, nothing
    // changed); -EINVAL for a listener key, a bad slot or a non-EAL thread.
    int add_connection(const FlowKey& key, std::uint32_t hash, QueueSlot slot, Epoch epoch) noexcept;
    // Deletes a connection rule. The deleter must own it, or be k_manager_slot. Returns 0, or
    // -ENOENT (no such rule), -EPERM (owned by another slot), -EAGAIN (deleter's deferred list
    // full: call reclaim_deferred(deleter) and retry; counted), -EINVAL (listener key, bad id,
    // non-EAL thread).
    int remove_connection(const FlowKey& key, std::uint32_t hash, QueueSlot deleter) noexcept;

    // Looks n = min(keys, hashes, out) keys up (rte_hash_lookup_with_hash_bulk_data in chunks of
    // RTE_HASH_LOOKUP_BULK_MAX), fills out[0..n) and returns the number of hits. A listener key
    // whose set is empty (last member leaving) is a miss.
    unsigned lookup_burst(std::span<const FlowKey> keys, std::span<const std::uint32_t> hashes,
                          std::span<FlowHit> out) const noexcept;
    // Single-key lookup (the slow path; prefer bursts).
    FlowHit lookup(const FlowKey& key, std::uint32_t hash) const noexcept;

    // Chooses the queue for a new flow matching a listener set: `local` if it is in `mask` (no
    // forwarding), else one of the set bits chosen by `flow_hash` (use the connection key's
    // flow_hash, so SYN retransmits land on the same queue while the set is unchanged).
    // Returns k_no_queue for an empty mask. Callers normally pass mask & live_mask.
    static QueueSlot pick_listener(std::uint64_t mask, QueueSlot local, std::uint32_t flow_hash) noexcept;

    // --- listener sets (stack thread, on listen()/close()) -------------------------------------
    // ip and port in network byte order; ip 0 = wildcard. Writer = slot. Call them from the slot's
    // thread while it is an online reader (a stack thread is): then no listener entry it looked
    // up can be freed and reused under it. Any number of processes may join and leave one set
    // concurrently (design: doc/fabric-flow-table.md "Listener sets").
    // add_listener: puts slot (with its epoch) into the set, creating the listener key if this is
    // the first member. 0 on success, also when already a member (the epoch is refreshed);
    // -ENOSPC table or listener table full (counted); -EBUSY the key kept changing under us
    // (only while the manager reclaims a dead member of this very listener; retry); -EINVAL.
    int add_listener(std::uint8_t proto, std::uint32_t ip, std::uint16_t port, QueueSlot slot, Epoch epoch) noexcept;
    // Takes slot out of the set; the last member deletes the listener key (deferred free).
    // 0, -ENOENT (not a member), -EAGAIN (slot's deferred list full; counted), -EINVAL.
    int remove_listener(std::uint8_t proto, std::uint32_t ip, std::uint16_t port, QueueSlot slot) noexcept;

    // --- QSBR: readers ------------------------------------------------------------------------
    // Registers and puts reader `slot` online (0, or -EINVAL for slot > k_manager_slot).
    int reader_online(QueueSlot slot) noexcept;
    // Reports a quiescent state: the thread holds no FlowHit-derived reference into the table.
    void reader_quiescent(QueueSlot slot) noexcept;
    // Offline and unregistered: grace periods stop waiting for this reader.
    void reader_offline(QueueSlot slot) noexcept;
    // Manager: the same for the reader of a dead process (it would block every grace period
    // forever). Works from any process. 0 or -EINVAL.
    int take_reader_offline(QueueSlot slot) noexcept;

    // --- QSBR: deferred frees -------------------------------------------------------------------
    // Frees the key slots (and listener entries) in `writer`'s deferred list whose grace period
    // has passed, oldest first, without waiting; returns how many. Called by the writer's own
    // thread, or by the manager for a dead writer. 0 for a bad id or a non-EAL thread.
    unsigned reclaim_deferred(QueueSlot writer) noexcept;
    unsigned deferred_pending(QueueSlot writer) const noexcept;

    // --- control path (manager) -----------------------------------------------------------------
    // Reclaims a dead owner (slot, epoch): releases the table locks its writer held, completes a
    // delete it was in the middle of, deletes every connection rule of that owner and takes the
    // slot out of every listener set where its epoch matches (with the manager's deferred list).
    // Preconditions: the owner is dead (or stopped writing) and the caller is the manager thread
    // (writer k_manager_slot, QSBR reader k_manager_slot while it iterates). EINVAL for a bad slot.
    Result<OwnerSweep> remove_owned_by(QueueSlot slot, Epoch epoch);
    // Every key with its current value (connection owner or listener mask). Iterates as QSBR
    // reader k_manager_slot: one thread at a time, not the packet path.
    Result<std::vector<FlowRule>> rules() const;
    // The same, one rule at a time; returns the number visited.
    Result<std::size_t> for_each_rule(const std::function<void(const FlowRule&)>& visit) const;

    // --- test hook ---------------------------------------------------------------------------
    // Where crash_in_delete_for_test() stops, as if the writer's process died there.
    enum class CrashPoint : std::uint8_t {
        before_delete,    // connection: intent recorded, key not deleted yet
        after_delete,     // connection: key deleted, position not yet on the deferred list
        listener_closing, // the writer emptied a listener set and moved it to closing, key not deleted
    };
    // Tests only: runs a delete by `writer` (remove_connection, or remove_listener of its last
    // member for listener_closing) up to `where` and returns with the stripe lock still held and
    // the intent recorded, so remove_owned_by() has a dead writer's mess to repair. 0 or -errno.
    int crash_in_delete_for_test(const FlowKey& key, QueueSlot writer, CrashPoint where) noexcept;

    // Implementation types (fabric/flow_table.cc); opaque here.
    struct State;
    struct Writer;
    struct Listener;

private:
    FlowTable(rte_hash* hash, State* state, rte_rcu_qsbr* qsbr) noexcept
        : hash_(hash), state_(state), qsbr_(qsbr) {}

    int remove_connection_impl(const FlowKey& key, std::uint32_t hash, QueueSlot deleter,
                               std::uint64_t expect) noexcept;
    int delete_locked(Writer& w, const FlowKey& key, std::uint32_t hash, std::int32_t pos,
                      std::uint64_t value, std::uint32_t listener_plus_one) noexcept;
    void close_listener_locked(Writer& w, std::uint32_t index, std::uint32_t gen) noexcept;
    int leave(const FlowKey& key, std::uint32_t hash, QueueSlot member, QueueSlot writer) noexcept;
    bool finish_intent(QueueSlot dead) noexcept;
    bool drop_orphan_listener(std::uint32_t index, QueueSlot member) noexcept;
    Result<std::size_t> iterate(const std::function<void(const FlowRule&)>& visit) const;
    FlowHit decode(std::uint64_t value) const noexcept;

    rte_hash* hash_ = nullptr;
    State* state_ = nullptr;
    rte_rcu_qsbr* qsbr_ = nullptr;
};

} // namespace gazelle::fabric
