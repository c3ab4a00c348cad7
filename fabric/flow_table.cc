// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/flow_table.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>

#include <sched.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_lcore.h>
#include <rte_memory.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>

#include "fabric/shared_region.h"

namespace gazelle::fabric {

namespace {

constexpr std::uint64_t k_state_magic = make_magic("GZFLOWST");
constexpr std::uint64_t k_qsbr_magic = make_magic("GZFLOWQS");
constexpr std::uint32_t k_flow_layout = 1;

// Writers serialise check-then-act sequences on one key (add only if absent, delete only if
// owned, last leaver deletes) on a stripe lock chosen by the key's hash. rte_hash's own writer
// lock cannot do this: add of an existing key silently overwrites its data.
constexpr unsigned k_stripes = 1024;
// A stripe holder preempted on a shared CPU keeps the lock for a time slice; after this many
// pauses the waiter yields its CPU (never on an uncontended path).
constexpr unsigned k_spins_before_yield = 1024;
// add_listener retries while the key is being deleted or re-created under it; more than a few
// rounds only happen while the manager reclaims a dead member of that very listener.
constexpr unsigned k_join_attempts = 64;
// remove_owned_by() repeats its scan until one finds nothing: a concurrent cuckoo displacement
// can move a key behind rte_hash_iterate's cursor.
constexpr unsigned k_sweep_passes = 8;
constexpr std::size_t k_name_max = 20;

// The 64-bit value stored with each key (never a pointer):
//   connection: tag 1 << 48 | slot << 32 | epoch
//   listener:   tag 2 << 48 | generation << 16 | listener index
constexpr std::uint64_t k_tag_mask = 3ull << 48;
constexpr std::uint64_t k_tag_connection = 1ull << 48;
constexpr std::uint64_t k_tag_listener = 2ull << 48;
constexpr std::uint32_t k_listeners_max = 0xffff;

constexpr std::uint64_t connection_value(QueueSlot slot, Epoch epoch) {
    return k_tag_connection | (std::uint64_t{slot} << 32) | epoch;
}
constexpr std::uint64_t listener_value(std::uint32_t index, std::uint32_t gen) {
    return k_tag_listener | (std::uint64_t{gen} << 16) | index;
}
constexpr std::uint32_t listener_index(std::uint64_t v) { return static_cast<std::uint32_t>(v & 0xffff); }
constexpr std::uint32_t listener_gen(std::uint64_t v) { return static_cast<std::uint32_t>(v >> 16); }

std::uint64_t as_value(const void* data) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(data)); }
void* as_data(std::uint64_t value) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value)); }

// Listener entry control word: generation << 32 | state. The generation changes whenever the
// entry is reused, so a stale index from an old lookup never matches.
constexpr std::uint64_t k_free = 0;
constexpr std::uint64_t k_live = 1;
constexpr std::uint64_t k_closing = 2; // last member left; its key is being deleted
constexpr std::uint64_t make_ctl(std::uint32_t gen, std::uint64_t state) { return (std::uint64_t{gen} << 32) | state; }
constexpr std::uint32_t ctl_gen(std::uint64_t c) { return static_cast<std::uint32_t>(c >> 32); }
constexpr std::uint64_t ctl_state(std::uint64_t c) { return c & 0xff; }

// What a writer was deleting when it died (see Writer::intent).
constexpr std::uint32_t k_intent_none = 0;
constexpr std::uint32_t k_intent_delete = 1;

enum Counter : unsigned {
    c_adds,
    c_add_existing,
    c_add_failed_exists,
    c_add_failed_full,
    c_deletes,
    c_delete_failed_busy,
    c_freed,
    c_joins,
    c_leaves,
    c_creates,
    c_reopens,
    c_join_races,
    c_counters,
};

// Writers must be EAL lcore threads: rte_hash indexes its free-slot caches by rte_lcore_id().
bool on_eal_lcore() { return rte_lcore_id() < RTE_MAX_LCORE; }

} // namespace

// --- shared layout (region "<name>_state"); ABI: bump k_flow_layout on any change ---------------

// A deleted key slot waiting for its grace period.
struct DeferredEntry {
    std::int32_t pos;        // rte_hash key position
    std::uint32_t listener;  // listener entry index + 1 to free with it, 0 = none
    std::uint64_t token;     // rte_rcu_qsbr_start() after the delete
};
static_assert(sizeof(DeferredEntry) == 16);

// One per writer id. Written only by that writer's thread, or by the manager once it is dead.
struct FlowTable::Writer {
    // Deferred list: entries [head, tail) wait for a grace period (free-running counters).
    alignas(k_cache_line) std::atomic<std::uint32_t> head;
    std::atomic<std::uint32_t> tail;
    // Set while a delete is between "decided" and "queued on the deferred list", so a crash in
    // that window neither leaks the key slot nor leaves a half-closed listener (finish_intent).
    std::atomic<std::uint32_t> intent;
    std::int32_t intent_pos;
    std::uint32_t intent_hash;
    std::uint32_t intent_listener; // listener index + 1, 0 = connection rule
    std::uint64_t intent_value;
    FlowKey intent_key;
    std::uint16_t id;
    // Counters: single writer, relaxed; readers sum them (stats()).
    alignas(k_cache_line) std::atomic<std::uint64_t> counters[c_counters];
};
static_assert(sizeof(FlowTable::Writer) == 3 * k_cache_line);
static_assert(c_counters <= 16, "counters fit their two cache lines");

