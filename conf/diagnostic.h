// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Diagnostic: one finding about one configuration setting, located by file, line and key.
//
// Loaders collect every finding of a pass (not only the first) and either return the warnings in
// the loaded config or join the errors into one gazelle::Error message, one finding per line.

#include <string>
#include <vector>

namespace gazelle::conf {

struct Diagnostic {
    std::string file;    // the name given to the loader (a path, or a label for string input)
    unsigned line = 0;   // 1-based; 0 when the finding is about the file as a whole
    std::string key;     // "nic_read_number", "ports[1].queues"; empty for syntax errors
    std::string message; // the reason, e.g. "out of range: 100 is not in 1..64"

    bool operator==(const Diagnostic&) const = default;
};

// "file:line: key: message" (the line is left out when 0, the key when empty).
[[nodiscard]] std::string to_string(const Diagnostic& diagnostic);

// The diagnostics as lines, sorted by line (stable, so findings on one line keep their order).
[[nodiscard]] std::string join(std::vector<Diagnostic> diagnostics);

} // namespace gazelle::conf
