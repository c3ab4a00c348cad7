// SPDX-License-Identifier: BSD-3-Clause
#include "posix/log.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include <unistd.h>

#include "posix/real_calls.h"

namespace gazelle::posix {

namespace {

std::atomic<int> g_level{static_cast<int>(conf::LogLevel::warning)};
Counters g_counters;

void emit(const char* tag, const char* format, va_list args) {
    const int saved = errno; // logging never changes the errno the caller is about to return
    char line[768];
    int n = std::snprintf(line, sizeof line, "gazelle[%d]: posix: %s", static_cast<int>(getpid()), tag);
    if (n < 0) {
        errno = saved;
        return;
    }
    auto used = static_cast<std::size_t>(n);
    if (used < sizeof line) {
        const int m = std::vsnprintf(line + used, sizeof line - used, format, args);
        used = m < 0 ? used : std::min(sizeof line - 1, used + static_cast<std::size_t>(m));
    }
    if (used >= sizeof line - 1) {
        used = sizeof line - 2;
    }
    line[used++] = '\n';
    (void)real().write(STDERR_FILENO, line, used);
    errno = saved;
}

const char* tag_of(conf::LogLevel level) {
    switch (level) {
    case conf::LogLevel::error: return "error: ";
    case conf::LogLevel::warning: return "warning: ";
    case conf::LogLevel::notice: return "";
    case conf::LogLevel::info: return "";
    case conf::LogLevel::debug: return "debug: ";
    }
    return "";
}

} // namespace

void set_log_level(conf::LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool log_enabled(conf::LogLevel level) { return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed); }

void log_message(conf::LogLevel level, const char* format, ...) {
    va_list args;
    va_start(args, format);
    emit(tag_of(level), format, args);
    va_end(args);
}

void log_always(const char* format, ...) {
    va_list args;
    va_start(args, format);
    emit("", format, args);
    va_end(args);
}

const char* to_string(KernelReason reason) {
    switch (reason) {
    case KernelReason::family: return "address family";
    case KernelReason::type: return "socket type";
    case KernelReason::kernel_address: return "kernel address";
    case KernelReason::off_fabric: return "destination outside the fabric";
    case KernelReason::udp_disabled: return "udp_enable = 0";
    case KernelReason::option: return "option not supported on the fabric";
    case KernelReason::not_attached: return "process not attached";
    case KernelReason::count_: break;
    }
    return "?";
}

Counters& counters() { return g_counters; }

void count_kernel(KernelReason reason) {
    g_counters.kernel[static_cast<unsigned>(reason)].fetch_add(1, std::memory_order_relaxed);
}

} // namespace gazelle::posix