// One listener set. `mask` is what the packet path reads; the rest is for writers.
struct FlowTable::Listener {
    alignas(k_cache_line) std::atomic<std::uint64_t> mask; // bit q: queue slot q listens
    std::atomic<std::uint64_t> ctl;                        // generation << 32 | state
    FlowKey key;                                           // written before the key is published
    std::uint32_t hash;
    std::uint32_t reserved_;
    // Epoch of each member when it joined: reclaim removes a dead owner only where it matches.
    alignas(k_cache_line) std::atomic<Epoch> epochs[k_max_queues];
};
static_assert(sizeof(FlowTable::Listener) == 5 * k_cache_line);

struct FlowTable::State {
    // Written once by the creator.
    std::uint32_t rules;
    std::uint32_t listeners;
    std::uint32_t deferred_capacity; // per writer, power of two
    std::uint32_t reserved_;
    std::uint64_t writers_offset;    // bytes from the start of State
    std::uint64_t deferred_offset;
    std::uint64_t listeners_offset;
    // Any writer: where the next free-listener search starts.
    alignas(k_cache_line) std::atomic<std::uint32_t> listener_hint;
    // 0 = free, else the holder's writer id + 1 (so the manager can break a dead writer's locks).
    alignas(k_cache_line) std::atomic<std::uint32_t> stripes[k_stripes];
};
static_assert(offsetof(FlowTable::State, listener_hint) == k_cache_line);
static_assert(offsetof(FlowTable::State, stripes) == 2 * k_cache_line);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free);

