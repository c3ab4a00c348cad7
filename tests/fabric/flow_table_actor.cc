// SPDX-License-Identifier: BSD-3-Clause
// Helper process for flow_table_mp_test and flow_table_bench: a DPDK primary that creates a flow
// table, or a secondary that attaches to it, then obeys one command per stdin line and answers
// on stdout ("OK ...", "RESULT ...", "ERR ...").
//
//   flow_table_actor <EAL args> -- primary <name> <rules> <listeners> <deferred>
//   flow_table_actor <EAL args> -- secondary <name>
//
// Between commands the actor "idles" like a stack's poll loop: every online reader reports a
// quiescent state and every writer id it used reclaims its deferred list (`freeze` stops that).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_lcore.h>

#include "fabric/eal.h"
#include "fabric/flow_table.h"

namespace {

using namespace gazelle::fabric;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t k_local_ip = 0x0a000001;
constexpr std::uint32_t k_remote_base = 0x0a010000;

// Same keys as tests/fabric/flow_table_test.cc: id -> a TCP 4-tuple.
FlowKey conn(std::uint32_t id) {
    return FlowKey::connection(IPPROTO_TCP, htonl(k_local_ip), htons(80), htonl(k_remote_base + id),
                               htons(static_cast<std::uint16_t>(1024u + id % 60000u)));
}
std::uint32_t id_of(const FlowKey& k) { return ntohl(k.remote_ip) - k_remote_base; }
FlowKey listener_key(unsigned port) { return FlowKey::listener(IPPROTO_TCP, 0, htons(static_cast<std::uint16_t>(port))); }

// Deterministic "random" decisions of the churn writers (splitmix64).
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The churn's final round keeps exactly these ids.
bool final_present(std::uint32_t id) { return id % 4 != 0; }

void sleep_usec(unsigned usec) { (void)usleep(usec); } // usleep: SIGIO-safe enough, callers loop

class Actor {
public:
    explicit Actor(FlowTable table) : t_(table) {}

    int run() {
        std::string line;
        for (;;) {
            if (!read_line(line, 1)) {
                idle();
                continue;
            }
            if (line.empty()) {
                continue;
            }
            if (line == "quit") {
                for (QueueSlot s : online_) {
                    t_.reader_offline(s);
                }
                std::printf("OK bye\n");
                return 0;
            }
            command(line);
        }
    }

private:
    // One line from stdin if available within timeout_ms. EOF = the test died: exit.
    bool read_line(std::string& out, int timeout_ms) {
        for (;;) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                out = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return true;
            }
            pollfd p{STDIN_FILENO, POLLIN, 0};
            const int rc = poll(&p, 1, timeout_ms);
            if (rc <= 0) {
                return false;
            }
            char chunk[512];
            const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
            if (n <= 0) {
                std::exit(3);
            }
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    bool stop_requested() {
        std::string line;
        return read_line(line, 0) && line == "stop";
    }

    void idle() {
        if (frozen_) {
            return;
        }
        for (QueueSlot s : online_) {
            t_.reader_quiescent(s);
        }
        for (QueueSlot w : writers_) {
            (void)t_.reclaim_deferred(w);
        }
    }

    // Retries a delete-like call while the deferred list is full (readers in other processes
    // will quiesce).
    template <typename F>
    int retry_eagain(QueueSlot writer, F&& f, unsigned& eagain) {
        for (unsigned i = 0;; ++i) {
            const int rc = f();
            if (rc != -EAGAIN || i > 200000) {
                return rc;
            }
            ++eagain;
            idle();
            (void)t_.reclaim_deferred(writer);
            sleep_usec(20);
        }
    }

