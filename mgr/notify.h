// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// systemd's service notification protocol for gazelle-mgr (Type=notify, NotifyAccess=main):
// READY=1 once the ports are up and the registration socket listens, STATUS= lines as the state
// changes, STOPPING=1 on shutdown, and WATCHDOG=1 pings at half of WATCHDOG_USEC when systemd
// asks for them (WatchdogSec=; sd_watchdog_enabled(): WATCHDOG_USEC set, and WATCHDOG_PID unset
// or ours).
//
// Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op. Sending is best effort:
// a failure is logged at debug level and ignored (the service keeps running; systemd's own
// timeouts notice a silent service).
//
// Threading: the event-loop thread.

#include <chrono>
#include <string>

#include "conf/result.h"
#include "mgr/event.h"

namespace gazelle::mgr {

class Notifier {
public:
    // Reads $NOTIFY_SOCKET and the watchdog settings once.
    Notifier();

    bool enabled() const { return enabled_; }
    // WATCHDOG_USEC when the watchdog applies to this process, else 0.
    std::chrono::microseconds watchdog_timeout() const { return watchdog_; }

    void ready(const std::string& status);
    void status(const std::string& status);
    void stopping(const std::string& status);
    // WATCHDOG=1, when the watchdog applies to this process (else nothing).
    void watchdog_ping();

    // Pings every watchdog_timeout() / 2 on `event` until destruction; nothing to do (and no
    // error) when the watchdog is off.
    [[nodiscard]] Result<void> start_watchdog(sd_event* event);

private:
    void send(const std::string& text);

    bool enabled_ = false;
    std::chrono::microseconds watchdog_{0};
    EventSourcePtr watchdog_timer_;
};

} // namespace gazelle::mgr