namespace {

using State = FlowTable::State;
using Writer = FlowTable::Writer;
using Listener = FlowTable::Listener;

char* base_of(State* st) { return reinterpret_cast<char*>(st); }
Writer& writer_of(State* st, unsigned id) { return reinterpret_cast<Writer*>(base_of(st) + st->writers_offset)[id]; }
DeferredEntry* deferred_of(State* st, unsigned id) {
    return reinterpret_cast<DeferredEntry*>(base_of(st) + st->deferred_offset) + std::size_t{id} * st->deferred_capacity;
}
Listener& listener_of(State* st, std::uint32_t index) {
    return reinterpret_cast<Listener*>(base_of(st) + st->listeners_offset)[index];
}

void bump(Writer& w, Counter c, std::uint64_t n = 1) {
    auto& a = w.counters[c];
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

bool has_room(const State* st, const Writer& w) {
    return w.tail.load(std::memory_order_relaxed) - w.head.load(std::memory_order_acquire) < st->deferred_capacity;
}

void push_deferred(State* st, Writer& w, std::int32_t pos, std::uint32_t listener, std::uint64_t token) {
    const std::uint32_t tail = w.tail.load(std::memory_order_relaxed);
    DeferredEntry& e = deferred_of(st, w.id)[tail & (st->deferred_capacity - 1)];
    e.pos = pos;
    e.listener = listener;
    e.token = token;
    w.tail.store(tail + 1, std::memory_order_release);
}

bool pending_contains(State* st, const Writer& w, std::int32_t pos) {
    const DeferredEntry* list = deferred_of(st, w.id);
    for (std::uint32_t i = w.head.load(std::memory_order_acquire); i != w.tail.load(std::memory_order_acquire); ++i) {
        if (list[i & (st->deferred_capacity - 1)].pos == pos) {
            return true;
        }
    }
    return false;
}

void set_intent(Writer& w, const FlowKey& key, std::uint32_t hash, std::int32_t pos, std::uint64_t value,
                std::uint32_t listener_plus_one) {
    w.intent_key = key;
    w.intent_hash = hash;
    w.intent_pos = pos;
    w.intent_value = value;
    w.intent_listener = listener_plus_one;
    w.intent.store(k_intent_delete, std::memory_order_release);
}

void clear_intent(Writer& w) { w.intent.store(k_intent_none, std::memory_order_release); }

class StripeLock {
public:
    StripeLock(State* st, std::uint32_t hash, QueueSlot writer) noexcept : word_(&st->stripes[hash & (k_stripes - 1)]) {
        const std::uint32_t me = writer + 1u;
        for (unsigned spins = 1;; ++spins) {
            std::uint32_t expected = 0;
            if (word_->load(std::memory_order_relaxed) == 0 &&
                word_->compare_exchange_weak(expected, me, std::memory_order_acquire, std::memory_order_relaxed)) {
                return;
            }
            rte_pause();
            if (spins % k_spins_before_yield == 0) {
                (void)sched_yield(); // only under contention; see k_spins_before_yield
            }
        }
    }
    ~StripeLock() { word_->store(0, std::memory_order_release); }
    StripeLock(const StripeLock&) = delete;
    StripeLock& operator=(const StripeLock&) = delete;

private:
    std::atomic<std::uint32_t>* word_;
};

std::int64_t alloc_listener(State* st) {
    const std::uint32_t n = st->listeners;
    const std::uint32_t start = st->listener_hint.load(std::memory_order_relaxed) % n;
    for (std::uint32_t i = 0; i < n; ++i) {
        std::uint32_t index = start + i;
        if (index >= n) {
            index -= n;
        }
        Listener& e = listener_of(st, index);
        std::uint64_t c = e.ctl.load(std::memory_order_acquire);
        if (ctl_state(c) != k_free) {
            continue;
        }
        if (e.ctl.compare_exchange_strong(c, make_ctl(ctl_gen(c) + 1, k_live), std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
            st->listener_hint.store(index + 1, std::memory_order_relaxed);
            return index;
        }
    }
    return -1;
}

void free_listener(Listener& e) {
    e.mask.store(0, std::memory_order_relaxed);
    const std::uint64_t c = e.ctl.load(std::memory_order_relaxed);
    e.ctl.store(make_ctl(ctl_gen(c), k_free), std::memory_order_release);
}

std::string table_error(const std::string& name, const std::string& what) {
    return "flow table '" + name + "': " + what;
}

} // namespace

// --- creation and attachment ---------------------------------------------------------------------

Result<FlowTable> FlowTable::create(const FlowTableConfig& config) {
    const std::string& name = config.name;
    if (name.empty() || name.size() > k_name_max) {
        return make_error(EINVAL, table_error(name, "name must be 1.." + std::to_string(k_name_max) + " characters"));
    }
    if (config.rules < 8 || config.rules > RTE_HASH_ENTRIES_MAX) {
        return make_error(EINVAL, table_error(name, "rules " + std::to_string(config.rules) + " is out of range 8.." +
                                                        std::to_string(RTE_HASH_ENTRIES_MAX)));
    }
    if (config.listeners == 0 || config.listeners > k_listeners_max) {
        return make_error(EINVAL, table_error(name, "listeners " + std::to_string(config.listeners) +
                                                        " is out of range 1.." + std::to_string(k_listeners_max)));
    }
    if (config.deferred_per_writer < 2 || config.deferred_per_writer > (1u << 20) ||
        !std::has_single_bit(config.deferred_per_writer)) {
        return make_error(EINVAL, table_error(name, "deferred_per_writer " + std::to_string(config.deferred_per_writer) +
                                                        " must be a power of two in 2..1048576"));
    }
    if (rte_hash_find_existing(name.c_str()) != nullptr) {
        return make_error(EEXIST, table_error(name, "already exists"));
    }

    const std::size_t writers_offset = sizeof(State);
    const std::size_t deferred_offset = writers_offset + k_flow_writers * sizeof(Writer);
    const std::size_t listeners_offset =
        deferred_offset + std::size_t{k_flow_writers} * config.deferred_per_writer * sizeof(DeferredEntry);
    const std::size_t state_bytes = listeners_offset + std::size_t{config.listeners} * sizeof(Listener);
    auto region = create_region(name + "_state", state_bytes, k_state_magic, k_flow_layout);
    if (!region) {
        return region.error();
    }
    auto* st = static_cast<State*>(*region);
    st->rules = config.rules;
    st->listeners = config.listeners;
    st->deferred_capacity = config.deferred_per_writer;
    st->writers_offset = writers_offset;
    st->deferred_offset = deferred_offset;
    st->listeners_offset = listeners_offset;
    for (unsigned id = 0; id < k_flow_writers; ++id) {
        writer_of(st, id).id = static_cast<std::uint16_t>(id);
    }

    const std::size_t qsbr_bytes = rte_rcu_qsbr_get_memsize(k_flow_writers);
    auto qsbr_region = create_region(name + "_qsbr", qsbr_bytes, k_qsbr_magic, k_flow_layout);
    if (!qsbr_region) {
        free_region(name + "_state");
        return qsbr_region.error();
    }
    auto* qsbr = static_cast<rte_rcu_qsbr*>(*qsbr_region);
    if (rte_rcu_qsbr_init(qsbr, k_flow_writers) != 0) {
        const int err = rte_errno;
        free_region(name + "_qsbr");
        free_region(name + "_state");
        return make_error(err, table_error(name, std::string("Failed to initialise QSBR variable: ") + rte_strerror(err)));
    }

    rte_hash_parameters params{};
    params.name = name.c_str();
    params.entries = config.rules;
    params.key_len = sizeof(FlowKey);
    // Only ever called in this process (never: every call passes its hash), but keep the
    // table's own notion of the hash equal to flow_hash().
    params.hash_func = rte_hash_crc;
    params.hash_func_init_val = 0;
    params.socket_id = SOCKET_ID_ANY;
    params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
    rte_hash* h = rte_hash_create(&params);
    if (h == nullptr) {
        const int err = rte_errno != 0 ? rte_errno : ENOMEM;
        free_region(name + "_qsbr");
        free_region(name + "_state");
        // Buckets (64 B per 8 entries, power of two), 32-B key slots (+ lcore caches), slot ring.
        const std::uint64_t pow2 = std::bit_ceil(std::uint64_t{config.rules});
        const std::uint64_t slots = std::uint64_t{config.rules} + static_cast<std::uint64_t>(RTE_MAX_LCORE - 1) * 63 + 1;
        const std::uint64_t bytes = pow2 * 8 + slots * 32 + std::bit_ceil(slots) * 4;
        return make_error(err, table_error(name, "Failed to create rte_hash of " + std::to_string(config.rules) +
                                                     " entries (about " + std::to_string(bytes >> 20) +
                                                     " MiB of hugepage memory): " + rte_strerror(err)));
    }
    return FlowTable(h, st, qsbr);
}

Result<FlowTable> FlowTable::attach(const std::string& name) {
    rte_hash* h = rte_hash_find_existing(name.c_str());
    if (h == nullptr) {
        return make_error(ENOENT, table_error(name, "does not exist: is gazelle-mgr running with the same file prefix?"));
    }
    auto region = attach_region(name + "_state", k_state_magic, k_flow_layout);
    if (!region) {
        return region.error();
    }
    auto qsbr = attach_region(name + "_qsbr", k_qsbr_magic, k_flow_layout);
    if (!qsbr) {
        return qsbr.error();
    }
    return FlowTable(h, static_cast<State*>(*region), static_cast<rte_rcu_qsbr*>(*qsbr));
}

void FlowTable::destroy(const std::string& name) {
    rte_hash_free(rte_hash_find_existing(name.c_str())); // accepts NULL
    free_region(name + "_qsbr");
    free_region(name + "_state");
}

std::uint32_t FlowTable::capacity() const noexcept { return state_->rules; }
std::uint32_t FlowTable::listener_capacity() const noexcept { return state_->listeners; }
std::uint32_t FlowTable::deferred_capacity() const noexcept { return state_->deferred_capacity; }

std::uint32_t FlowTable::count() const noexcept {
    // rte_hash_count() counts key slots not yet freed, i.e. also deleted keys in deferred lists.
    const std::int32_t used = rte_hash_count(hash_);
    std::uint64_t pending = 0;
    for (unsigned id = 0; id < k_flow_writers; ++id) {
        pending += deferred_pending(static_cast<QueueSlot>(id));
    }
    const auto keys = used > 0 ? static_cast<std::uint64_t>(used) : 0u;
    return keys > pending ? static_cast<std::uint32_t>(keys - pending) : 0u;
}

FlowTableStats FlowTable::stats() const noexcept {
    std::uint64_t sum[c_counters] = {};
    FlowTableStats s;
    for (unsigned id = 0; id < k_flow_writers; ++id) {
        const Writer& w = writer_of(state_, id);
        for (unsigned c = 0; c < c_counters; ++c) {
            sum[c] += w.counters[c].load(std::memory_order_relaxed);
        }
        s.pending_free += deferred_pending(static_cast<QueueSlot>(id));
    }
    s.adds = sum[c_adds];
    s.add_existing = sum[c_add_existing];
    s.add_failed_exists = sum[c_add_failed_exists];
    s.add_failed_full = sum[c_add_failed_full];
    s.deletes = sum[c_deletes];
    s.delete_failed_busy = sum[c_delete_failed_busy];
    s.freed = sum[c_freed];
    s.listener_joins = sum[c_joins];
    s.listener_leaves = sum[c_leaves];
    s.listener_creates = sum[c_creates];
    s.listener_reopened = sum[c_reopens];
    s.listener_join_raced = sum[c_join_races];
    s.keys = count();
    return s;
}

// --- connections ---------------------------------------------------------------------------------

int FlowTable::add_connection(const FlowKey& key, std::uint32_t hash, QueueSlot slot, Epoch epoch) noexcept {
    if (slot >= k_max_queues || key.is_listener() || !on_eal_lcore()) {
        return -EINVAL;
    }
    Writer& w = writer_of(state_, slot);
    const std::uint64_t value = connection_value(slot, epoch);
    StripeLock lock(state_, hash, slot);
    void* data = nullptr;
    if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) >= 0) {
        if (as_value(data) == value) {
            bump(w, c_add_existing);
            return 0;
        }
        bump(w, c_add_failed_exists);
        return -EEXIST;
    }
    const int rc = rte_hash_add_key_with_hash_data(hash_, &key, hash, as_data(value));
    if (rc < 0) {
        if (rc == -ENOSPC) {
            bump(w, c_add_failed_full);
        }
        return rc;
    }
    bump(w, c_adds);
    return 0;
}

