// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// gazelle-mgr's core: the DPDK primary that owns the ports and the shared objects (a
// fabric::Fabric), registers apps, watches them, and reclaims what they held when they go.
//
// One sd-event loop runs everything: signals (SIGTERM/SIGINT: clean shutdown), the registration
// socket (fabric/mgr_protocol.h), one pidfd + connection per app, the D-Bus connection (mgr/bus.h),
// and timers (heartbeat check, systemd watchdog). Nothing here is on the packet path: apps never
// wait on the manager per packet, and the data path keeps running while it is down.
//
// Threading: single-threaded (the event loop thread); the bus and the registration code call the
// Manager from there only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "conf/manager_config.h"
#include "conf/result.h"
#include "fabric/fabric.h"

struct sd_event;

namespace gazelle::mgr {

struct AppRecord {
    pid_t pid = 0;
    uid_t uid = 0;
    std::string program; // as the app named itself (display only)
    unsigned port = 0;   // registry port index
    std::vector<fabric::QueueSlot> slots;
    std::vector<fabric::Epoch> epochs;
    std::vector<std::uint16_t> lcores;
    std::chrono::system_clock::time_point attached_at;
    std::vector<std::uint16_t> cpus; // CPU stack thread i is pinned to (as in the AttachReply)
    gid_t gid = 0;                   // SO_PEERCRED gid at connect()
    std::string cpu_group;           // cpu_scheduling_group() at attach (mgr/procfs.h)
};

enum class AppEnd {
    detached, // sent a detach request, then closed its connection
    exited,   // connection closed / process gone without a detach (crash, kill, exit without detach)
    hung,     // heartbeat stopped while not parked; killed by the manager, then reclaimed
    forced,   // Reclaim(pid) requested over D-Bus
};
const char* to_string(AppEnd end);

struct AppGone {
    AppRecord app;
    AppEnd how = AppEnd::exited;
    std::vector<fabric::ReclaimReport> reclaimed; // one per queue
};

// How long reclaim_app() waits for a SIGKILLed app to die.
inline constexpr std::chrono::milliseconds k_forced_exit_wait{2000};
// An app that closed its registration connection without detaching is given this long to exit
// before it is SIGKILLed (its queues cannot be reclaimed while it may still poll them).
inline constexpr std::chrono::milliseconds k_hangup_linger{500};
// A connection that sends no attach request within this time is closed.
inline constexpr std::chrono::milliseconds k_attach_deadline{5000};

struct ManagerOptions {
    std::string bus = "system"; // "system", "session", or a D-Bus address ("unix:path=...")
    bool bus_required = true;   // false: run without D-Bus when the bus is unreachable (tests, demos)
    bool use_bus = true;        // false: do not connect to any bus (gazelle-mgr --no-bus)
};

class Manager {
public:
    // EAL must not be initialised yet: create() does it as primary from config.dpdk, creates the
    // fabric, starts the ports, listens on config.manager.socket and connects to the bus. Refuses
    // (EBUSY, EADDRINUSE) when another manager or the survivors of a dead one use the socket or the
    // file prefix. Failures are logged (then undone) before they are returned.
    static Result<std::unique_ptr<Manager>> create(const conf::ManagerConfig& config, const ManagerOptions& options);
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // Runs the event loop until SIGTERM/SIGINT (or stop()); returns the process exit code.
    // Sends READY=1 to systemd once the ports are up and the socket listens, and watchdog pings
    // when WATCHDOG_USEC is set.
    int run();
    void stop();

    sd_event* event() const;
    fabric::Fabric& fabric();
    const conf::ManagerConfig& config() const;
    const std::map<pid_t, AppRecord>& apps() const;

    // Reclaims every queue of app `pid` (registered apps only): a live process is SIGKILLed first
    // and its death awaited (bounded: k_forced_exit_wait). ENOENT when no such app; ETIMEDOUT when
    // the process did not die in time (its queues are then reclaimed when it does). on_app_gone
    // is called too, as for every app that goes.
    Result<AppGone> reclaim_app(pid_t pid);

    // The registration socket's path (config().manager.socket).
    const std::string& socket_path() const;
    // "Serving 2 apps, 3 of 6 queues owned" (systemd STATUS=).
    std::string status() const;

    // Observers (the D-Bus layer emits signals from them). on_app_gone is called once per app that
    // attached, after its queues were reclaimed, whatever the end (AppGone::how).
    std::function<void(const AppRecord&)> on_app_attached;
    std::function<void(const AppGone&)> on_app_gone;

    struct Impl;

private:
    explicit Manager(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace gazelle::mgr
