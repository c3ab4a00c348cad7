// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/manager.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>

#include <rte_eal.h>

#include "fabric/eal.h"
#include "mgr/app_watch.h"
#include "mgr/attach_policy.h"
#include "mgr/bus.h"
#include "mgr/event.h"
#include "mgr/fabric_setup.h"
#include "mgr/log.h"
#include "mgr/notify.h"
#include "mgr/procfs.h"
#include "mgr/registration.h"

namespace gazelle::mgr {

using Clock = std::chrono::steady_clock;

const char* to_string(AppEnd end) {
    switch (end) {
    case AppEnd::detached:
        return "detached";
    case AppEnd::exited:
        return "exited";
    case AppEnd::hung:
        return "hung";
    case AppEnd::forced:
        return "forced";
    }
    return "exited";
}

namespace {

// At most this many connections may wait for their attach request at once (beyond them, new
// connections are closed at once: nobody legitimately opens many).
constexpr std::size_t k_max_pending = 64;

std::string errno_text(int code) {
    return std::strerror(code);
}

template <typename T> std::string joined(const std::vector<T>& values) {
    std::string out;
    for (const T& v : values) {
        out += (out.empty() ? "" : ",") + std::to_string(v);
    }
    return out;
}

std::string joined_args(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        out += (out.empty() ? "" : " ") + a;
    }
    return out;
}

std::string process_comm(pid_t pid) {
    const std::string name = process_name(pid);
    return name.empty() ? "?" : request_text(name.c_str(), name.size());
}

// The CPU the manager's own lcore runs on: the first one it may use (systemd's CPUAffinity=, or
// taskset, decide).
unsigned first_allowed_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) {
                return cpu;
            }
        }
    }
    return 0;
}

const char* signal_name(int signo) {
    const char* name = sigabbrev_np(signo);
    return name != nullptr ? name : "?";
}

unsigned numa_nodes() {
    unsigned nodes = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/node", ec)) {
        const std::string name = entry.path().filename().string();
        nodes += name.size() > 4 && name.rfind("node", 0) == 0 && std::isdigit(static_cast<unsigned char>(name[4])) != 0
                     ? 1u
                     : 0u;
    }
    return std::max(1u, nodes);
}

} // namespace

// --- state --------------------------------------------------------------------------------------

struct Manager::Impl {
    // One registration connection, from accept() to the end of its app.
    struct Session {
        enum class Phase { pending, attached, detached };
        std::unique_ptr<AppWatch> watch;
        Phase phase = Phase::pending;
        AppEnd end = AppEnd::exited; // how an attached app ends when its process is gone
        bool killed = false;         // we sent it SIGKILL
        std::string program;
    };
    // Last heartbeat seen on an owned queue, and since when.
    struct Beat {
        std::uint64_t value = 0;
        Clock::time_point since;
    };

    Impl(conf::ManagerConfig c, ManagerOptions o) : config(std::move(c)), options(std::move(o)) {}
    ~Impl();

    Result<void> start(Manager& manager);
    void shutdown();

    // Registration.
    void accept_all();
    void on_message(AppWatch& watch, std::span<const std::byte> data, std::size_t size);
    void on_hangup(AppWatch& watch);
    void on_exited(AppWatch& watch);
    void handle_attach(Session& session, const proto::AttachRequest& request);
    void warn_of_cpu_groups(const AppRecord& app) const;
    void handle_detach(Session& session);
    void refuse(Session& session, const Error& error);
    void lost_connection(Session& session);
    std::vector<PortView> port_views() const;
    void rollback_claims(const std::vector<fabric::QueueSlot>& slots);

    // Ends.
    AppGone app_gone(pid_t pid, AppEnd how);
    void check_heartbeats();
    void kill_app(Session& session, AppEnd why);

    std::string status_text() const;
    void update_status();
    Session* session_of(const AppWatch& watch);
    std::string name_of(const Session& session) const;

    conf::ManagerConfig config;
    ManagerOptions options;
    Manager* self = nullptr;

    bool eal_up = false;
    std::unique_ptr<fabric::Fabric> fabric;
    std::vector<unsigned> ethdev_ports;