    void command(const std::string& line) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        unsigned a = 0;
        unsigned b = 0;
        unsigned c = 0;
        unsigned d = 0;
        unsigned e = 0;
        if (cmd == "online") {
            in >> a;
            const int rc = t_.reader_online(static_cast<QueueSlot>(a));
            online_.insert(static_cast<QueueSlot>(a));
            std::printf("OK rc=%d\n", rc);
        } else if (cmd == "offline") {
            in >> a;
            t_.reader_offline(static_cast<QueueSlot>(a));
            online_.erase(static_cast<QueueSlot>(a));
            std::printf("OK\n");
        } else if (cmd == "take_offline") {
            in >> a;
            std::printf("OK rc=%d\n", t_.take_reader_offline(static_cast<QueueSlot>(a)));
        } else if (cmd == "freeze") {
            frozen_ = true;
            std::printf("OK\n");
        } else if (cmd == "add") { // add <first> <count> <slot> <epoch>
            in >> a >> b >> c >> d;
            writers_.insert(static_cast<QueueSlot>(c));
            unsigned added = 0, exists = 0, full = 0, other = 0;
            for (std::uint32_t id = a; id < a + b; ++id) {
                const FlowKey k = conn(id);
                const int rc = t_.add_connection(k, flow_hash(k), static_cast<QueueSlot>(c), d);
                (rc == 0 ? added : rc == -EEXIST ? exists : rc == -ENOSPC ? full : other)++;
            }
            std::printf("OK added=%u exists=%u full=%u other=%u\n", added, exists, full, other);
        } else if (cmd == "del") { // del <first> <count> <slot>
            in >> a >> b >> c;
            const auto slot = static_cast<QueueSlot>(c);
            writers_.insert(slot);
            unsigned deleted = 0, missing = 0, other = 0, eagain = 0;
            for (std::uint32_t id = a; id < a + b; ++id) {
                const FlowKey k = conn(id);
                // A frozen actor must not wait: report -EAGAIN as "other".
                const int rc = frozen_ ? t_.remove_connection(k, flow_hash(k), slot)
                                       : retry_eagain(slot, [&] { return t_.remove_connection(k, flow_hash(k), slot); }, eagain);
                (rc == 0 ? deleted : rc == -ENOENT ? missing : other)++;
            }
            std::printf("OK deleted=%u missing=%u other=%u eagain=%u\n", deleted, missing, other, eagain);
        } else if (cmd == "check") { // check <first> <count> <slot> <epoch>
            in >> a >> b >> c >> d;
            unsigned present = 0, absent = 0, wrong = 0;
            for (std::uint32_t id = a; id < a + b; ++id) {
                const FlowKey k = conn(id);
                const FlowHit h = t_.lookup(k, flow_hash(k));
                if (h.kind == FlowHitKind::none) {
                    ++absent;
                } else if (h.kind == FlowHitKind::connection && h.slot == c && h.epoch == d) {
                    ++present;
                } else {
                    ++wrong;
                }
            }
            std::printf("OK present=%u absent=%u wrong=%u\n", present, absent, wrong);
        } else if (cmd == "join") { // join <port> <slot> <epoch>
            in >> a >> b >> c;
            writers_.insert(static_cast<QueueSlot>(b));
            std::printf("OK rc=%d\n", t_.add_listener(IPPROTO_TCP, 0, htons(static_cast<std::uint16_t>(a)),
                                                      static_cast<QueueSlot>(b), c));
        } else if (cmd == "join_many") { // join_many <first_port> <count> <slot> <epoch>
            in >> a >> b >> c >> d;
            writers_.insert(static_cast<QueueSlot>(c));
            unsigned ok = 0, full = 0, other = 0;
            for (unsigned port = a; port < a + b; ++port) {
                const int rc = t_.add_listener(IPPROTO_TCP, 0, htons(static_cast<std::uint16_t>(port)),
                                               static_cast<QueueSlot>(c), d);
                (rc == 0 ? ok : rc == -ENOSPC ? full : other)++;
            }
            std::printf("OK ok=%u full=%u other=%u\n", ok, full, other);
        } else if (cmd == "leave_many") { // leave_many <first_port> <count> <slot>
            in >> a >> b >> c;
            unsigned ok = 0, other = 0, eagain = 0;
            for (unsigned port = a; port < a + b; ++port) {
                const auto p = htons(static_cast<std::uint16_t>(port));
                const auto slot = static_cast<QueueSlot>(c);
                const int rc = retry_eagain(slot, [&] { return t_.remove_listener(IPPROTO_TCP, 0, p, slot); }, eagain);
                (rc == 0 ? ok : other)++;
            }
            std::printf("OK ok=%u other=%u\n", ok, other);
        } else if (cmd == "leave") { // leave <port> <slot>
            in >> a >> b;
            writers_.insert(static_cast<QueueSlot>(b));
            std::printf("OK rc=%d\n",
                        t_.remove_listener(IPPROTO_TCP, 0, htons(static_cast<std::uint16_t>(a)), static_cast<QueueSlot>(b)));
        } else if (cmd == "listener") { // listener <port>
            in >> a;
            const FlowKey k = listener_key(a);
            const FlowHit h = t_.lookup(k, flow_hash(k));
            std::printf("OK kind=%u mask=%" PRIu64 "\n", static_cast<unsigned>(h.kind), h.mask);
        } else if (cmd == "count") {
            unsigned pending = 0;
            for (unsigned w = 0; w < k_flow_writers; ++w) {
                pending += t_.deferred_pending(static_cast<QueueSlot>(w));
            }
            std::printf("OK count=%u pending=%u\n", t_.count(), pending);
        } else if (cmd == "pending") { // pending <writer>
            in >> a;
            std::printf("OK pending=%u\n", t_.deferred_pending(static_cast<QueueSlot>(a)));
        } else if (cmd == "reclaim") { // reclaim <writer>
            in >> a;
            const unsigned freed = t_.reclaim_deferred(static_cast<QueueSlot>(a));
            std::printf("OK freed=%u pending=%u\n", freed, t_.deferred_pending(static_cast<QueueSlot>(a)));
        } else if (cmd == "drain") { // drain <writer> <timeout_ms>
            in >> a >> b;
            const auto w = static_cast<QueueSlot>(a);
            const auto deadline = Clock::now() + std::chrono::milliseconds(b);
            while (t_.deferred_pending(w) != 0 && Clock::now() < deadline) {
                idle();
                (void)t_.reclaim_deferred(w);
                sleep_usec(200);
            }
            std::printf("OK pending=%u\n", t_.deferred_pending(w));
        } else if (cmd == "remove_owned") { // remove_owned <slot> <epoch>
            in >> a >> b;
            writers_.insert(k_manager_slot);
            const auto start = Clock::now();
            auto r = t_.remove_owned_by(static_cast<QueueSlot>(a), b);
            const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
            if (!r) {
                std::printf("ERR %s\n", r.error().message.c_str());
            } else {
                std::printf("OK connections=%u listeners=%u complete=%d locks=%u intent=%d usec=%lld\n", r->connections,
                            r->listeners, r->complete ? 1 : 0, r->locks_broken, r->intent_finished ? 1 : 0,
                            static_cast<long long>(usec));
            }
        } else if (cmd == "rules") {
            auto r = t_.rules();
            if (!r) {
                std::printf("ERR %s\n", r.error().message.c_str());
            } else {
                unsigned conns = 0, listeners = 0;
                for (const FlowRule& rule : *r) {
                    (rule.hit.kind == FlowHitKind::connection ? conns : listeners)++;
                }
                std::printf("OK connections=%u listeners=%u\n", conns, listeners);
            }
        } else if (cmd == "stats") {
            const FlowTableStats s = t_.stats();
            std::printf("OK adds=%" PRIu64 " deletes=%" PRIu64 " freed=%" PRIu64 " full=%" PRIu64 " busy=%" PRIu64
                        " joins=%" PRIu64 " leaves=%" PRIu64 " creates=%" PRIu64 " reopened=%" PRIu64 " raced=%" PRIu64
                        " pending=%" PRIu64 " keys=%u\n",
                        s.adds, s.deletes, s.freed, s.add_failed_full, s.delete_failed_busy, s.listener_joins,
                        s.listener_leaves, s.listener_creates, s.listener_reopened, s.listener_join_raced,
                        s.pending_free, s.keys);
        } else if (cmd == "churn") { // churn <slot> <first> <count> <rounds> <seed>
            in >> a >> b >> c >> d >> e;
            churn(static_cast<QueueSlot>(a), b, c, d, e);
        } else if (cmd == "verify_churn") { // verify_churn <n> <slotA> <slotB>
            in >> a >> b >> c;
            verify_churn(a, static_cast<QueueSlot>(b), static_cast<QueueSlot>(c));
        } else if (cmd == "lookloop") { // lookloop <reader> <n> <slotA> <slotB>
            in >> a >> b >> c >> d;
            lookloop(static_cast<QueueSlot>(a), b, static_cast<QueueSlot>(c), static_cast<QueueSlot>(d));
        } else if (cmd == "listen_stress") { // listen_stress <port> <slot> <epoch> <iters> <end_joined>
            in >> a >> b >> c >> d >> e;
            listen_stress(a, static_cast<QueueSlot>(b), c, d, e != 0);
        } else if (cmd == "listenloop") { // listenloop <reader> <port> <allowed_mask>
            std::uint64_t allowed = 0;
            in >> a >> b >> allowed;
            listenloop(static_cast<QueueSlot>(a), b, allowed);
        } else if (cmd == "bench_churn") { // bench_churn <slot> <first> <count>
            in >> a >> b >> c;
            bench_churn(static_cast<QueueSlot>(a), b, c);
        } else {
            std::printf("ERR unknown command '%s'\n", cmd.c_str());
        }
    }

