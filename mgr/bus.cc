// SPDX-License-Identifier: BSD-3-Clause
// The D-Bus object of gazelle-mgr: vtable, handlers, signals (doc/dbus-api.md is the reference;
// keep both in step).
#include "mgr/bus.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <set>

#include <arpa/inet.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "mgr/log.h"

namespace gazelle::mgr {

void BusDeleter::operator()(sd_bus* bus) const {
    (void)sd_bus_flush_close_unref(bus);
}
void BusSlotDeleter::operator()(sd_bus_slot* slot) const {
    (void)sd_bus_slot_unref(slot);
}

namespace {

struct MessageDeleter {
    void operator()(sd_bus_message* m) const { (void)sd_bus_message_unref(m); }
};
using MessagePtr = std::unique_ptr<sd_bus_message, MessageDeleter>;

struct CredsDeleter {
    void operator()(sd_bus_creds* c) const { (void)sd_bus_creds_unref(c); }
};
using CredsPtr = std::unique_ptr<sd_bus_creds, CredsDeleter>;

// D-Bus strings must be valid UTF-8 without NULs; program names and labels come from apps.
// Invalid sequences and control characters become '?'.
std::string wire_string(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = 0;
        if (c >= 0x20 && c < 0x7f) {
            len = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
        }
        bool valid = len > 0 && i + len <= text.size();
        for (std::size_t k = 1; valid && k < len; ++k) {
            valid = (static_cast<unsigned char>(text[i + k]) & 0xc0u) == 0x80u;
        }
        if (valid && len >= 3) {
            // Overlong forms, surrogates and code points past U+10FFFF.
            const auto c1 = static_cast<unsigned char>(text[i + 1]);
            valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0) && !(c == 0xf0 && c1 < 0x90) &&
                    !(c == 0xf4 && c1 >= 0x90);
        }
        if (valid) {
            out.append(text.substr(i, len));
            i += len;
        } else {
            out += '?';
            ++i;
        }
    }
    return out;
}

// Appends to a message, keeping the first error: write everything, check once.
class Writer {
public:
    explicit Writer(sd_bus_message* m) : m_(m) {}

    template <typename... Args> Writer& add(const char* types, Args... args) {
        if (r_ >= 0) {
            r_ = sd_bus_message_append(m_, types, args...);
        }
        return *this;
    }
    Writer& str(std::string_view text) { return add("s", wire_string(text).c_str()); }
    Writer& open(char type, const char* contents) {
        if (r_ >= 0) {
            r_ = sd_bus_message_open_container(m_, type, contents);
        }
        return *this;
    }
    Writer& close() {
        if (r_ >= 0) {
            r_ = sd_bus_message_close_container(m_);
        }
        return *this;
    }
    Writer& array(char type, const void* data, std::size_t bytes) {
        if (r_ >= 0) {
            r_ = sd_bus_message_append_array(m_, type, data, bytes);
        }
        return *this;
    }
    int result() const { return r_; }

private:
    sd_bus_message* m_;
    int r_ = 0;
};

constexpr const char* k_app_type = "(uussa(qu)aqt)";
constexpr const char* k_queue_type = "(qsqsuuqtb)";
constexpr const char* k_rule_type = "(sssqsqqutu)";
constexpr const char* k_conn_type = "(qssqsq)";
constexpr const char* k_app_conns_type = "(usa(qssqsq))";
constexpr const char* k_queue_stats_type = "(qsutttttttttttttttttttttt)";
constexpr const char* k_flow_stats_type = "(tttttttttttttuu)";
constexpr const char* k_pool_type = "(sqsuuuut)";
constexpr const char* k_memp_type = "(qusst)";
constexpr const char* k_memzone_type = "(st)";
constexpr const char* k_hugepages_type = "(tttttt)";
constexpr const char* k_reclaim_type = "(quubbuuutuuuuud)";
constexpr const char* k_port_type = "(ssssqq)";

std::uint64_t usec_since_epoch(std::chrono::system_clock::time_point t) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    return us > 0 ? static_cast<std::uint64_t>(us) : 0;
}

std::string port_name(const BusProperties& props, unsigned port) {
    return port < props.ports.size() ? props.ports[port].name : "port" + std::to_string(port);
}

// Owner pid of every queue slot, and the port of every slot.
struct SlotMap {
    std::vector<std::int32_t> pid;
    std::vector<std::string> port;