    EventPtr event;
    EventSourcePtr sigterm_source;
    EventSourcePtr sigint_source;
    RegistrationSocket socket;
    EventSourcePtr accept_source;
    EventSourcePtr heartbeat_timer;
    Notifier notifier;

    LcorePool lcore_pool;
    CpuRoundRobin cpu_pool;
    std::map<pid_t, AppRecord> apps;
    std::map<std::uint64_t, Session> sessions;     // by AppWatch id
    std::map<pid_t, std::uint64_t> session_of_pid; // attached and detached apps
    std::map<fabric::QueueSlot, Beat> beats;
    std::uint64_t next_session = 1;

    std::unique_ptr<Bus> bus;
    bool shut_down = false;
};

// --- start and stop -----------------------------------------------------------------------------

Result<void> Manager::Impl::start(Manager& manager) {
    self = &manager;
    set_log_level(config.manager.log_level);
    for (const auto& w : config.warnings) {
        log_warning("%s:%u: %s: %s", w.file.c_str(), w.line, w.key.c_str(), w.message.c_str());
    }

    // SIGTERM/SIGINT are handled by the event loop (signalfd): block them before EAL starts its
    // threads, which inherit the mask (a signal delivered to one of them would kill the process).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
        return make_error(rc, "Failed to block SIGTERM and SIGINT: " + errno_text(rc));
    }
    std::signal(SIGPIPE, SIG_IGN); // every send uses MSG_NOSIGNAL; this covers the libraries

    // Pre-flight: refuse before touching DPDK state another manager (or its survivors) uses.
    if (auto ok = RegistrationSocket::check_unused(config.manager.socket); !ok) {
        return ok.error();
    }
    if (auto ok = check_file_prefix_free(config.dpdk.file_prefix); !ok) {
        return ok.error();
    }

    notifier.status("Initialising DPDK");
    const auto eal_args = primary_eal_args(config, first_allowed_cpu(), numa_nodes());
    log_info("Starting DPDK EAL as primary: %s", joined_args(eal_args).c_str());
    if (auto ok = fabric::eal_init("gazelle-mgr", eal_args); !ok) {
        if (ok.error().code == ENOMEM && config.dpdk.memory_mb != 0) {
            return make_error(ENOMEM, ok.error().message + " (dpdk.memory_mb = " +
                                          std::to_string(config.dpdk.memory_mb) + " MiB must be free hugepages in " +
                                          config.dpdk.huge_dir + " at start: reserve more, or lower memory_mb)");
        }
        return ok.error();
    }
    eal_up = true;

    auto params = fabric_params(config);
    if (!params) {
        return params.error();
    }
    auto created = fabric::Fabric::create(*params);
    if (!created) {
        return make_error(created.error().code, "Failed to create the fabric: " + created.error().message);
    }
    fabric = std::move(*created);
    notifier.status("Starting ports");
    auto started = start_ethdev_ports(*fabric, config);
    if (!started) {
        return started.error();
    }
    ethdev_ports = std::move(*started);

    lcore_pool = LcorePool(config.dpdk.app_lcores, config.dpdk.main_lcore);
    cpu_pool = CpuRoundRobin(config.dpdk.app_cpus);

    sd_event* raw_event = nullptr;
    if (const int rc = sd_event_new(&raw_event); rc < 0) {
        return make_error(-rc, "Failed to create the event loop: " + errno_text(-rc));
    }
    event.reset(raw_event);
    const auto on_signal = [](sd_event_source* source, const signalfd_siginfo* info, void* /*userdata*/) -> int {
        log_info("Received SIG%s, shutting down", signal_name(static_cast<int>(info->ssi_signo)));
        return sd_event_exit(sd_event_source_get_event(source), 0);
    };
    for (auto [signo, slot] : {std::pair{SIGTERM, &sigterm_source}, std::pair{SIGINT, &sigint_source}}) {
        sd_event_source* raw = nullptr;
        if (const int rc = sd_event_add_signal(event.get(), &raw, signo, on_signal, this); rc < 0) {
            return make_error(-rc, "Failed to watch signal " + std::to_string(signo) + ": " + errno_text(-rc));
        }
        slot->reset(raw);
    }

    auto listening = RegistrationSocket::listen(config.manager.socket);
    if (!listening) {
        return listening.error();
    }
    socket = std::move(*listening);
    sd_event_source* raw = nullptr;
    const auto on_accept = [](sd_event_source*, int, std::uint32_t, void* userdata) -> int {
        static_cast<Impl*>(userdata)->accept_all();
        return 0;
    };
    if (const int rc = sd_event_add_io(event.get(), &raw, socket.fd(), EPOLLIN, on_accept, this); rc < 0) {
        return make_error(-rc, "Failed to watch the registration socket: " + errno_text(-rc));
    }
    accept_source.reset(raw);
    log_info("Listening for applications on '%s'", socket.path().c_str());

    // Heartbeat check every half timeout: a queue is found stuck at most 1.5 timeouts after its
    // last beat.
    auto timer = add_periodic_timer(
        event.get(), std::chrono::milliseconds(config.manager.heartbeat_timeout_ms) / 2, [this] { check_heartbeats(); },
        "heartbeat");
    if (!timer) {
        return timer.error();
    }
    heartbeat_timer = std::move(*timer);
    if (auto ok = notifier.start_watchdog(event.get()); !ok) {
        return ok.error();
    }

    if (options.use_bus) {
        auto started_bus = start_bus(manager, options.bus);
        if (started_bus) {
            bus = std::move(*started_bus);
        } else if (options.bus_required) {
            return started_bus.error();
        } else {
            log_warning("%s; running without D-Bus", started_bus.error().message.c_str());
        }
    }

    std::string ports;
    for (unsigned p = 0; p < fabric->registry().layout().nb_ports; ++p) {
        const fabric::PortEntry& e = fabric->registry().port(p);
        ports += (ports.empty() ? "" : ", ") + std::string(e.name, strnlen(e.name, sizeof e.name)) + " (" +
                 std::to_string(e.nb_queues) + (e.nb_queues == 1 ? " queue)" : " queues)");
    }
    log_info("Fabric up: file prefix '%s', huge dir '%s', ports %s; %u lcore ids for apps",
             config.dpdk.file_prefix.c_str(), config.dpdk.huge_dir.c_str(), ports.empty() ? "none" : ports.c_str(),
             lcore_pool.size());
    return {};
}

