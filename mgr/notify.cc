// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/notify.h"

#include <cstdlib>
#include <cstring>

#include <systemd/sd-daemon.h>

#include "mgr/log.h"

namespace gazelle::mgr {

Notifier::Notifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && socket[0] != '\0';
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) {
        watchdog_ = std::chrono::microseconds(usec);
    }
}

void Notifier::send(const std::string& text) {
    if (!enabled_) {
        return;
    }
    const int rc = sd_notify(0, text.c_str());
    if (rc < 0) {
        log_debug("Failed to notify systemd (%s): %s, ignoring", text.c_str(), std::strerror(-rc));
    }
}

void Notifier::ready(const std::string& status) {
    send("READY=1\nSTATUS=" + status);
}

void Notifier::status(const std::string& status) {
    send("STATUS=" + status);
}

void Notifier::stopping(const std::string& status) {
    send("STOPPING=1\nSTATUS=" + status);
}

void Notifier::watchdog_ping() {
    if (watchdog_.count() != 0) {
        send("WATCHDOG=1");
    }
}

Result<void> Notifier::start_watchdog(sd_event* event) {
    if (watchdog_.count() == 0 || !enabled_) {
        return {};
    }
    auto timer = add_periodic_timer(
        event, watchdog_ / 2, [this] { watchdog_ping(); }, "watchdog");
    if (!timer) {
        return timer.error();
    }
    watchdog_timer_ = std::move(*timer);
    log_debug("systemd watchdog: %lld us, pinging every %lld us", static_cast<long long>(watchdog_.count()),
              static_cast<long long>(watchdog_.count() / 2));
    return {};
}

} // namespace gazelle::mgr