    SlotMap(const std::vector<QueueInfo>& queues, const BusProperties& props)
        : pid(fabric::k_max_queues, 0), port(fabric::k_max_queues) {
        for (const QueueInfo& q : queues) {
            if (q.slot < fabric::k_max_queues) {
                pid[q.slot] = q.state == fabric::QueueState::free ? 0 : q.owner_pid;
                port[q.slot] = port_name(props, q.port);
            }
        }
    }
    std::uint32_t pid_of(unsigned slot) const {
        return slot < pid.size() && pid[slot] > 0 ? static_cast<std::uint32_t>(pid[slot]) : 0;
    }
    std::string port_of(unsigned slot) const { return slot < port.size() ? port[slot] : std::string(); }
};

void write_app(Writer& w, const AppRecord& app, const BusProperties& props) {
    w.open('r', "uussa(qu)aqt")
        .add("uu", static_cast<std::uint32_t>(app.pid), static_cast<std::uint32_t>(app.uid))
        .str(app.program)
        .str(port_name(props, app.port))
        .open('a', "(qu)");
    for (std::size_t i = 0; i < app.slots.size(); ++i) {
        const fabric::Epoch epoch = i < app.epochs.size() ? app.epochs[i] : 0;
        w.add("(qu)", app.slots[i], epoch);
    }
    w.close()
        .array('q', app.lcores.data(), app.lcores.size() * sizeof(std::uint16_t))
        .add("t", usec_since_epoch(app.attached_at))
        .close();
}

void write_report(Writer& w, const fabric::ReclaimReport& r) {
    w.add(k_reclaim_type, r.slot, static_cast<std::uint32_t>(r.pid), r.epoch, static_cast<int>(r.was_owned),
          static_cast<int>(r.grace_timed_out), r.rules, r.listeners, r.memp_pools, r.memp_bytes, r.inbox_drained,
          r.rx_drained, r.salvaged, r.cache_flushed, r.mbufs_returned, r.usec);
}

void write_reports(Writer& w, const std::vector<fabric::ReclaimReport>& reports) {
    w.open('a', k_reclaim_type);
    for (const auto& r : reports) {
        write_report(w, r);
    }
    w.close();
}

// Builds and sends the reply of `call`. A reply that cannot be built is a bug of ours, not of the
// caller: it becomes org.freedesktop.DBus.Error.Failed (sd-bus would map -EINVAL to InvalidArgs).
int reply(sd_bus_message* call, sd_bus_error* error, const std::function<void(Writer&)>& fill) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(call, &raw);
    if (r < 0) {
        return r;
    }
    MessagePtr message(raw);
    Writer w(message.get());
    fill(w);
    r = w.result();
    if (r >= 0) {
        r = sd_bus_send(nullptr, message.get(), nullptr);
    }
    if (r < 0) {
        const char* member = sd_bus_message_get_member(call);
        log_error("Failed to send the reply of %s: %s", member ? member : "?", std::strerror(-r));
        return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to build the reply of %s: %s",
                                 member ? member : "?", std::strerror(-r));
    }
    return r;
}

// Runs a handler body, turning anything thrown (allocation failures) into an error reply.
template <typename Fn> int guarded(sd_bus_error* error, Fn&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (...) {
        return sd_bus_error_set_errnof(error, EIO, "internal error in gazelle-mgr");
    }
}

// Effective uid of the caller (the bus daemon's view of the connection; /proc when it gives none).
int sender_euid(sd_bus_message* m, uid_t& euid) {
    for (const std::uint64_t mask :
         {std::uint64_t{SD_BUS_CREDS_EUID}, std::uint64_t{SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT}}) {
        sd_bus_creds* raw = nullptr;
        int r = sd_bus_query_sender_creds(m, mask, &raw);
        if (r < 0) {
            return r;
        }
        CredsPtr creds(raw);
        r = sd_bus_creds_get_euid(creds.get(), &euid);
        if (r != -ENODATA) {
            return r;
        }
    }
    return -ENODATA;
}

} // namespace

struct Bus::Handlers {
    static Bus& self(void* userdata) { return *static_cast<Bus*>(userdata); }

