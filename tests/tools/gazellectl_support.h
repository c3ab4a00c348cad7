// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Checks of gazellectl's output: table blocks and their column alignment, JSON validity (through
// python3 -m json.tool) and the pool totals of GetMemory as the manager reports them.

#include <string>
#include <vector>

#include <systemd/sd-bus.h>

#include "tests/mgr/bus_support.h"

namespace gazelle::test {

inline std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t nl = text.find('\n', start);
        lines.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) {
            break;
        }
        start = nl + 1;
    }
    return lines;
}

inline std::string line_starting(const std::vector<std::string>& lines, const std::string& prefix) {
    for (const auto& l : lines) {
        if (l.rfind(prefix, 0) == 0) {
            return l;
        }
    }
    return "";
}

// The table whose header is lines[header]: up to a blank line or a prose line (tables separate
// their columns with at least two spaces; summaries do not). The "----" line before a totals row
// is left out.
inline std::vector<std::string> table_block(const std::vector<std::string>& lines, std::size_t header) {
    std::vector<std::string> block;
    for (std::size_t i = header; i < lines.size(); ++i) {
        const std::string& l = lines[i];
        if (l.empty() ||
            (i > header && l.find("  ") == std::string::npos && l.find_first_not_of('-') != std::string::npos)) {
            break;
        }
        if (l.find_first_not_of('-') == std::string::npos) {
            continue;
        }
        block.push_back(l);
    }
    return block;
}

// Every cell starts where its header starts (left-aligned columns) or ends where its header ends
// (right-aligned ones); empty cells (totals rows) are spaces.
inline bool columns_aligned(const std::vector<std::string>& block, std::string& why) {
    if (block.size() < 2) {
        why = "no table rows";
        return false;
    }
    const std::string& header = block[0];
    struct Span {
        std::size_t start;
        std::size_t end;
    };
    std::vector<Span> columns;
    std::size_t i = header.find_first_not_of(' ');
    while (i != std::string::npos && i < header.size()) {
        std::size_t end = header.find("  ", i);
        if (end == std::string::npos) {
            end = header.size();
        }
        columns.push_back({i, end});
        i = header.find_first_not_of(' ', end);
    }
    if (columns.size() < 2) {
        why = "header has fewer than 2 columns: '" + header + "'";
        return false;
    }
    // A header cell right-aligned over a wider column starts after some spaces: its real start is
    // then the end of the previous column + 2. Only the end of such a column is checked.
    for (std::size_t r = 1; r < block.size(); ++r) {
        const std::string& row = block[r];
        for (std::size_t c = 0; c < columns.size(); ++c) {
            const Span s = columns[c];
            const auto at = [&](std::size_t k) { return k < row.size() ? row[k] : ' '; };
            const bool blank = [&] {
                for (std::size_t k = s.start; k < s.end; ++k) {
                    if (at(k) != ' ') {
                        return false;
                    }
                }
                return true;
            }();
            const bool left = at(s.start) != ' ' && (s.start == 0 || at(s.start - 1) == ' ');
            const bool right = at(s.end - 1) != ' ' && at(s.end) == ' ';
            if (!blank && !left && !right) {
                why = "row " + std::to_string(r) + " column '" + header.substr(s.start, s.end - s.start) +
                      "' is not aligned:\n" + header + "\n" + row;
                return false;
            }
        }
    }
    return true;
}

// python3 -m json.tool [--json-lines] accepts `text`.
inline bool valid_json(const TempDir& dir, const std::string& text, bool json_lines, std::string& why) {
    const std::string file = dir.write("out.json", text);
    std::vector<std::string> argv = {"/usr/bin/python3", "-m", "json.tool"};
    if (json_lines) {
        argv.emplace_back("--json-lines");
    }
    argv.push_back(file);
    const auto r = run_command(argv);
    why = r.err;
    return r.exit_code == 0;
}

struct MemoryTotals {
    bool ok = false;
    unsigned pools = 0;
    unsigned long size = 0;
    unsigned long in_use = 0;
    unsigned long long bytes = 0;
};

// The pool totals of GetMemory, summed here.
inline MemoryTotals memory_totals(sd_bus* bus) {
    MemoryTotals t;
    auto c = call_method(bus, "GetMemory");
    if (!c.ok() || sd_bus_message_enter_container(c.reply.get(), 'a', "(sqsuuuut)") <= 0) {
        return t;
    }
    const char* name = nullptr;
    const char* port = nullptr;
    std::uint16_t slot = 0;
    std::uint32_t size = 0, available = 0, in_use = 0, element = 0;
    std::uint64_t bytes = 0;
    while (sd_bus_message_read(c.reply.get(), "(sqsuuuut)", &name, &slot, &port, &size, &available, &in_use, &element,
                               &bytes) > 0) {
        ++t.pools;
        t.size += size;
        t.in_use += in_use;
        t.bytes += bytes;
    }
    t.ok = true;
    return t;
}

} // namespace gazelle::test