int FlowTable::remove_connection(const FlowKey& key, std::uint32_t hash, QueueSlot deleter) noexcept {
    return remove_connection_impl(key, hash, deleter, 0);
}

// expect != 0: delete only if the value is exactly `expect` (reclaim), else -ENOENT.
int FlowTable::remove_connection_impl(const FlowKey& key, std::uint32_t hash, QueueSlot deleter,
                                      std::uint64_t expect) noexcept {
    if (deleter > k_manager_slot || key.is_listener() || !on_eal_lcore()) {
        return -EINVAL;
    }
    Writer& w = writer_of(state_, deleter);
    // Checked before anything changes; only this writer fills its list, so room cannot vanish.
    if (!has_room(state_, w)) {
        bump(w, c_delete_failed_busy);
        return -EAGAIN;
    }
    StripeLock lock(state_, hash, deleter);
    void* data = nullptr;
    const std::int32_t pos = rte_hash_lookup_with_hash_data(hash_, &key, hash, &data);
    if (pos < 0) {
        return -ENOENT;
    }
    const std::uint64_t value = as_value(data);
    if (expect != 0 && value != expect) {
        return -ENOENT;
    }
    if (expect == 0 && deleter != k_manager_slot && static_cast<QueueSlot>(value >> 32) != deleter) {
        return -EPERM;
    }
    return delete_locked(w, key, hash, pos, value, 0);
}

// Stripe lock held, room in w's deferred list checked.
int FlowTable::delete_locked(Writer& w, const FlowKey& key, std::uint32_t hash, std::int32_t pos, std::uint64_t value,
                             std::uint32_t listener_plus_one) noexcept {
    set_intent(w, key, hash, pos, value, listener_plus_one);
    const std::int32_t del = rte_hash_del_key_with_hash(hash_, &key, hash);
    if (del >= 0) {
        // The key is unreachable for lookups that start from now on; lookups already running may
        // still read its slot until every online reader passes a quiescent state.
        push_deferred(state_, w, del, listener_plus_one, rte_rcu_qsbr_start(qsbr_));
        bump(w, c_deletes);
    }
    clear_intent(w);
    return del < 0 ? del : 0;
}

// --- lookups -------------------------------------------------------------------------------------