void Manager::Impl::shutdown() {
    if (shut_down) {
        return;
    }
    shut_down = true;
    notifier.stopping("Stopping, " + std::to_string(apps.size()) + " apps attached");
    accept_source.reset();
    socket.close();
    if (!apps.empty()) {
        log_notice("Closing the connections of %zu attached apps; they keep running on the fabric's memory but "
                   "cannot register again until a manager runs",
                   apps.size());
    }
    bus.reset();
    sessions.clear();
    session_of_pid.clear();
}

Manager::Impl::~Impl() {
    shutdown();
    heartbeat_timer.reset();
    sigterm_source.reset();
    sigint_source.reset();
    // Apps still running on the fabric keep its memory and ports: they go on serving (and a new
    // manager starts once they are gone, doc/manager.md "When the manager dies").
    const std::vector<pid_t> survivors = eal_up ? fabric_processes(config.dpdk.file_prefix) : std::vector<pid_t>{};
    if (fabric && !survivors.empty()) {
        log_notice("%zu process(es) still run on the fabric: leaving its shared memory and ports to them",
                   survivors.size());
        fabric->leave_objects_to_survivors();
    } else if (fabric) {
        stop_ethdev_ports(*fabric, ethdev_ports);
    }
    fabric.reset();
    if (eal_up) {
        (void)rte_eal_cleanup();
        // EAL leaves the hugepage files and runtime directory behind; remove them unless some
        // process of the fabric still maps them.
        if (survivors.empty() && fabric_processes(config.dpdk.file_prefix).empty()) {
            remove_fabric_files(config.dpdk.file_prefix, config.dpdk.huge_dir);
        }
    }
    event.reset();
}

// --- registration ---------------------------------------------------------------------------------

Manager::Impl::Session* Manager::Impl::session_of(const AppWatch& watch) {
    const auto it = sessions.find(watch.id());
    return it == sessions.end() ? nullptr : &it->second;
}

std::string Manager::Impl::name_of(const Session& session) const {
    return (session.program.empty() ? process_comm(session.watch->pid()) : session.program) + "[" +
           std::to_string(session.watch->pid()) + "]";
}

