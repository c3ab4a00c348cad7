// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// gazelle-mgr's log: one line per event on stderr, systemd style.
//
// Under systemd (stderr is the journal stream named by $JOURNAL_STREAM) every line starts with a
// "<N>" syslog priority prefix, which journald strips and stores as the priority; on a terminal
// or a pipe the line is printed as it is. Messages follow systemd's wording: "Failed to <verb>
// <object> '<name>': <reason>", non-fatal ones end in ", ignoring".
//
// The level (manager.log_level in gazelle-mgr.conf) filters what is printed; errors always are.
// Each line is written with one write(2), so lines of concurrent writers never interleave.
//
// Threading: any thread (the level is an atomic).

#include "conf/log_level.h"
#include "conf/result.h"

namespace gazelle::mgr {

using conf::LogLevel;

void set_log_level(LogLevel level);
[[nodiscard]] LogLevel log_level();
[[nodiscard]] bool log_enabled(LogLevel level);

[[gnu::format(printf, 2, 3)]] void log(LogLevel level, const char* format, ...);
[[gnu::format(printf, 1, 2)]] void log_error(const char* format, ...);
[[gnu::format(printf, 1, 2)]] void log_warning(const char* format, ...);
[[gnu::format(printf, 1, 2)]] void log_notice(const char* format, ...);
[[gnu::format(printf, 1, 2)]] void log_info(const char* format, ...);
[[gnu::format(printf, 1, 2)]] void log_debug(const char* format, ...);

// Log-and-return: logs error.message at error level and returns the error unchanged
// (`return log_failure(result.error());`).
Error log_failure(const Error& error);

} // namespace gazelle::mgr
