// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The check behind `gazelle-check-config` (and later `gazelle-mgr --check-config`), like
// `nginx -t`: load a file, print its effective values and warnings, or all of its errors.
//
// These write to the streams they are given and nothing else; the caller's main() turns the
// returned status into the exit code.

#include <iosfwd>
#include <string>
#include <vector>

namespace gazelle::conf {

// Exit statuses.
inline constexpr int k_check_valid = 0;
inline constexpr int k_check_invalid = 1; // also: the file cannot be read
inline constexpr int k_check_usage = 2;

struct CheckOptions {
    bool quiet = false; // do not print the effective values
};

// Valid: describe() to `out`, one "warning: file:line: key: reason" per warning and a summary to
// `err`; returns k_check_valid. Invalid: one "error: ..." line per error and a summary to `err`;
// returns k_check_invalid.
[[nodiscard]] int check_manager_config_file(const std::string& path, std::ostream& out, std::ostream& err,
                                            CheckOptions options = {});
[[nodiscard]] int check_lstack_config_file(const std::string& path, std::ostream& out, std::ostream& err,
                                           CheckOptions options = {});

// The command line of gazelle-check-config without argv[0]:
//   --mgr [FILE]        check gazelle-mgr.conf (default /etc/gazelle/gazelle-mgr.conf)
//   --lstack [FILE]     check lstack.conf (default: $LSTACK_CONF_PATH, else /etc/gazelle/lstack.conf)
//   -q, --quiet         do not print the effective values
//   --reference mgr|lstack   print the key reference (Markdown, as in doc/config.md)
//   -h, --help
// Returns k_check_valid, k_check_invalid (any checked file invalid) or k_check_usage.
[[nodiscard]] int check_config_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

} // namespace gazelle::conf