void Manager::Impl::accept_all() {
    for (;;) {
        auto connection = socket.accept();
        if (!connection) {
            if (connection.error().code != EAGAIN) {
                log_warning("%s, ignoring", connection.error().message.c_str());
            }
            return;
        }
        const std::size_t pending = static_cast<std::size_t>(std::count_if(
            sessions.begin(), sessions.end(), [](const auto& s) { return s.second.phase == Session::Phase::pending; }));
        if (pending >= k_max_pending) {
            log_warning("Closed a registration connection: %zu connections are already waiting to attach", pending);
            continue;
        }
        const std::uint64_t id = next_session++;
        AppWatch::Events events{
            .message = [this](AppWatch& w, std::span<const std::byte> data,
                              std::size_t size) { on_message(w, data, size); },
            .hangup = [this](AppWatch& w) { on_hangup(w); },
            .exited = [this](AppWatch& w) { on_exited(w); },
        };
        auto watch = AppWatch::create(event.get(), std::move(*connection), id, std::move(events));
        if (!watch) {
            log_notice("%s; closed the connection", watch.error().message.c_str());
            continue;
        }
        Session& session = sessions[id];
        session.watch = std::move(*watch);
        log_debug("Connection %llu from pid %d (uid %u)", static_cast<unsigned long long>(id), session.watch->pid(),
                  session.watch->uid());
        auto deadline = add_periodic_timer(
            event.get(), k_attach_deadline,
            [this, id] {
                const auto it = sessions.find(id);
                if (it != sessions.end() && it->second.phase == Session::Phase::pending) {
                    log_notice("Closed the registration connection of pid %d: no attach request within %lld ms",
                               it->second.watch->pid(), static_cast<long long>(k_attach_deadline.count()));
                    sessions.erase(it);
                }
            },
            "attach deadline");
        if (deadline) {
            session.watch->timer = std::move(*deadline);
        }
    }
}

void Manager::Impl::on_message(AppWatch& watch, std::span<const std::byte> data, std::size_t size) {
    Session* session = session_of(watch);
    if (session == nullptr) {
        return;
    }
    auto message = decode_app_message(data, size);
    if (!message) {
        refuse(*session, message.error());
        return;
    }
    if (message->type == proto::MessageType::attach_request) {
        if (session->phase != Session::Phase::pending) {
            refuse(*session, make_error(EPROTO, "attach request on a connection that is already attached"));
            return;
        }
        handle_attach(*session, message->attach);
    } else {
        handle_detach(*session);
    }
}

std::vector<PortView> Manager::Impl::port_views() const {
    std::vector<PortView> views;
    const fabric::Registry& registry = fabric->registry();
    for (unsigned p = 0; p < registry.layout().nb_ports; ++p) {
        const fabric::PortEntry& e = registry.port(p);
        PortView v;
        v.index = p;
        v.name.assign(e.name, strnlen(e.name, sizeof e.name));
        v.ipv4 = e.ipv4;
        std::memcpy(v.mac, e.mac, sizeof v.mac);
        v.nb_queues = e.nb_queues;
        for (unsigned q = 0; q < e.nb_queues; ++q) {
            const auto slot = static_cast<fabric::QueueSlot>(e.first_slot + q);
            if (registry.queue(slot).state.load(std::memory_order_acquire) == fabric::QueueState::free) {
                v.free_slots.push_back(slot);
            }
        }
        views.push_back(std::move(v));
    }
    return views;
}

void Manager::Impl::rollback_claims(const std::vector<fabric::QueueSlot>& slots) {
    for (fabric::QueueSlot slot : slots) {
        if (auto r = fabric->reclaim_queue(slot); !r) {
            log_error("Failed to release queue %u after a failed attach: %s", slot, r.error().message.c_str());
        }
    }
}

