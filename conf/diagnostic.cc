// SPDX-License-Identifier: BSD-3-Clause
#include "conf/diagnostic.h"

#include <algorithm>

namespace gazelle::conf {

std::string to_string(const Diagnostic& diagnostic) {
    std::string out = diagnostic.file;
    if (diagnostic.line != 0) {
        out += ':' + std::to_string(diagnostic.line);
    }
    out += ": ";
    if (!diagnostic.key.empty()) {
        out += diagnostic.key + ": ";
    }
    out += diagnostic.message;
    return out;
}

std::string join(std::vector<Diagnostic> diagnostics) {
    std::stable_sort(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
    std::string out;
    for (const auto& d : diagnostics) {
        if (!out.empty()) {
            out += '\n';
        }
        out += to_string(d);
    }
    return out;
}

} // namespace gazelle::conf