    // Writer of the concurrent-writers test: `rounds` passes over ids [first, first + count),
    // adding, deleting and re-adding by a deterministic coin; the last pass leaves exactly the
    // ids with final_present(). Values encode the id: epoch = round << 24 | id.
    void churn(QueueSlot slot, std::uint32_t first, std::uint32_t count, unsigned rounds, unsigned seed) {
        writers_.insert(slot);
        std::vector<bool> present(count, false);
        unsigned adds = 0, deletes = 0, readds = 0, eagain = 0, bad = 0;
        const auto start = Clock::now();
        for (unsigned r = 0; r < rounds; ++r) {
            for (std::uint32_t i = 0; i < count; ++i) {
                const std::uint32_t id = first + i;
                const FlowKey k = conn(id);
                const std::uint32_t h = flow_hash(k);
                const std::uint64_t coin = mix((std::uint64_t{seed} << 40) ^ (std::uint64_t{r} << 32) ^ id);
                const bool want = r + 1 == rounds ? final_present(id) : (coin & 1) != 0;
                const Epoch epoch = (r << 24) | id;
                auto del = [&] { return retry_eagain(slot, [&] { return t_.remove_connection(k, h, slot); }, eagain); };
                if (present[i] && (!want || ((coin >> 1) & 3) == 0)) {
                    if (del() != 0) {
                        ++bad;
                    }
                    ++deletes;
                    present[i] = false;
                    if (want) {
                        ++readds;
                    }
                }
                if (want && !present[i]) {
                    if (t_.add_connection(k, h, slot, epoch) != 0) {
                        ++bad;
                    }
                    ++adds;
                    present[i] = true;
                }
                if ((i & 63) == 0) {
                    (void)t_.reclaim_deferred(slot);
                }
            }
        }
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        while (t_.deferred_pending(slot) != 0 && Clock::now() < deadline) {
            (void)t_.reclaim_deferred(slot);
            sleep_usec(100);
        }
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        std::printf("RESULT adds=%u deletes=%u readds=%u eagain=%u bad=%u pending=%u ops_per_sec=%.0f\n", adds,
                    deletes, readds, eagain, bad, t_.deferred_pending(slot), (adds + deletes) / secs);
    }

