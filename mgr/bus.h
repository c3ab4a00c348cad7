// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// gazelle-mgr on D-Bus: the object /org/openeuler/Gazelle1 (interface
// org.openeuler.Gazelle1.Manager) under the well-known name org.openeuler.Gazelle1.
// Every method, signal, property and error is documented in doc/dbus-api.md; `gazellectl` is
// its command-line client.
//
// The connection is attached to the manager's sd-event loop and the name is requested
// asynchronously (start_bus() returns before the bus daemon answered; a refusal is logged). The
// handlers answer from snapshots (mgr/bus_model.h), never block beyond Reclaim's bounded wait,
// never throw and never end the process: every failure becomes a D-Bus error.
//
// When the bus daemon goes away, the Bus logs it and reconnects every k_bus_reconnect_interval
// (the fabric keeps running meanwhile; signals of that time are lost).
//
// Access: the D-Bus policy (conf/org.openeuler.Gazelle1.conf) lets only root own the name and
// call Reclaim; Reclaim also checks the caller's effective uid itself (sd_bus_query_sender_creds),
// so a permissive bus configuration does not open it up.
//
// Threading: the event-loop thread only.

#include <functional>
#include <memory>
#include <string>

#include "conf/result.h"
#include "mgr/bus_model.h"
#include "mgr/event.h"

struct sd_bus;
struct sd_bus_slot;

namespace gazelle::mgr {

class Bus;
class Manager;

struct BusDeleter {
    void operator()(sd_bus* bus) const; // sd_bus_flush_close_unref
};
struct BusSlotDeleter {
    void operator()(sd_bus_slot* slot) const; // sd_bus_slot_unref
};
using BusPtr = std::unique_ptr<sd_bus, BusDeleter>;
using BusSlotPtr = std::unique_ptr<sd_bus_slot, BusSlotDeleter>;

inline constexpr std::chrono::milliseconds k_bus_reconnect_interval{2000};

// Opens a bus connection: "system", "session", or a D-Bus address ("unix:path=/run/x/bus").
// Errors carry the address: "Failed to connect to bus 'unix:path=...': No such file or directory".
[[nodiscard]] Result<BusPtr> open_bus(const std::string& address_or_kind);

class Bus {
public:
    // Connects to `address_or_kind` (see open_bus), attaches to `event`, registers the object and
    // requests the name. `backend` must outlive the Bus.
    // Errors: open_bus()'s, and sd-bus's for attaching, registering or requesting the name.
    static Result<std::unique_ptr<Bus>> start(BusBackend& backend, sd_event* event, const std::string& address_or_kind);
    ~Bus();
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    // Signals (the Manager's observers call these; see start_bus()).
    void emit_app_attached(const AppRecord& app);
    void emit_app_gone(const AppGone& gone);

    enum class NameState { requested, owned, refused, disconnected };
    NameState name_state() const { return name_state_; }
    // Called when the bus daemon answered a name request (after start() and after every
    // reconnection), and when the connection is lost.
    std::function<void(NameState)> on_name;

    sd_bus* raw_bus_do_not_use() const { return bus_.get(); }

    struct Handlers; // the vtable callbacks (bus.cc)

private:
    friend Result<std::unique_ptr<Bus>> start_bus(Manager& manager, const std::string& address_or_kind);
    Bus(BusBackend& backend, sd_event* event, std::string address_or_kind)
        : backend_(backend), event_(event), address_or_kind_(std::move(address_or_kind)) {}
    // Connects, registers the object, watches for disconnection and requests the name.
    Result<void> connect();
    void disconnect();
    void set_name_state(NameState state);

    std::function<void()> unhook_;              // start_bus(): resets the Manager's observers
    std::unique_ptr<BusBackend> owned_backend_; // start_bus(): the ManagerBackend
    BusBackend& backend_;
    sd_event* event_;
    std::string address_or_kind_;
    std::string address_; // for log lines: "the system bus", "bus 'unix:...'"
    BusPtr bus_;
    BusSlotPtr object_slot_;
    BusSlotPtr name_slot_;
    BusSlotPtr disconnect_slot_;
    EventSourcePtr reconnect_timer_;
    NameState name_state_ = NameState::requested;
};

// The manager's bus: a ManagerBackend over `manager`'s public API, on manager.event(), with
// manager.on_app_attached / on_app_gone emitting AppAttached / AppDetached / AppCrashed. The
// observers are unhooked when the Bus is destroyed, which must happen before the Manager is.
[[nodiscard]] Result<std::unique_ptr<Bus>> start_bus(Manager& manager, const std::string& address_or_kind);

// The backend start_bus() uses, for callers that wire things themselves.
[[nodiscard]] std::unique_ptr<BusBackend> make_manager_backend(Manager& manager);

} // namespace gazelle::mgr