    static int list_apps(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            const BusProperties props = bus.backend_.properties();
            const std::vector<AppRecord> apps = bus.backend_.apps();
            return reply(m, error, [&](Writer& w) {
                w.open('a', k_app_type);
                for (const AppRecord& app : apps) {
                    write_app(w, app, props);
                }
                w.close();
            });
        });
    }

    static int list_queues(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            const BusProperties props = bus.backend_.properties();
            const std::vector<QueueInfo> queues = bus.backend_.queues();
            return reply(m, error, [&](Writer& w) {
                w.open('a', k_queue_type);
                for (const QueueInfo& q : queues) {
                    w.open('r', "qsqsuuqtb").add("q", q.slot).str(port_name(props, q.port)).add("q", q.hw_queue);
                    w.add("s", queue_state_name(q.state))
                        .add("uuqtb", static_cast<std::uint32_t>(std::max(q.owner_pid, 0)), q.epoch, q.lcore,
                             q.heartbeat, static_cast<int>(q.parked))
                        .close();
                }
                w.close();
            });
        });
    }

    static int list_rules(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            const char* text = nullptr;
            int r = sd_bus_message_read(m, "s", &text);
            if (r < 0) {
                return r;
            }
            auto filter = parse_rule_filter(text);
            if (!filter) {
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                         wire_string(filter.error().message).c_str());
            }
            auto rules = bus.backend_.rules();
            if (!rules) {
                return sd_bus_error_set_errnof(error, rules.error().code, "Failed to list the flow rules: %s",
                                               wire_string(rules.error().message).c_str());
            }
            const SlotMap slots(bus.backend_.queues(), bus.backend_.properties());
            return reply(m, error, [&](Writer& w) {
                w.open('a', k_rule_type);
                for (const fabric::FlowRule& rule : *rules) {
                    if (!rule_matches(*filter, rule, slots.pid)) {
                        continue;
                    }
                    const fabric::FlowKey& k = rule.key;
                    const bool listener = k.is_listener();
                    w.open('r', "sssqsqqutu")
                        .add("s", listener ? "listener" : "connection")
                        .str(proto_name(k.proto))
                        .str(ipv4_name(k.local_ip))
                        .add("q", ntohs(k.local_port))
                        .str(ipv4_name(k.remote_ip))
                        .add("q", ntohs(k.remote_port))
                        .add("qutu", listener ? fabric::k_no_queue : rule.hit.slot, listener ? 0u : rule.hit.epoch,
                             listener ? rule.hit.mask : std::uint64_t{0}, listener ? 0u : slots.pid_of(rule.hit.slot))
                        .close();
                }
                w.close();
            });
        });
    }

    static int list_connections(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            auto rules = bus.backend_.rules();
            if (!rules) {
                return sd_bus_error_set_errnof(error, rules.error().code, "Failed to list the flow rules: %s",
                                               wire_string(rules.error().message).c_str());
            }
            const SlotMap slots(bus.backend_.queues(), bus.backend_.properties());
            // Every registered app (even without connections), then owners the queue table knows
            // but the app list does not, then rules of free queues (pid 0).
            std::map<std::uint32_t, std::string> owners;
            std::vector<std::uint32_t> order;
            for (const AppRecord& app : bus.backend_.apps()) {
                const auto pid = static_cast<std::uint32_t>(app.pid);
                if (owners.emplace(pid, app.program).second) {
                    order.push_back(pid);
                }
            }
            std::map<std::uint32_t, std::vector<const fabric::FlowRule*>> by_pid;
            for (const fabric::FlowRule& rule : *rules) {
                if (rule.key.is_listener()) {
                    continue;
                }
                const std::uint32_t pid = slots.pid_of(rule.hit.slot);
                by_pid[pid].push_back(&rule);
                if (owners.emplace(pid, std::string()).second) {
                    order.push_back(pid);
                }
            }
            return reply(m, error, [&](Writer& w) {
                w.open('a', k_app_conns_type);
                for (const std::uint32_t pid : order) {
                    w.open('r', "usa(qssqsq)").add("u", pid).str(owners[pid]).open('a', k_conn_type);
                    for (const fabric::FlowRule* rule : by_pid[pid]) {
                        const fabric::FlowKey& k = rule->key;
                        w.open('r', "qssqsq")
                            .add("q", rule->hit.slot)
                            .str(proto_name(k.proto))
                            .str(ipv4_name(k.local_ip))
                            .add("q", ntohs(k.local_port))
                            .str(ipv4_name(k.remote_ip))
                            .add("q", ntohs(k.remote_port))
                            .close();
                    }
                    w.close().close();
                }
                w.close();
            });
        });
    }

    static int get_stats(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            const StatsSnapshot stats = bus.backend_.stats();
            const SlotMap slots(bus.backend_.queues(), bus.backend_.properties());
            return reply(m, error, [&](Writer& w) {
                w.add("t", stats.timestamp_usec).open('a', k_queue_stats_type);
                for (const SlotStats& q : stats.queues) {
                    const fabric::QueueStats& c = q.counters;
                    w.open('r', "qsutttttttttttttttttttttt")
                        .add("q", q.slot)
                        .str(slots.port_of(q.slot))
                        .add("u", slots.pid_of(q.slot))
                        .add("tttttttt", c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.forwarded_out,
                             c.forwarded_in, c.arp_fanout, c.local)
                        .add("tttttttt", c.drop_inbox_full, c.drop_no_owner, c.drop_owner_gone, c.drop_malformed,
                             c.drop_tx_full, c.drop_alloc_failed, c.drop_table_full, c.connections)
                        .add("ttt", c.adopted_rx_packets, c.adopted_rx_bytes, c.adopted_queues)
                        .add("ttt", c.l2_allocs, c.l2_alloc_failed, c.l2_shed)
                        .close();
                }
                const fabric::FlowTableStats& f = stats.flows;
                w.close().add(k_flow_stats_type, f.adds, f.add_existing, f.add_failed_exists, f.add_failed_full,
                              f.deletes, f.delete_failed_busy, f.freed, f.listener_joins, f.listener_leaves,
                              f.listener_creates, f.listener_reopened, f.listener_join_raced, f.pending_free, f.keys,
                              stats.flow_capacity);
            });
        });
    }

    static int get_memory(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            const MemorySnapshot mem = bus.backend_.memory();
            const SlotMap slots(bus.backend_.queues(), bus.backend_.properties());
            return reply(m, error, [&](Writer& w) {
                w.open('a', k_pool_type);
                for (const PoolInfo& p : mem.pools) {
                    w.open('r', "sqsuuuut")
                        .str(p.name)
                        .add("q", p.slot)
                        .str(slots.port_of(p.slot))
                        .add("uuuut", p.size, p.available, p.in_use, p.element_size, p.bytes)
                        .close();
                }
                w.close().open('a', k_memp_type);
                for (const fabric::MempInfo& p : mem.memps) {
                    w.open('r', "qusst").add("qu", p.slot, slots.pid_of(p.slot)).str(p.memzone).str(p.label);
                    w.add("t", p.bytes).close();
                }
                w.close().open('a', k_memzone_type);
                for (const MemzoneInfo& z : mem.memzones) {
                    w.open('r', "st").str(z.name).add("t", z.bytes).close();
                }
                const HugepageInfo& h = mem.hugepages;
                w.close().add(k_hugepages_type, h.page_size, h.mapped, h.heap_allocated, h.heap_free, h.system_total,
                              h.system_free);
            });
        });
    }

    static int reclaim(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            Bus& bus = self(userdata);
            std::uint32_t pid = 0;
            int r = sd_bus_message_read(m, "u", &pid);
            if (r < 0) {
                return r;
            }
            uid_t euid = 0;
            r = sender_euid(m, euid);
            if (r < 0) {
                log_warning("Failed to query the credentials of '%s' for Reclaim(%u): %s",
                            sd_bus_message_get_sender(m) ? sd_bus_message_get_sender(m) : "?", pid, std::strerror(-r));
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Reclaim needs root; the caller's uid could not be determined (%s)",
                                         std::strerror(-r));
            }
            if (euid != 0) {
                log_notice("Refused Reclaim(%u) from uid %u ('%s'): needs root", pid, static_cast<unsigned>(euid),
                           sd_bus_message_get_sender(m) ? sd_bus_message_get_sender(m) : "?");
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Reclaim needs root (caller uid %u)",
                                         static_cast<unsigned>(euid));
            }
            if (pid == 0 || pid > static_cast<std::uint32_t>(INT_MAX)) {
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%u is not a process id", pid);
            }
            log_info("Reclaim of pid %u requested over D-Bus", pid);
            auto gone = bus.backend_.reclaim(static_cast<pid_t>(pid));
            if (!gone) {
                if (gone.error().code == ENOENT) {
                    return sd_bus_error_setf(error, k_bus_error_no_such_app, "No app with pid %u is registered", pid);
                }
                return sd_bus_error_set_errnof(error, gone.error().code, "Failed to reclaim pid %u: %s", pid,
                                               wire_string(gone.error().message).c_str());
            }
            return reply(m, error, [&](Writer& w) { write_reports(w, gone->reclaimed); });
        });
    }

    // --- properties ---------------------------------------------------------------------------
    static int get_property(sd_bus* /*bus*/, const char* /*path*/, const char* /*interface*/, const char* property,
                            sd_bus_message* reply_message, void* userdata, sd_bus_error* error) {
        return guarded(error, [&] {
            const BusProperties props = self(userdata).backend_.properties();
            Writer w(reply_message);
            const std::string_view name = property;
            if (name == "Version") {
                w.str(props.version);
            } else if (name == "FilePrefix") {
                w.str(props.file_prefix);
            } else if (name == "HugeDir") {
                w.str(props.huge_dir);
            } else if (name == "MaxApps") {
                w.add("u", props.max_apps);
            } else if (name == "MaxQueues") {
                w.add("u", props.max_queues);
            } else if (name == "Ports") {
                w.open('a', k_port_type);
                for (const PortInfo& p : props.ports) {
                    w.open('r', "ssssqq").str(p.name).str(p.type).str(p.mac).str(p.address);
                    w.add("qq", p.first_slot, p.queues).close();
                }
                w.close();
            } else {
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property '%s'", property);
            }
            return w.result();
        });
    }

    static int name_acquired(sd_bus_message* m, void* userdata, sd_bus_error* /*error*/) {
        Bus& bus = self(userdata);
        const sd_bus_error* e = sd_bus_message_get_error(m);
        std::uint32_t answer = 0;
        if (e != nullptr) {
            log_error("Failed to acquire bus name '%s': %s", k_bus_name, e->message ? e->message : e->name);
            bus.set_name_state(NameState::refused);
        } else if (sd_bus_message_read(m, "u", &answer) < 0 || (answer != 1 && answer != 4)) {
            // 2: queued (not requested), 3: someone else owns it.
            log_error("Failed to acquire bus name '%s': another process owns it (reply %u)", k_bus_name, answer);
            bus.set_name_state(NameState::refused);
        } else {
            log_info("Acquired bus name '%s' on %s", k_bus_name, bus.address_.c_str());
            bus.set_name_state(NameState::owned);
        }
        return 0;
    }

    // The bus daemon closed the connection. The connection cannot be replaced from inside its own
    // dispatch, so a timer does it, and retries until the daemon is back.
    static int disconnected(sd_bus_message* /*m*/, void* userdata, sd_bus_error* /*error*/) {
        Bus& bus = self(userdata);
        log_warning("Lost the connection to %s: the D-Bus API is unavailable, reconnecting every %lld ms (the "
                    "fabric keeps running)",
                    bus.address_.c_str(), static_cast<long long>(k_bus_reconnect_interval.count()));
        bus.set_name_state(NameState::disconnected);
        if (!bus.reconnect_timer_) {
            auto timer = add_periodic_timer(
                bus.event_, k_bus_reconnect_interval, [&bus] { reconnect(bus); }, "bus reconnection");
            if (timer) {
                bus.reconnect_timer_ = std::move(*timer);
            } else {
                log_error("%s", timer.error().message.c_str());
            }
        }
        return 0;
    }

    static void reconnect(Bus& bus) {
        auto connected = bus.connect();
        if (!connected) {
            log_debug("%s, retrying", connected.error().message.c_str());
            return;
        }
        log_info("Reconnected to %s", bus.address_.c_str());
        bus.reconnect_timer_.reset(); // this very timer: sd-event allows dropping it from its callback
    }
};

