// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// KeyInfo: the public, read-only view of the key tables that drive parsing.
//
// There is exactly one table per file (gazelle-mgr.conf, lstack.conf). The same table parses,
// validates, prints the effective values (describe()), generates the reference in doc/config.md
// and feeds the tests, so a key cannot be accepted without being documented or vice versa.

#include <string>
#include <vector>

namespace gazelle::conf {

// What happens to a key that is present in a file.
enum class Disposition {
    honoured, // has the meaning documented in `doc`
    warning,  // accepted, has no effect here: a warning names `reason` (unless the value is `accepted`)
    error,    // rejected with `reason` (unless the value is `accepted`, which matches our behaviour)
    removed,  // documented by Gazelle but gone there too: always rejected
};

enum class ConfigFile { manager, lstack };

struct KeyInfo {
    std::string name;          // "use_ltran", "fabric.ring_size", "ports[].queues"
    std::string type;          // "integer", "flag", "string", "list of strings"
    std::string range;         // "1..64, power of two", "IPv4 address", "\"kernel\" or \"error\""
    std::string default_value; // libconfig literal of the built-in default; empty when required / none
    Disposition disposition = Disposition::honoured;
    std::string accepted; // warning/error keys: the literal accepted without a finding
    std::string reason;   // warning/error/removed keys: why
    std::string doc;      // what the key means here
    std::string example;  // a literal that is valid for the key's type
    bool required = false;
    bool from_gazelle = false; // a key of Gazelle's lstack.conf (lstack_cfg.c's parse table)
};

[[nodiscard]] const char* to_string(Disposition disposition);

// Every key of the file, in the order of the tables (which is the order of describe()).
[[nodiscard]] std::vector<KeyInfo> config_keys(ConfigFile file);

// The key reference of doc/config.md as Markdown tables (gazelle-check-config --reference).
[[nodiscard]] std::string reference_markdown(ConfigFile file);

} // namespace gazelle::conf
