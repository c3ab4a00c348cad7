// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

namespace gazelle::mgr {

namespace {

std::atomic<LogLevel> g_level{LogLevel::info};

// syslog priorities (<syslog.h>): LOG_ERR .. LOG_DEBUG.
int priority(LogLevel level) {
    switch (level) {
    case LogLevel::error:
        return 3;
    case LogLevel::warning:
        return 4;
    case LogLevel::notice:
        return 5;
    case LogLevel::info:
        return 6;
    case LogLevel::debug:
        return 7;
    }
    return 6;
}

// True when stderr is the journal stream systemd connected us to ($JOURNAL_STREAM = "dev:ino").
bool stderr_is_journal() {
    static const bool journal = [] {
        const char* env = std::getenv("JOURNAL_STREAM");
        struct stat st {};
        if (env == nullptr || fstat(STDERR_FILENO, &st) != 0) {
            return false;
        }
        unsigned long long dev = 0;
        unsigned long long ino = 0;
        if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) {
            return false;
        }
        return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
    }();
    return journal;
}

[[gnu::format(printf, 2, 0)]] void vlog(LogLevel level, const char* format, va_list args) {
    if (!log_enabled(level)) {
        return;
    }
    char text[2048];
    const int n = std::vsnprintf(text, sizeof text, format, args);
    if (n < 0) {
        return;
    }
    std::string line;
    line.reserve(static_cast<std::size_t>(n) + 8);
    if (stderr_is_journal()) {
        line += "<" + std::to_string(priority(level)) + ">";
    }
    line += text;
    if (static_cast<std::size_t>(n) >= sizeof text) {
        line += "...";
    }
    // One event, one line: newlines inside a message (multi-line config errors) become "; ".
    for (std::size_t at = 0; (at = line.find('\n', at)) != std::string::npos;) {
        line.replace(at, 1, "; ");
    }
    line += '\n';
    (void)!write(STDERR_FILENO, line.data(), line.size()); // nowhere to report a failing stderr
}

} // namespace

void set_log_level(LogLevel level) {
    g_level.store(level, std::memory_order_relaxed);
}

LogLevel log_level() {
    return g_level.load(std::memory_order_relaxed);
}

bool log_enabled(LogLevel level) {
    return level == LogLevel::error || static_cast<int>(level) <= static_cast<int>(log_level());
}

void log(LogLevel level, const char* format, ...) {
    va_list args;
    va_start(args, format);
    vlog(level, format, args);
    va_end(args);
}

#define GAZELLE_MGR_LOG_AT(name, level)                                                                                \
    void name(const char* format, ...) {                                                                               \
        va_list args;                                                                                                  \
        va_start(args, format);                                                                                        \
        vlog(level, format, args);                                                                                     \
        va_end(args);                                                                                                  \
    }
GAZELLE_MGR_LOG_AT(log_error, LogLevel::error)
GAZELLE_MGR_LOG_AT(log_warning, LogLevel::warning)
GAZELLE_MGR_LOG_AT(log_notice, LogLevel::notice)
GAZELLE_MGR_LOG_AT(log_info, LogLevel::info)
GAZELLE_MGR_LOG_AT(log_debug, LogLevel::debug)
#undef GAZELLE_MGR_LOG_AT

Error log_failure(const Error& error) {
    log_error("%s", error.message.c_str());
    return error;
}

} // namespace gazelle::mgr