FlowHit FlowTable::decode(std::uint64_t value) const noexcept {
    FlowHit hit;
    switch (value & k_tag_mask) {
    case k_tag_connection:
        hit.kind = FlowHitKind::connection;
        hit.slot = static_cast<QueueSlot>(value >> 32);
        hit.epoch = static_cast<Epoch>(value);
        break;
    case k_tag_listener:
        if (const std::uint32_t index = listener_index(value); index < state_->listeners) {
            const std::uint64_t mask = listener_of(state_, index).mask.load(std::memory_order_acquire);
            if (mask != 0) {
                hit.kind = FlowHitKind::listener;
                hit.mask = mask;
            }
        }
        break;
    default:
        break;
    }
    return hit;
}

unsigned FlowTable::lookup_burst(std::span<const FlowKey> keys, std::span<const std::uint32_t> hashes,
                                 std::span<FlowHit> out) const noexcept {
    const std::size_t n = std::min({keys.size(), hashes.size(), out.size()});
    unsigned hits = 0;
    const void* key_ptrs[RTE_HASH_LOOKUP_BULK_MAX];
    void* data[RTE_HASH_LOOKUP_BULK_MAX];
    for (std::size_t off = 0; off < n; off += RTE_HASH_LOOKUP_BULK_MAX) {
        const auto m = static_cast<unsigned>(std::min<std::size_t>(RTE_HASH_LOOKUP_BULK_MAX, n - off));
        for (unsigned i = 0; i < m; ++i) {
            key_ptrs[i] = &keys[off + i];
        }
        std::uint64_t hit_mask = 0;
        // DPDK's prototype takes a non-const hash array; it only reads it.
        if (rte_hash_lookup_with_hash_bulk_data(hash_, key_ptrs, const_cast<hash_sig_t*>(hashes.data() + off), m,
                                                &hit_mask, data) < 0) {
            hit_mask = 0;
        }
        for (unsigned i = 0; i < m; ++i) {
            FlowHit& h = out[off + i];
            if ((hit_mask >> i) & 1u) {
                h = decode(as_value(data[i]));
                hits += h.kind != FlowHitKind::none ? 1u : 0u;
            } else {
                h = FlowHit{};
            }
        }
    }
    return hits;
}

FlowHit FlowTable::lookup(const FlowKey& key, std::uint32_t hash) const noexcept {
    void* data = nullptr;
    if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) < 0) {
        return FlowHit{};
    }
    return decode(as_value(data));
}

QueueSlot FlowTable::pick_listener(std::uint64_t mask, QueueSlot local, std::uint32_t flow_hash) noexcept {
    if (mask == 0) {
        return k_no_queue;
    }
    if (local < k_max_queues && ((mask >> local) & 1u) != 0) {
        return local;
    }
    // The k-th set bit, k uniform in [0, popcount) by multiply-shift (no division). CRC is linear,
    // so its bits are mixed first (murmur3 finaliser) before taking the high ones.
    std::uint32_t h = flow_hash;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    const auto members = static_cast<std::uint64_t>(std::popcount(mask));
    auto k = static_cast<unsigned>((std::uint64_t{h} * members) >> 32);
    while (k-- > 0) {
        mask &= mask - 1;
    }
    return static_cast<QueueSlot>(std::countr_zero(mask));
}

// --- listener sets -------------------------------------------------------------------------------
//
// Membership is the mask alone (bit q set = slot q is a member; only q's thread, or the manager
// after q died, changes bit q). The control word says whether the entry is live or closing.
//  - join:  mask.fetch_or(bit), then re-check the control word;
//  - leave: mask.fetch_and(~bit) (also on a closing entry of our generation: its closer may be
//           about to reopen it because of our bit); whoever takes the mask to 0 tries to close: under the stripe lock
//           it moves live -> closing, then re-reads the mask; a joiner's bit there means reopen
//           (closing -> live), else it deletes the key.
// Both re-checks are seq_cst, so at least one side sees the other: a joiner that finds "closing"
// takes the stripe lock, which the closer holds until the entry is either live again (the
// joiner is in) or its key is deleted (the joiner starts a new set).

int FlowTable::add_listener(std::uint8_t proto, std::uint32_t ip, std::uint16_t port, QueueSlot slot,
                            Epoch epoch) noexcept {
    if (slot >= k_max_queues || !on_eal_lcore()) {
        return -EINVAL;
    }
    const FlowKey key = FlowKey::listener(proto, ip, port);
    const std::uint32_t hash = flow_hash(key);
    const std::uint64_t bit = std::uint64_t{1} << slot;
    Writer& w = writer_of(state_, slot);
    for (unsigned attempt = 0; attempt < k_join_attempts; ++attempt) {
        void* data = nullptr;
        if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) >= 0) {
            const std::uint64_t value = as_value(data);
            Listener& e = listener_of(state_, listener_index(value));
            const std::uint64_t live = make_ctl(listener_gen(value), k_live);
            if (e.ctl.load(std::memory_order_acquire) == live) {
                e.epochs[slot].store(epoch, std::memory_order_relaxed);
                if ((e.mask.load(std::memory_order_relaxed) & bit) != 0) {
                    return 0; // already a member: epoch refreshed
                }
                const std::uint64_t before = e.mask.fetch_or(bit, std::memory_order_seq_cst);
                if (e.ctl.load(std::memory_order_seq_cst) == live) {
                    bump(w, c_joins);
                    return 0;
                }
                bump(w, c_join_races);
                StripeLock lock(state_, hash, slot);
                if (e.ctl.load(std::memory_order_acquire) == live) { // the closer saw us and reopened
                    bump(w, c_joins);
                    return 0;
                }
                if ((before & bit) == 0) { // the set is gone: take back our bit, start a new set
                    e.mask.fetch_and(~bit, std::memory_order_relaxed);
                }
            }
        }
        StripeLock lock(state_, hash, slot);
        if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) >= 0) {
            continue; // (re)appeared: join it on the next round
        }
        const std::int64_t index = alloc_listener(state_);
        if (index < 0) {
            bump(w, c_add_failed_full);
            return -ENOSPC;
        }
        const auto idx = static_cast<std::uint32_t>(index);
        Listener& e = listener_of(state_, idx);
        const std::uint32_t gen = ctl_gen(e.ctl.load(std::memory_order_relaxed));
        e.key = key;
        e.hash = hash;
        e.epochs[slot].store(epoch, std::memory_order_relaxed);
        e.mask.store(bit, std::memory_order_relaxed);
        // rte_hash publishes the key with a release store: readers that find it see the entry.
        const int rc = rte_hash_add_key_with_hash_data(hash_, &key, hash, as_data(listener_value(idx, gen)));
        if (rc < 0) {
            free_listener(e); // never visible to anyone
            if (rc == -ENOSPC) {
                bump(w, c_add_failed_full);
            }
            return rc;
        }
        bump(w, c_creates);
        bump(w, c_joins);
        return 0;
    }
    return -EBUSY;
}

