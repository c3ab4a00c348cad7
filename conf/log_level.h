// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Log levels of both files, named as in syslog/systemd. A subset: errors are always logged, so
// there is no level above "error".

#include <optional>
#include <string_view>

namespace gazelle::conf {

enum class LogLevel { error, warning, notice, info, debug };

inline constexpr std::string_view k_log_level_choices = "error|warning|notice|info|debug";

[[nodiscard]] constexpr const char* to_string(LogLevel level) {
    switch (level) {
    case LogLevel::error:
        return "error";
    case LogLevel::warning:
        return "warning";
    case LogLevel::notice:
        return "notice";
    case LogLevel::info:
        return "info";
    case LogLevel::debug:
        return "debug";
    }
    return "info";
}

[[nodiscard]] constexpr std::optional<LogLevel> parse_log_level(std::string_view text) {
    for (auto level : {LogLevel::error, LogLevel::warning, LogLevel::notice, LogLevel::info, LogLevel::debug}) {
        if (text == to_string(level)) {
            return level;
        }
    }
    return std::nullopt;
}

} // namespace gazelle::conf
