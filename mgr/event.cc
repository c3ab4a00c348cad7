// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/event.h"

#include <cstring>
#include <string>

namespace gazelle::mgr {

namespace {

struct Periodic {
    std::uint64_t period_usec;
    std::function<void()> tick;
};

int on_periodic(sd_event_source* source, std::uint64_t /*usec*/, void* userdata) {
    auto* periodic = static_cast<Periodic*>(userdata);
    // Re-arm first: the tick may drop the source (then this must not touch it any more).
    (void)sd_event_source_set_time_relative(source, periodic->period_usec);
    (void)sd_event_source_set_enabled(source, SD_EVENT_ON);
    periodic->tick();
    return 0;
}

void destroy_periodic(void* userdata) {
    delete static_cast<Periodic*>(userdata);
}

} // namespace

Result<EventSourcePtr> add_periodic_timer(sd_event* event, std::chrono::microseconds period, std::function<void()> tick,
                                          const char* what) {
    auto periodic = std::make_unique<Periodic>(Periodic{static_cast<std::uint64_t>(period.count()), std::move(tick)});
    sd_event_source* raw = nullptr;
    // Accuracy: a tenth of the period, so that the kernel may batch wake-ups a little.
    const int rc = sd_event_add_time_relative(event, &raw, CLOCK_MONOTONIC, periodic->period_usec,
                                              periodic->period_usec / 10, on_periodic, periodic.get());
    if (rc < 0) {
        return make_error(-rc, std::string("Failed to add the ") + what + " timer: " + std::strerror(-rc));
    }
    EventSourcePtr source(raw);
    (void)sd_event_source_set_destroy_callback(raw, destroy_periodic);
    (void)periodic.release(); // owned by the source now
    (void)sd_event_source_set_enabled(raw, SD_EVENT_ON);
    (void)sd_event_source_set_description(raw, what);
    return source;
}

} // namespace gazelle::mgr