int FlowTable::remove_listener(std::uint8_t proto, std::uint32_t ip, std::uint16_t port, QueueSlot slot) noexcept {
    if (slot >= k_max_queues || !on_eal_lcore()) {
        return -EINVAL;
    }
    const FlowKey key = FlowKey::listener(proto, ip, port);
    return leave(key, flow_hash(key), slot, slot);
}

int FlowTable::leave(const FlowKey& key, std::uint32_t hash, QueueSlot member, QueueSlot writer_id) noexcept {
    Writer& w = writer_of(state_, writer_id);
    if (!has_room(state_, w)) { // we might be the last member: the delete needs an entry
        bump(w, c_delete_failed_busy);
        return -EAGAIN;
    }
    void* data = nullptr;
    if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) < 0) {
        return -ENOENT;
    }
    const std::uint64_t value = as_value(data);
    if ((value & k_tag_mask) != k_tag_listener) {
        return -ENOENT;
    }
    const std::uint32_t idx = listener_index(value);
    const std::uint32_t gen = listener_gen(value);
    Listener& e = listener_of(state_, idx);
    // Closing is fine too: a last leaver may have moved the set to closing and be about to reopen
    // it because of our bit (the stress test caught a member refused in that window). Only a
    // reused entry (other generation) is not ours.
    const std::uint64_t c = e.ctl.load(std::memory_order_acquire);
    if (ctl_gen(c) != gen || ctl_state(c) == k_free) {
        return -ENOENT;
    }
    const std::uint64_t bit = std::uint64_t{1} << member;
    const std::uint64_t old = e.mask.fetch_and(~bit, std::memory_order_seq_cst);
    if ((old & bit) == 0) {
        return -ENOENT;
    }
    bump(w, c_leaves);
    if (old == bit) {
        StripeLock lock(state_, hash, writer_id);
        close_listener_locked(w, idx, gen);
    }
    return 0;
}

// Stripe lock held, room in w's deferred list checked.
void FlowTable::close_listener_locked(Writer& w, std::uint32_t idx, std::uint32_t gen) noexcept {
    Listener& e = listener_of(state_, idx);
    const FlowKey key = e.key;
    const std::uint32_t hash = e.hash;
    const std::uint64_t value = listener_value(idx, gen);
    void* data = nullptr;
    const std::int32_t pos = rte_hash_lookup_with_hash_data(hash_, &key, hash, &data);
    if (pos < 0 || as_value(data) != value) {
        return; // another last leaver closed it before we got the lock
    }
    set_intent(w, key, hash, pos, value, idx + 1);
    std::uint64_t live = make_ctl(gen, k_live);
    if (!e.ctl.compare_exchange_strong(live, make_ctl(gen, k_closing), std::memory_order_seq_cst)) {
        clear_intent(w);
        return;
    }
    if (e.mask.load(std::memory_order_seq_cst) != 0) { // a joiner got in: the set lives on
        e.ctl.store(make_ctl(gen, k_live), std::memory_order_seq_cst);
        clear_intent(w);
        bump(w, c_reopens);
        return;
    }
    (void)delete_locked(w, key, hash, pos, value, idx + 1); // cannot fail: key present, lock held
}

// --- test hook -----------------------------------------------------------------------------------

int FlowTable::crash_in_delete_for_test(const FlowKey& key, QueueSlot writer_id, CrashPoint where) noexcept {
    if (writer_id >= k_max_queues || !on_eal_lcore()) {
        return -EINVAL;
    }
    Writer& w = writer_of(state_, writer_id);
    if (!has_room(state_, w)) {
        return -EAGAIN;
    }
    const std::uint32_t hash = flow_hash(key);
    // Take the stripe lock and never release it: the "dead" writer still holds it.
    std::atomic<std::uint32_t>& word = state_->stripes[hash & (k_stripes - 1)];
    std::uint32_t expected = 0;
    if (!word.compare_exchange_strong(expected, writer_id + 1u, std::memory_order_acquire)) {
        return -EBUSY;
    }
    void* data = nullptr;
    const std::int32_t pos = rte_hash_lookup_with_hash_data(hash_, &key, hash, &data);
    if (pos < 0) {
        word.store(0, std::memory_order_release);
        return -ENOENT;
    }
    const std::uint64_t value = as_value(data);
    if (where == CrashPoint::listener_closing) {
        const std::uint32_t idx = listener_index(value);
        const std::uint32_t gen = listener_gen(value);
        Listener& e = listener_of(state_, idx);
        e.mask.fetch_and(~(std::uint64_t{1} << writer_id), std::memory_order_seq_cst);
        set_intent(w, key, hash, pos, value, idx + 1);
        std::uint64_t live = make_ctl(gen, k_live);
        (void)e.ctl.compare_exchange_strong(live, make_ctl(gen, k_closing), std::memory_order_seq_cst);
        return 0;
    }
    set_intent(w, key, hash, pos, value, 0);
    if (where == CrashPoint::after_delete) {
        (void)rte_hash_del_key_with_hash(hash_, &key, hash);
    }
    return 0;
}