namespace {

constexpr std::uint64_t k_read_only = SD_BUS_VTABLE_UNPRIVILEGED;
// Reclaim is checked in its handler (root only), so sd-bus's own CAP_SYS_ADMIN check is off.
constexpr std::uint64_t k_checked_in_handler = SD_BUS_VTABLE_UNPRIVILEGED;
constexpr std::uint64_t k_const = SD_BUS_VTABLE_PROPERTY_CONST;

const sd_bus_vtable k_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_PROPERTY("FilePrefix", "s", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_PROPERTY("HugeDir", "s", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_PROPERTY("Ports", "a(ssssqq)", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_PROPERTY("MaxApps", "u", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_PROPERTY("MaxQueues", "u", Bus::Handlers::get_property, 0, k_const),
    SD_BUS_METHOD_WITH_NAMES("ListApps", "", "", "a(uussa(qu)aqt)", SD_BUS_PARAM(apps), Bus::Handlers::list_apps,
                             k_read_only),
    SD_BUS_METHOD_WITH_NAMES("ListQueues", "", "", "a(qsqsuuqtb)", SD_BUS_PARAM(queues), Bus::Handlers::list_queues,
                             k_read_only),
    SD_BUS_METHOD_WITH_NAMES("ListRules", "s", SD_BUS_PARAM(filter), "a(sssqsqqutu)", SD_BUS_PARAM(rules),
                             Bus::Handlers::list_rules, k_read_only),
    SD_BUS_METHOD_WITH_NAMES("ListConnections", "", "", "a(usa(qssqsq))", SD_BUS_PARAM(apps),
                             Bus::Handlers::list_connections, k_read_only),
    SD_BUS_METHOD_WITH_NAMES("GetStats", "", "", "ta(qsutttttttttttttttttttttt)(tttttttttttttuu)",
                             SD_BUS_PARAM(timestamp_usec) SD_BUS_PARAM(queues) SD_BUS_PARAM(flow_table),
                             Bus::Handlers::get_stats, k_read_only),
    SD_BUS_METHOD_WITH_NAMES("GetMemory", "", "", "a(sqsuuuut)a(qusst)a(st)(tttttt)",
                             SD_BUS_PARAM(pools) SD_BUS_PARAM(memp_pools) SD_BUS_PARAM(memzones)
                                 SD_BUS_PARAM(hugepages),
                             Bus::Handlers::get_memory, k_read_only),
    SD_BUS_METHOD_WITH_NAMES("Reclaim", "u", SD_BUS_PARAM(pid), "a(quubbuuutuuuuud)", SD_BUS_PARAM(reclaimed),
                             Bus::Handlers::reclaim, k_checked_in_handler),
    SD_BUS_SIGNAL_WITH_NAMES("AppAttached", "usaq", SD_BUS_PARAM(pid) SD_BUS_PARAM(program) SD_BUS_PARAM(slots), 0),
    SD_BUS_SIGNAL_WITH_NAMES("AppDetached", "ussa(quubbuuutuuuuud)",
                             SD_BUS_PARAM(pid) SD_BUS_PARAM(program) SD_BUS_PARAM(how) SD_BUS_PARAM(reclaimed), 0),
    SD_BUS_SIGNAL_WITH_NAMES("AppCrashed", "ussa(quubbuuutuuuuud)",
                             SD_BUS_PARAM(pid) SD_BUS_PARAM(program) SD_BUS_PARAM(how) SD_BUS_PARAM(reclaimed), 0),
    SD_BUS_VTABLE_END,
};

std::string describe_address(const std::string& address_or_kind) {
    if (address_or_kind == "system" || address_or_kind == "session") {
        return "the " + address_or_kind + " bus";
    }
    return "bus '" + address_or_kind + "'";
}

} // namespace

Result<BusPtr> open_bus(const std::string& address_or_kind) {
    sd_bus* raw = nullptr;
    int r = 0;
    if (address_or_kind == "system") {
        r = sd_bus_open_system_with_description(&raw, "gazelle-mgr");
    } else if (address_or_kind == "session") {
        r = sd_bus_open_user_with_description(&raw, "gazelle-mgr");
    } else if (address_or_kind.empty()) {
        return make_error(EINVAL, "Failed to connect to the bus: empty address (expected system, session or a "
                                  "D-Bus address like unix:path=/run/x/bus)");
    } else {
        r = sd_bus_new(&raw);
        BusPtr bus(raw);
        raw = nullptr;
        if (r >= 0) {
            r = sd_bus_set_address(bus.get(), address_or_kind.c_str());
        }
        if (r >= 0) {
            r = sd_bus_set_bus_client(bus.get(), 1);
        }
        if (r >= 0) {
            r = sd_bus_set_description(bus.get(), "gazelle-mgr");
        }
        if (r >= 0) {
            r = sd_bus_start(bus.get());
        }
        if (r >= 0) {
            raw = bus.release();
        }
    }
    if (r < 0) {
        return make_error(-r, "Failed to connect to " + describe_address(address_or_kind) + ": " + std::strerror(-r));
    }
    return BusPtr(raw);
}

Result<std::unique_ptr<Bus>> Bus::start(BusBackend& backend, sd_event* event, const std::string& address_or_kind) {
    std::unique_ptr<Bus> self(new Bus(backend, event, address_or_kind));
    self->address_ = describe_address(address_or_kind);
    auto connected = self->connect();
    if (!connected) {
        return connected.error();
    }
    return self;
}

Result<void> Bus::connect() {
    auto connection = open_bus(address_or_kind_);
    if (!connection) {
        return connection.error();
    }
    BusPtr bus = std::move(*connection);
    int r = sd_bus_attach_event(bus.get(), event_, SD_EVENT_PRIORITY_NORMAL);
    if (r < 0) {
        return make_error(-r, "Failed to attach the connection to " + address_ +
                                  " to the event loop: " + std::strerror(-r));
    }
    sd_bus_slot* slot = nullptr;
    r = sd_bus_add_object_vtable(bus.get(), &slot, k_bus_path, k_bus_interface, k_vtable, this);
    if (r < 0) {
        return make_error(-r, "Failed to register object '" + std::string(k_bus_path) + "': " + std::strerror(-r));
    }
    BusSlotPtr object(slot);
    // sd-bus delivers a local Disconnected signal when the bus daemon closes the connection.
    r = sd_bus_match_signal(bus.get(), &slot, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected", Handlers::disconnected, this);
    if (r < 0) {
        return make_error(-r, "Failed to watch the connection to " + address_ + ": " + std::strerror(-r));
    }
    BusSlotPtr watch(slot);
    r = sd_bus_request_name_async(bus.get(), &slot, k_bus_name, 0, Handlers::name_acquired, this);
    if (r < 0) {
        return make_error(-r, "Failed to request bus name '" + std::string(k_bus_name) + "': " + std::strerror(-r));
    }
    disconnect();
    bus_ = std::move(bus);
    object_slot_ = std::move(object);
    disconnect_slot_ = std::move(watch);
    name_slot_.reset(slot);
    name_state_ = NameState::requested;
    return {};
}

void Bus::disconnect() {
    name_slot_.reset();
    disconnect_slot_.reset();
    object_slot_.reset();
    if (bus_) {
        (void)sd_bus_detach_event(bus_.get());
        bus_.reset();
    }
}

void Bus::set_name_state(NameState state) {
    name_state_ = state;
    if (on_name) {
        on_name(state);
    }
}

Bus::~Bus() {
    if (unhook_) {
        unhook_();
    }
    reconnect_timer_.reset();
    disconnect();
}

void Bus::emit_app_attached(const AppRecord& app) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_signal(bus_.get(), &raw, k_bus_path, k_bus_interface, "AppAttached");
    if (r >= 0) {
        MessagePtr message(raw);
        Writer w(message.get());
        w.add("u", static_cast<std::uint32_t>(app.pid)).str(app.program);
        w.array('q', app.slots.data(), app.slots.size() * sizeof(fabric::QueueSlot));
        r = w.result() < 0 ? w.result() : sd_bus_send(bus_.get(), message.get(), nullptr);
    }
    if (r < 0) {
        log_warning("Failed to emit AppAttached for pid %d: %s, ignoring", static_cast<int>(app.pid),
                    std::strerror(-r));
    }
}

void Bus::emit_app_gone(const AppGone& gone) {
    const char* member = is_crash(gone.how) ? "AppCrashed" : "AppDetached";
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_signal(bus_.get(), &raw, k_bus_path, k_bus_interface, member);
    if (r >= 0) {
        MessagePtr message(raw);
        Writer w(message.get());
        w.add("u", static_cast<std::uint32_t>(gone.app.pid)).str(gone.app.program).add("s", app_end_name(gone.how));
        write_reports(w, gone.reclaimed);
        r = w.result() < 0 ? w.result() : sd_bus_send(bus_.get(), message.get(), nullptr);
    }
    if (r < 0) {
        log_warning("Failed to emit %s for pid %d: %s, ignoring", member, static_cast<int>(gone.app.pid),
                    std::strerror(-r));
    }
}

} // namespace gazelle::mgr