void Manager::Impl::handle_attach(Session& session, const proto::AttachRequest& request) {
    AppWatch& watch = *session.watch;
    const pid_t pid = watch.pid();
    session.program = request_text(request.program, sizeof request.program);
    if (session.program.empty()) {
        session.program = process_comm(pid);
    }
    if (session_of_pid.contains(pid)) {
        refuse(session, make_error(EBUSY, "process " + std::to_string(pid) +
                                              " is already attached on another connection (one registration per "
                                              "process)"));
        return;
    }
    if (request.queues < 1 || request.queues > proto::k_max_app_queues) {
        refuse(session,
               make_error(EINVAL, "app asked for " + std::to_string(request.queues) + " queues; an app may have 1.." +
                                      std::to_string(proto::k_max_app_queues)));
        return;
    }
    if (apps.size() >= config.manager.max_apps) {
        refuse(session, make_error(ENOSPC, "manager is full: " + std::to_string(apps.size()) + " apps (max_apps)"));
        return;
    }
    const auto ports = port_views();
    auto chosen = select_port(request, ports);
    if (!chosen) {
        refuse(session, chosen.error());
        return;
    }
    const PortView& port = ports[*chosen];
    auto lcores = lcore_pool.take(request.queues);
    if (!lcores) {
        refuse(session, lcores.error());
        return;
    }
    AppRecord record;
    record.pid = pid;
    record.uid = watch.uid();
    record.gid = watch.gid();
    record.program = session.program;
    record.port = port.index;
    record.lcores = *lcores;
    record.attached_at = std::chrono::system_clock::now();
    record.cpu_group = cpu_scheduling_group(pid);
    for (unsigned i = 0; i < request.queues; ++i) {
        const fabric::QueueSlot slot = port.free_slots[i];
        auto epoch = fabric->claim_queue(slot, pid, record.lcores[i]);
        if (!epoch) {
            rollback_claims(record.slots);
            lcore_pool.give_back(record.lcores);
            refuse(session, make_error(epoch.error().code,
                                       "Failed to claim queue " + std::to_string(slot) + ": " + epoch.error().message));
            return;
        }
        record.slots.push_back(slot);
        record.epochs.push_back(*epoch);
        record.cpus.push_back(cpu_pool.next());
    }
    proto::AttachReply reply;
    reply.nb_queues = request.queues;
    reply.port = port.index;
    for (unsigned i = 0; i < request.queues; ++i) {
        reply.slots[i] = record.slots[i];
        reply.epochs[i] = record.epochs[i];
        reply.lcores[i] = record.lcores[i];
        reply.cpus[i] = record.cpus[i];
    }
    const auto put = [](auto& field, const std::string& text) {
        const std::size_t n = std::min(text.size(), sizeof field - 1);
        std::memcpy(field, text.data(), n);
        field[n] = '\0';
    };
    put(reply.file_prefix, config.dpdk.file_prefix);
    put(reply.huge_dir, config.dpdk.huge_dir);
    if (auto sent = watch.send(&reply, sizeof reply); !sent) {
        log_notice("Failed to answer the attach request of %s: %s; released its queues", name_of(session).c_str(),
                   sent.error().message.c_str());
        rollback_claims(record.slots);
        lcore_pool.give_back(record.lcores);
        sessions.erase(watch.id());
        return;
    }
    session.phase = Session::Phase::attached;
    watch.timer.reset(); // the attach deadline
    session_of_pid[pid] = watch.id();
    const auto now = Clock::now();
    for (fabric::QueueSlot slot : record.slots) {
        beats[slot] = Beat{fabric->registry().queue(slot).heartbeat.load(std::memory_order_acquire), now};
    }
    log_info("Attached app %s (uid %u): port %s, queues %s, lcores %s on CPUs %s", name_of(session).c_str(), record.uid,
             port.name.c_str(), joined(record.slots).c_str(), joined(record.lcores).c_str(),
             joined(record.cpus).c_str());
    const AppRecord& stored = apps[pid] = std::move(record);
    warn_of_cpu_groups(stored);
    update_status();
    if (self->on_app_attached) {
        self->on_app_attached(stored);
    }
}