// --- QSBR ----------------------------------------------------------------------------------------

int FlowTable::reader_online(QueueSlot slot) noexcept {
    if (slot > k_manager_slot || rte_rcu_qsbr_thread_register(qsbr_, slot) != 0) {
        return -EINVAL;
    }
    rte_rcu_qsbr_thread_online(qsbr_, slot);
    return 0;
}

void FlowTable::reader_quiescent(QueueSlot slot) noexcept {
    if (slot <= k_manager_slot) {
        rte_rcu_qsbr_quiescent(qsbr_, slot);
    }
}

void FlowTable::reader_offline(QueueSlot slot) noexcept { (void)take_reader_offline(slot); }

int FlowTable::take_reader_offline(QueueSlot slot) noexcept {
    if (slot > k_manager_slot) {
        return -EINVAL;
    }
    rte_rcu_qsbr_thread_offline(qsbr_, slot);
    (void)rte_rcu_qsbr_thread_unregister(qsbr_, slot); // only fails for an out-of-range id
    return 0;
}

unsigned FlowTable::reclaim_deferred(QueueSlot writer_id) noexcept {
    if (writer_id > k_manager_slot || !on_eal_lcore()) {
        return 0;
    }
    Writer& w = writer_of(state_, writer_id);
    const DeferredEntry* list = deferred_of(state_, writer_id);
    const std::uint32_t mask = state_->deferred_capacity - 1;
    std::uint32_t head = w.head.load(std::memory_order_relaxed);
    const std::uint32_t tail = w.tail.load(std::memory_order_acquire);
    unsigned freed = 0;
    // Tokens grow along the list, so the first one still in its grace period ends the pass.
    while (head != tail) {
        const DeferredEntry& e = list[head & mask];
        if (rte_rcu_qsbr_check(qsbr_, e.token, false) == 0) {
            break;
        }
        (void)rte_hash_free_key_with_position(hash_, e.pos); // fails only for an out-of-range position
        if (e.listener != 0) {
            free_listener(listener_of(state_, e.listener - 1));
        }
        ++head;
        ++freed;
    }
    if (freed != 0) {
        w.head.store(head, std::memory_order_release);
        bump(w, c_freed, freed);
    }
    return freed;
}

unsigned FlowTable::deferred_pending(QueueSlot writer_id) const noexcept {
    if (writer_id > k_manager_slot) {
        return 0;
    }
    const Writer& w = writer_of(state_, writer_id);
    return w.tail.load(std::memory_order_acquire) - w.head.load(std::memory_order_acquire);
}

// --- reclaim and iteration (manager) -------------------------------------------------------------

// The dead writer may have died inside delete_locked(): key deleted but its position not queued
// (it would leak), or a listener moved to closing but its key not deleted (joiners would spin).
bool FlowTable::finish_intent(QueueSlot dead) noexcept {
    Writer& w = writer_of(state_, dead);
    if (w.intent.load(std::memory_order_acquire) == k_intent_none) {
        return false;
    }
    const FlowKey key = w.intent_key;
    const std::uint32_t hash = w.intent_hash;
    const std::int32_t pos = w.intent_pos;
    const std::uint64_t value = w.intent_value;
    const std::uint32_t listener_plus_one = w.intent_listener;
    StripeLock lock(state_, hash, k_manager_slot);
    void* data = nullptr;
    if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) == pos) {
        // Not deleted. A connection rule stays for remove_owned_by(); a half-closed listener is
        // finished (or reopened if a member joined meanwhile). The dead writer checked its list
        // had room before it started, so we can use its list.
        if (listener_plus_one != 0) {
            const std::uint32_t idx = listener_plus_one - 1;
            Listener& e = listener_of(state_, idx);
            const std::uint32_t gen = listener_gen(value);
            // Undo a half close, then close again properly (the set may have been emptied by the
            // dead writer, or have gained a member since).
            std::uint64_t closing = make_ctl(gen, k_closing);
            (void)e.ctl.compare_exchange_strong(closing, make_ctl(gen, k_live), std::memory_order_seq_cst);
            if (e.ctl.load(std::memory_order_acquire) == make_ctl(gen, k_live) &&
                e.mask.load(std::memory_order_seq_cst) == 0) {
                close_listener_locked(w, idx, gen);
            }
        }
    } else if (!pending_contains(state_, w, pos)) {
        push_deferred(state_, w, pos, listener_plus_one, rte_rcu_qsbr_start(qsbr_));
    }
    clear_intent(w);
    return true;
}