    // After the churn: exactly the final set present, nothing else, values right, count() agrees.
    void verify_churn(std::uint32_t n, QueueSlot slot_a, QueueSlot slot_b) {
        auto rules = t_.rules();
        if (!rules) {
            std::printf("ERR %s\n", rules.error().message.c_str());
            return;
        }
        std::vector<bool> seen(2 * n, false);
        unsigned found = 0, extra = 0, wrong = 0, duplicate = 0;
        for (const FlowRule& r : *rules) {
            const std::uint32_t id = id_of(r.key);
            if (r.key.is_listener() || id >= 2 * n || !final_present(id) || !(r.key == conn(id))) {
                ++extra;
                continue;
            }
            if (r.hit.kind != FlowHitKind::connection || r.hit.slot != (id < n ? slot_a : slot_b) ||
                (r.hit.epoch & 0xffffff) != id) {
                ++wrong;
            }
            if (seen[id]) {
                ++duplicate;
            }
            seen[id] = true;
            ++found;
        }
        unsigned expected = 0, missing = 0;
        for (std::uint32_t id = 0; id < 2 * n; ++id) {
            if (final_present(id)) {
                ++expected;
                missing += seen[id] ? 0u : 1u;
            }
        }
        std::printf("OK expected=%u found=%u missing=%u extra=%u wrong=%u duplicate=%u count=%u\n", expected, found,
                    missing, extra, wrong, duplicate, t_.count());
    }