// Stack threads busy-poll and sleep in short naps; when two of them share a CPU from different
// CPU scheduling groups (sessions with autogroups, or cpu cgroups), this kernel has been seen to
// leave one runnable and not running for seconds (37 s once): its queue stops, the neighbours'
// frames steered to it wait, and the heartbeat check kills it as hung. Said once, at the attach
// that makes it so (doc/reliability.md, "Stacks in different CPU scheduling groups").
void Manager::Impl::warn_of_cpu_groups(const AppRecord& app) const {
    if (app.cpu_group.empty()) {
        return;
    }
    for (const auto& [pid, other] : apps) {
        if (pid == app.pid || other.cpu_group.empty() || other.cpu_group == app.cpu_group) {
            continue;
        }
        const auto shared = std::find_first_of(app.cpus.begin(), app.cpus.end(), other.cpus.begin(), other.cpus.end());
        if (shared == app.cpus.end()) {
            continue;
        }
        log_notice("App %s[%d] runs in CPU scheduling group %s and shares CPU %u with %s[%d] in %s: the kernel can "
                   "leave a stack thread of one group runnable but not running for seconds, and a stack that does "
                   "not beat for %u ms is killed as hung; start the fabric's apps in one session or cgroup, or set "
                   "kernel.sched_autogroup_enabled=0 (doc/user-guide.md)",
                   app.program.c_str(), app.pid, app.cpu_group.c_str(), unsigned{*shared}, other.program.c_str(), pid,
                   other.cpu_group.c_str(), config.manager.heartbeat_timeout_ms);
        return;
    }
}

void Manager::Impl::handle_detach(Session& session) {
    if (session.phase != Session::Phase::attached) {
        refuse(session,
               make_error(EPROTO, session.phase == Session::Phase::pending ? "detach request before any attach request"
                                                                           : "second detach request"));
        return;
    }
    const proto::DetachReply reply;
    if (auto sent = session.watch->send(&reply, sizeof reply); !sent) {
        log_notice("Failed to answer the detach request of %s: %s", name_of(session).c_str(),
                   sent.error().message.c_str());
    }
    session.phase = Session::Phase::detached;
    session.end = AppEnd::detached;
    log_info("App %s detached; its queues are reclaimed when it closes the connection", name_of(session).c_str());
}

void Manager::Impl::refuse(Session& session, const Error& error) {
    const proto::ErrorReply reply = make_error_reply(error);
    (void)session.watch->send(&reply, sizeof reply); // best effort: the connection closes anyway
    log_notice("Refused %s: %s (%s)", name_of(session).c_str(), error.message.c_str(), errno_text(error.code).c_str());
    if (session.phase == Session::Phase::pending) {
        sessions.erase(session.watch->id());
        return;
    }
    // An attached app broke the protocol: it loses its registration like one that hung up.
    session.watch->close_connection();
    lost_connection(session);
}

void Manager::Impl::on_hangup(AppWatch& watch) {
    Session* session = session_of(watch);
    if (session == nullptr) {
        return;
    }
    if (session->phase == Session::Phase::pending) {
        log_debug("Connection %llu of pid %d closed before attaching", static_cast<unsigned long long>(watch.id()),
                  watch.pid());
        sessions.erase(watch.id());
        return;
    }
    lost_connection(*session);
}

// The connection of an attached (or detached) app is gone. Reclaim now if the app detached or its
// process is on its way out; otherwise it closed the connection while it still runs, and may
// still poll its queues: give it k_hangup_linger to exit, then kill it.
void Manager::Impl::lost_connection(Session& session) {
    AppWatch& watch = *session.watch;
    if (session.phase == Session::Phase::detached) {
        log_debug("Registration connection of %s closed after its detach", name_of(session).c_str());
        (void)app_gone(watch.pid(), session.end);
        return;
    }
    if (process_exiting(watch.pid(), watch.pidfd())) {
        log_debug("Registration connection of %s closed, and the process is exiting", name_of(session).c_str());
        (void)app_gone(watch.pid(), session.end);
        return;
    }
    const std::uint64_t id = watch.id();
    auto linger = add_periodic_timer(
        event.get(), k_hangup_linger,
        [this, id] {
            const auto it = sessions.find(id);
            if (it == sessions.end() || it->second.killed) {
                return;
            }
            log_warning("App %s closed its registration connection without detaching and still runs after %lld ms; "
                        "killing it (SIGKILL)",
                        name_of(it->second).c_str(), static_cast<long long>(k_hangup_linger.count()));
            kill_app(it->second, AppEnd::exited);
        },
        "hang-up linger");
    if (linger) {
        watch.timer = std::move(*linger);
    } else {
        kill_app(session, AppEnd::exited);
    }
}

