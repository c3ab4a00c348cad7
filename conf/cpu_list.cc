// SPDX-License-Identifier: BSD-3-Clause
#include "conf/cpu_list.h"

#include <charconv>

namespace gazelle::conf {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') {
        s.remove_prefix(1);
    }
    while (!s.empty() && s.back() == ' ') {
        s.remove_suffix(1);
    }
    return s;
}

bool parse_id(std::string_view s, unsigned& out) {
    if (s.empty() || s.size() > 9) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size();
}

} // namespace

Result<std::vector<unsigned>> parse_cpu_list(std::string_view text, unsigned limit) {
    std::vector<unsigned> ids;
    if (trim(text).empty()) {
        return ids;
    }
    std::vector<bool> seen(limit, false);
    std::string_view rest = text;
    for (;;) {
        const std::size_t comma = rest.find(',');
        const std::string_view entry = trim(rest.substr(0, comma));
        const std::size_t dash = entry.find('-');
        unsigned first = 0;
        unsigned last = 0;
        bool ok = false;
        if (dash == std::string_view::npos) {
            ok = parse_id(entry, first);
            last = first;
        } else {
            ok = parse_id(entry.substr(0, dash), first) && parse_id(entry.substr(dash + 1), last);
        }
        if (!ok) {
            return make_error(EINVAL,
                              "'" + std::string(entry) + "' is not a CPU id or range (expected e.g. \"0-3,8\")");
        }
        if (last < first) {
            return make_error(EINVAL, "range '" + std::string(entry) + "' is reversed");
        }
        if (last >= limit) {
            return make_error(EINVAL, "id " + std::to_string(last) + " is out of range (ids are 0.." +
                                          std::to_string(limit - 1) + ")");
        }
        for (unsigned id = first; id <= last; ++id) {
            if (seen[id]) {
                return make_error(EINVAL, "id " + std::to_string(id) + " is listed twice");
            }
            seen[id] = true;
            ids.push_back(id);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    return ids;
}

std::string format_cpu_list(const std::vector<unsigned>& ids) {
    std::string out;
    std::size_t i = 0;
    while (i < ids.size()) {
        std::size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) {
            ++j;
        }
        if (!out.empty()) {
            out += ',';
        }
        if (j > i) {
            out += std::to_string(ids[i]) + '-' + std::to_string(ids[j]);
            i = j + 1;
        } else {
            out += std::to_string(ids[i]);
            ++i;
        }
    }
    return out;
}

} // namespace gazelle::conf