// A live entry with the dead member's bit whose key was never published: its creator died between
// allocating it and adding the key. Nobody can see it; free it directly.
bool FlowTable::drop_orphan_listener(std::uint32_t idx, QueueSlot member) noexcept {
    Listener& e = listener_of(state_, idx);
    const std::uint64_t c = e.ctl.load(std::memory_order_acquire);
    if (ctl_state(c) != k_live) {
        return false;
    }
    StripeLock lock(state_, e.hash, k_manager_slot);
    if (e.ctl.load(std::memory_order_acquire) != c) {
        return false;
    }
    void* data = nullptr;
    if (rte_hash_lookup_with_hash_data(hash_, &e.key, e.hash, &data) >= 0 &&
        as_value(data) == listener_value(idx, ctl_gen(c))) {
        return false; // published after all
    }
    const std::uint64_t bit = std::uint64_t{1} << member;
    if ((e.mask.fetch_and(~bit, std::memory_order_seq_cst) & ~bit) == 0) {
        free_listener(e);
    }
    return true;
}

Result<OwnerSweep> FlowTable::remove_owned_by(QueueSlot slot, Epoch epoch) {
    if (slot >= k_max_queues) {
        return make_error(EINVAL, "flow table: remove_owned_by: queue slot " + std::to_string(slot) + " is out of range");
    }
    if (!on_eal_lcore()) {
        return make_error(EINVAL, "flow table: remove_owned_by must run on an EAL lcore thread");
    }
    OwnerSweep sweep;
    // 1. Locks the dead writer held (it died inside a check-then-act sequence).
    for (auto& word : state_->stripes) {
        std::uint32_t held = slot + 1u;
        if (word.compare_exchange_strong(held, 0, std::memory_order_acq_rel)) {
            ++sweep.locks_broken;
        }
    }
    // 2. A delete it was in the middle of.
    sweep.intent_finished = finish_intent(slot);

    // 3. Its connection rules.
    const std::uint64_t value = connection_value(slot, epoch);
    for (unsigned pass = 0; pass < k_sweep_passes; ++pass) {
        std::vector<FlowKey> victims;
        auto visited = iterate([&](const FlowRule& rule) {
            if (rule.hit.kind == FlowHitKind::connection && rule.hit.slot == slot && rule.hit.epoch == epoch) {
                victims.push_back(rule.key);
            }
        });
        if (!visited) {
            return visited.error();
        }
        if (victims.empty()) {
            break;
        }
        for (const FlowKey& key : victims) {
            int rc = remove_connection_impl(key, flow_hash(key), k_manager_slot, value);
            if (rc == -EAGAIN) {
                (void)reclaim_deferred(k_manager_slot);
                rc = remove_connection_impl(key, flow_hash(key), k_manager_slot, value);
            }
            if (rc == 0) {
                ++sweep.connections;
            } else if (rc == -EAGAIN) {
                sweep.complete = false;
                return sweep;
            }
        }
    }

    // 4. Its listener memberships (scanning the listener table also finds sets it was creating).
    const std::uint64_t bit = std::uint64_t{1} << slot;
    for (std::uint32_t idx = 0; idx < state_->listeners; ++idx) {
        Listener& e = listener_of(state_, idx);
        const std::uint64_t c = e.ctl.load(std::memory_order_acquire);
        if (ctl_state(c) == k_free || (e.mask.load(std::memory_order_acquire) & bit) == 0 ||
            e.epochs[slot].load(std::memory_order_relaxed) != epoch) {
            continue;
        }
        const FlowKey key = e.key;
        const std::uint32_t hash = e.hash;
        void* data = nullptr;
        if (rte_hash_lookup_with_hash_data(hash_, &key, hash, &data) < 0 ||
            as_value(data) != listener_value(idx, ctl_gen(c))) {
            sweep.listeners += drop_orphan_listener(idx, slot) ? 1u : 0u;
            continue;
        }
        int rc = leave(key, hash, slot, k_manager_slot);
        if (rc == -EAGAIN) {
            (void)reclaim_deferred(k_manager_slot);
            rc = leave(key, hash, slot, k_manager_slot);
        }
        if (rc == 0) {
            ++sweep.listeners;
        } else if (rc == -EAGAIN) {
            sweep.complete = false;
            return sweep;
        }
    }
    return sweep;
}

Result<std::size_t> FlowTable::iterate(const std::function<void(const FlowRule&)>& visit) const {
    // Online as a reader while walking: key slots we read cannot be freed and reused under us.
    if (rte_rcu_qsbr_thread_register(qsbr_, k_manager_slot) != 0) {
        return make_error(EINVAL, "flow table: cannot register the iterating QSBR reader");
    }
    rte_rcu_qsbr_thread_online(qsbr_, k_manager_slot);
    std::uint32_t next = 0;
    const void* key = nullptr;
    void* data = nullptr;
    std::size_t visited = 0;
    while (rte_hash_iterate(hash_, &key, &data, &next) >= 0) {
        FlowRule rule;
        std::memcpy(&rule.key, key, sizeof rule.key);
        rule.hit = decode(as_value(data));
        if (rule.hit.kind == FlowHitKind::none) {
            continue; // a listener whose last member is leaving
        }
        visit(rule);
        ++visited;
    }
    rte_rcu_qsbr_thread_offline(qsbr_, k_manager_slot);
    (void)rte_rcu_qsbr_thread_unregister(qsbr_, k_manager_slot);
    return visited;
}

Result<std::size_t> FlowTable::for_each_rule(const std::function<void(const FlowRule&)>& visit) const {
    return iterate(visit);
}

Result<std::vector<FlowRule>> FlowTable::rules() const {
    std::vector<FlowRule> out;
    out.reserve(count());
    auto visited = iterate([&](const FlowRule& rule) { out.push_back(rule); });
    if (!visited) {
        return visited.error();
    }
    return out;
}

} // namespace gazelle::fabric