void Manager::Impl::on_exited(AppWatch& watch) {
    Session* session = session_of(watch);
    if (session == nullptr) {
        return;
    }
    if (session->phase == Session::Phase::pending) {
        sessions.erase(watch.id());
        return;
    }
    log_debug("Process %s exited (pidfd)", name_of(*session).c_str());
    (void)app_gone(watch.pid(), session->end);
}

void Manager::Impl::kill_app(Session& session, AppEnd why) {
    session.end = why;
    session.killed = true;
    if (auto killed = session.watch->kill(SIGKILL); !killed) {
        log_error("%s", killed.error().message.c_str());
    }
}

// --- ends -----------------------------------------------------------------------------------------

AppGone Manager::Impl::app_gone(pid_t pid, AppEnd how) {
    AppGone gone;
    gone.how = how;
    const auto app = apps.find(pid);
    if (app == apps.end()) {
        return gone;
    }
    gone.app = std::move(app->second);
    apps.erase(app);
    const std::string name = gone.app.program + "[" + std::to_string(pid) + "]";
    // The process is gone (or detached): none of its queues holds a routing decision any more, so
    // reclaiming one of them must not wait in its grace period for the app's other queues.
    for (fabric::QueueSlot slot : gone.app.slots) {
        fabric->registry().queue(slot).parked.store(1, std::memory_order_release);
    }
    for (fabric::QueueSlot slot : gone.app.slots) {
        auto report = fabric->reclaim_queue(slot);
        if (!report) {
            log_error("Failed to reclaim queue %u of app %s: %s", slot, name.c_str(), report.error().message.c_str());
            continue;
        }
        log_info("Reclaimed app %s queue %u: %s", name.c_str(), slot, fabric::describe(*report).c_str());
        gone.reclaimed.push_back(*report);
        beats.erase(slot);
    }
    lcore_pool.give_back(gone.app.lcores);
    if (const auto it = session_of_pid.find(pid); it != session_of_pid.end()) {
        sessions.erase(it->second);
        session_of_pid.erase(it);
    }
    switch (how) {
    case AppEnd::detached:
        log_info("App %s detached and is gone", name.c_str());
        break;
    case AppEnd::exited:
        log_info("App %s is gone without detaching", name.c_str());
        break;
    case AppEnd::hung:
        log_info("App %s hung and was killed", name.c_str());
        break;
    case AppEnd::forced:
        log_info("App %s was killed and reclaimed on request", name.c_str());
        break;
    }
    update_status();
    if (self->on_app_gone) {
        self->on_app_gone(gone);
    }
    return gone;
}

void Manager::Impl::check_heartbeats() {
    fabric::Registry& registry = fabric->registry();
    registry.layout().manager_heartbeat.fetch_add(1, std::memory_order_release);
    // Deleted rules wait for a grace period on the manager's deferred list, and on the lists of
    // writers that died (their slot's next owner takes over the list once it polls).
    fabric::FlowTable& flows = fabric->flows();
    if (flows.deferred_pending(fabric::k_manager_slot) != 0) {
        (void)flows.reclaim_deferred(fabric::k_manager_slot);
    }
    for (fabric::QueueSlot s = 0; s < registry.nb_slots(); ++s) {
        if (registry.queue(s).state.load(std::memory_order_acquire) == fabric::QueueState::free &&
            flows.deferred_pending(s) != 0) {
            (void)flows.reclaim_deferred(s);
        }
    }
    const auto now = Clock::now();
    const auto timeout = std::chrono::milliseconds(config.manager.heartbeat_timeout_ms);
    std::vector<std::pair<std::uint64_t, fabric::QueueSlot>> hung;
    for (const auto& [pid, app] : apps) {
        const auto sid = session_of_pid.find(pid);
        if (sid == session_of_pid.end()) {
            continue;
        }
        const Session& session = sessions.at(sid->second);
        if (session.phase != Session::Phase::attached || session.killed) {
            continue;
        }
        for (fabric::QueueSlot slot : app.slots) {
            const fabric::QueueEntry& q = registry.queue(slot);
            const std::uint64_t beat = q.heartbeat.load(std::memory_order_acquire);
            Beat& seen = beats[slot];
            if (q.parked.load(std::memory_order_acquire) != 0 || beat != seen.value) {
                seen = Beat{beat, now};
            } else if (now - seen.since >= timeout) {
                hung.emplace_back(sid->second, slot);
                break;
            }
        }
    }
    for (const auto& [id, slot] : hung) {
        Session& session = sessions.at(id);
        const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - beats[slot].since);
        log_warning("App %s hung: queue %u heartbeat has not moved for %lld ms while unparked; killing it (SIGKILL)",
                    name_of(session).c_str(), slot, static_cast<long long>(silent.count()));
        kill_app(session, AppEnd::hung);
    }
}