    // Reader of the concurrent-writers test: bulk lookups over every id the writers may hold
    // (plus ids nobody ever adds) until "stop"; every hit must be a value its writer could have
    // written for that very key.
    void lookloop(QueueSlot reader, std::uint32_t n, QueueSlot slot_a, QueueSlot slot_b) {
        (void)t_.reader_online(reader);
        const std::uint32_t total = 2 * n + 1024; // the last 1024 ids are never added
        std::vector<FlowKey> keys(total);
        std::vector<std::uint32_t> hashes(total);
        for (std::uint32_t id = 0; id < total; ++id) {
            keys[id] = conn(id);
        }
        flow_hash_burst(keys, hashes);
        std::uint64_t lookups = 0, hits = 0, bad = 0, phantoms = 0, passes = 0;
        FlowHit out[k_burst_max];
        std::printf("OK looping\n");
        std::fflush(stdout);
        for (bool stop = false; !stop; ++passes) {
            for (std::uint32_t off = 0; off < total; off += k_burst_max) {
                const std::uint32_t m = std::min<std::uint32_t>(k_burst_max, total - off);
                hits += t_.lookup_burst(std::span(keys).subspan(off, m), std::span(hashes).subspan(off, m),
                                        std::span(out, m));
                for (std::uint32_t i = 0; i < m; ++i) {
                    const std::uint32_t id = off + i;
                    const FlowHit& h = out[i];
                    if (h.kind == FlowHitKind::none) {
                        continue;
                    }
                    if (id >= 2 * n) {
                        ++phantoms;
                    } else if (h.kind != FlowHitKind::connection || h.slot != (id < n ? slot_a : slot_b) ||
                               (h.epoch & 0xffffff) != id || (h.epoch >> 24) >= 256) {
                        ++bad;
                    }
                }
                lookups += m;
                t_.reader_quiescent(reader);
            }
            stop = stop_requested();
        }
        t_.reader_offline(reader);
        std::printf("RESULT lookups=%" PRIu64 " hits=%" PRIu64 " bad=%" PRIu64 " phantoms=%" PRIu64 " passes=%" PRIu64
                    "\n",
                    lookups, hits, bad, phantoms, passes);
    }

    // Join/leave one listener as fast as possible (another process does the same), ending
    // joined or not.
    void listen_stress(unsigned port, QueueSlot slot, Epoch epoch, unsigned iters, bool end_joined) {
        writers_.insert(slot);
        const auto p = htons(static_cast<std::uint16_t>(port));
        unsigned joins = 0, leaves = 0, errors = 0, eagain = 0, full = 0;
        int first_join_error = 0, first_leave_error = 0;
        // A closed set's entry is reusable only after a grace period: when every entry waits for
        // one (readers descheduled), reclaim and retry. The final join too: CI once saw it
        // refused with -ENOSPC right after the loop.
        auto join = [&] {
            int rc = 0;
            for (unsigned r = 0; r < 200000; ++r) {
                rc = t_.add_listener(IPPROTO_TCP, 0, p, slot, epoch);
                if (rc != -ENOSPC) {
                    break;
                }
                ++full;
                (void)t_.reclaim_deferred(slot);
                sleep_usec(20);
            }
            return rc;
        };
        for (unsigned i = 0; i < iters; ++i) {
            if (const int rc = join(); rc != 0) {
                ++errors;
                first_join_error = first_join_error != 0 ? first_join_error : rc;
            }
            ++joins;
            if (const int rc = retry_eagain(slot, [&] { return t_.remove_listener(IPPROTO_TCP, 0, p, slot); }, eagain);
                rc != 0) {
                ++errors;
                first_leave_error = first_leave_error != 0 ? first_leave_error : rc;
            }
            ++leaves;
            if ((i & 15) == 0) {
                (void)t_.reclaim_deferred(slot);
            }
        }
        if (const int rc = end_joined ? join() : 0; rc != 0) {
            ++errors;
            first_join_error = first_join_error != 0 ? first_join_error : rc;
        }
        std::printf("RESULT joins=%u leaves=%u errors=%u eagain=%u full=%u join_error=%d leave_error=%d\n", joins,
                    leaves, errors, eagain, full, first_join_error, first_leave_error);
    }

