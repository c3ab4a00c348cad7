// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Owners of sd-event handles (systemd's _cleanup_ functions as unique_ptr deleters).
//
// EventSourcePtr disables the source before dropping the reference: once the owner is gone, its
// callback can never run again, even if sd-event still holds the source for a dispatch in
// progress (sd_event_source_disable_unref).

#include <chrono>
#include <functional>
#include <memory>

#include <systemd/sd-event.h>

#include "conf/result.h"

namespace gazelle::mgr {

struct EventDeleter {
    void operator()(sd_event* event) const { (void)sd_event_unref(event); }
};
struct EventSourceDeleter {
    void operator()(sd_event_source* source) const { (void)sd_event_source_disable_unref(source); }
};
using EventPtr = std::unique_ptr<sd_event, EventDeleter>;
using EventSourcePtr = std::unique_ptr<sd_event_source, EventSourceDeleter>;

// A CLOCK_MONOTONIC timer that calls `tick` every `period` until the source is dropped (the
// first call one period from now). Errors: sd-event's, with "Failed to add the <what> timer: ...".
[[nodiscard]] Result<EventSourcePtr> add_periodic_timer(sd_event* event, std::chrono::microseconds period,
                                                        std::function<void()> tick, const char* what);

} // namespace gazelle::mgr