std::string Manager::Impl::status_text() const {
    unsigned owned = 0;
    const fabric::Registry& registry = fabric->registry();
    for (fabric::QueueSlot s = 0; s < registry.nb_slots(); ++s) {
        owned += registry.queue(s).state.load(std::memory_order_relaxed) != fabric::QueueState::free ? 1u : 0u;
    }
    return "Serving " + std::to_string(apps.size()) + (apps.size() == 1 ? " app, " : " apps, ") +
           std::to_string(owned) + " of " + std::to_string(registry.nb_slots()) + " queues owned";
}

void Manager::Impl::update_status() {
    notifier.status(status_text());
}

// --- Manager ----------------------------------------------------------------------------------------

Manager::Manager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Manager::~Manager() = default;

Result<std::unique_ptr<Manager>> Manager::create(const conf::ManagerConfig& config, const ManagerOptions& options) {
    std::unique_ptr<Manager> manager(new Manager(std::make_unique<Impl>(config, options)));
    if (auto ok = manager->impl_->start(*manager); !ok) {
        // Logged before the half-built manager is torn down, so that the cause comes first.
        return log_failure(ok.error());
    }
    return manager;
}

int Manager::run() {
    // Ready means gazellectl can reach us: with a bus, readiness waits for the daemon's answer to
    // the name request (systemd and the tests start gazellectl right after READY=1; a call before
    // the name is owned fails with "name has no owner"). A refused name is logged and the manager
    // serves without its D-Bus API, as without a bus.
    auto announce = [this] {
        impl_->notifier.ready(impl_->status_text());
        impl_->notifier.watchdog_ping();
        log_info("Ready: %s", impl_->status_text().c_str());
    };
    if (impl_->bus && impl_->bus->name_state() == Bus::NameState::requested) {
        impl_->bus->on_name = [this, announce, announced = false](Bus::NameState state) mutable {
            if (!announced && state != Bus::NameState::requested) {
                announced = true;
                announce();
            }
        };
    } else {
        announce();
    }
    const int rc = sd_event_loop(impl_->event.get());
    impl_->shutdown();
    if (rc < 0) {
        log_error("Failed to run the event loop: %s", errno_text(-rc).c_str());
        return 1;
    }
    return rc;
}

void Manager::stop() {
    (void)sd_event_exit(impl_->event.get(), 0);
}

sd_event* Manager::event() const {
    return impl_->event.get();
}

fabric::Fabric& Manager::fabric() {
    return *impl_->fabric;
}

const conf::ManagerConfig& Manager::config() const {
    return impl_->config;
}

const std::map<pid_t, AppRecord>& Manager::apps() const {
    return impl_->apps;
}

const std::string& Manager::socket_path() const {
    return impl_->config.manager.socket;
}

std::string Manager::status() const {
    return impl_->status_text();
}

Result<AppGone> Manager::reclaim_app(pid_t pid) {
    Impl& m = *impl_;
    if (!m.apps.contains(pid)) {
        return make_error(ENOENT, "no app with pid " + std::to_string(pid) + " is attached");
    }
    const auto sid = m.session_of_pid.find(pid);
    if (sid != m.session_of_pid.end()) {
        Impl::Session& session = m.sessions.at(sid->second);
        if (!session.watch->exited()) {
            log_notice("Killing app %s (SIGKILL) to reclaim its queues on request", m.name_of(session).c_str());
            m.kill_app(session, AppEnd::forced);
            if (!session.watch->wait_exit(k_forced_exit_wait)) {
                return make_error(ETIMEDOUT, "app " + m.name_of(session) + " did not exit within " +
                                                 std::to_string(k_forced_exit_wait.count()) +
                                                 " ms of SIGKILL; its queues are reclaimed when it does");
            }
        }
    }
    return m.app_gone(pid, AppEnd::forced);
}

} // namespace gazelle::mgr