    void listenloop(QueueSlot reader, unsigned port, std::uint64_t allowed) {
        (void)t_.reader_online(reader);
        const FlowKey k = listener_key(port);
        const std::uint32_t h = flow_hash(k);
        std::uint64_t lookups = 0, hits = 0, bad = 0;
        std::printf("OK looping\n");
        std::fflush(stdout);
        for (bool stop = false; !stop;) {
            for (unsigned i = 0; i < 256; ++i) {
                const FlowHit hit = t_.lookup(k, h);
                ++lookups;
                if (hit.kind == FlowHitKind::listener) {
                    ++hits;
                    bad += (hit.mask & ~allowed) != 0 || hit.mask == 0 ? 1u : 0u;
                } else if (hit.kind != FlowHitKind::none) {
                    ++bad;
                }
                t_.reader_quiescent(reader);
            }
            stop = stop_requested();
        }
        t_.reader_offline(reader);
        std::printf("RESULT lookups=%" PRIu64 " hits=%" PRIu64 " bad=%" PRIu64 "\n", lookups, hits, bad);
    }

    // Benchmark writer: toggles ids [first, first + count) in and out of the table until "stop".
    void bench_churn(QueueSlot slot, std::uint32_t first, std::uint32_t count) {
        writers_.insert(slot);
        std::vector<bool> present(count, false);
        std::uint64_t ops = 0;
        unsigned eagain = 0, bad = 0;
        std::printf("OK churning\n");
        std::fflush(stdout);
        const auto start = Clock::now();
        for (bool stop = false; !stop;) {
            for (std::uint32_t n = 0; n < 1024; ++n, ++ops) {
                const auto i = static_cast<std::uint32_t>(ops % count);
                const FlowKey k = conn(first + i);
                const std::uint32_t h = flow_hash(k);
                int rc = 0;
                if (present[i]) {
                    rc = retry_eagain(slot, [&] { return t_.remove_connection(k, h, slot); }, eagain);
                } else {
                    rc = t_.add_connection(k, h, slot, 1);
                }
                bad += rc != 0 ? 1u : 0u;
                present[i] = !present[i];
                if ((n & 31) == 0) {
                    (void)t_.reclaim_deferred(slot);
                }
            }
            stop = stop_requested();
        }
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        for (std::uint32_t i = 0; i < count; ++i) {
            if (present[i]) {
                const FlowKey k = conn(first + i);
                (void)retry_eagain(slot, [&] { return t_.remove_connection(k, flow_hash(k), slot); }, eagain);
            }
        }
        std::printf("RESULT ops=%" PRIu64 " ops_per_sec=%.0f eagain=%u bad=%u\n", ops, static_cast<double>(ops) / secs, eagain, bad);
    }

    FlowTable t_;
    std::string buf_;
    std::set<QueueSlot> online_;
    std::set<QueueSlot> writers_;
    bool frozen_ = false;
};

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    auto first = gazelle::fabric::eal_init_from_main(argc, argv);
    if (!first) {
        std::fprintf(stderr, "flow_table_actor: %s\n", first.error().message.c_str());
        return 2;
    }
    std::vector<std::string> args(argv + *first, argv + argc);
    if (args.size() < 2) {
        std::fprintf(stderr, "usage: flow_table_actor <EAL args> -- primary|secondary <name> [rules listeners deferred]\n");
        return 2;
    }
    const bool primary = args[0] == "primary";
    gazelle::Result<FlowTable> table = gazelle::make_error(EINVAL, "unset");
    if (primary) {
        FlowTableConfig config;
        config.name = args[1];
        if (args.size() >= 5) {
            config.rules = static_cast<std::uint32_t>(std::stoul(args[2]));
            config.listeners = static_cast<std::uint32_t>(std::stoul(args[3]));
            config.deferred_per_writer = static_cast<std::uint32_t>(std::stoul(args[4]));
        }
        table = FlowTable::create(config);
    } else {
        table = FlowTable::attach(args[1]);
    }
    if (!table) {
        std::printf("ERR %s\n", table.error().message.c_str());
        (void)rte_eal_cleanup();
        return 1;
    }
    std::printf("READY pid=%d lcore=%u\n", getpid(), rte_lcore_id());
    Actor actor(*table);
    const int rc = actor.run();
    if (primary) {
        FlowTable::destroy(args[1]);
    }
    (void)rte_eal_cleanup();
    return rc;
}
