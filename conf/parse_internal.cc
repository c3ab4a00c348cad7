// SPDX-License-Identifier: BSD-3-Clause
#include "conf/parse_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>

namespace gazelle::conf::internal {
namespace {

bool is_name_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_hex_digit(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Whether libconfig 1.5 stores this integer literal faithfully. Without an L suffix it goes
// through a 32-bit int (decimal via atoi-like wrapping, hex via a cast from unsigned), so
// anything outside int32 (or above 0x7fffffff in hex) silently becomes another number.
bool literal_fits(std::string_view token) {
    std::string_view digits = token;
    const bool negative = !digits.empty() && digits.front() == '-';
    if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
        digits.remove_prefix(1);
    }
    bool wide = false;
    while (!digits.empty() && (digits.back() == 'L' || digits.back() == 'l')) {
        wide = true;
        digits.remove_suffix(1);
    }
    const bool hex = digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    // A literal that overflows 64 bits does not fit in anything libconfig stores.
    unsigned long long magnitude = 0;
    const unsigned base = hex ? 16u : 10u;
    for (char c : hex ? digits.substr(2) : digits) {
        const unsigned d = is_digit(c) ? static_cast<unsigned>(c - '0') : static_cast<unsigned>((c | 0x20) - 'a' + 10);
        if (magnitude > (std::numeric_limits<unsigned long long>::max() - d) / base) {
            return false;
        }
        magnitude = magnitude * base + d;
    }
    if (wide) {
        return magnitude <= (negative ? 1ull << 63 : (1ull << 63) - 1);
    }
    if (hex) {
        return magnitude <= static_cast<unsigned long long>(INT32_MAX);
    }
    return magnitude <= (negative ? 1ull << 31 : static_cast<unsigned long long>(INT32_MAX));
}

// Step 1: a minimal libconfig tokenizer that only cares about comments, strings, names and
// integer literals.
bool prescan(std::string_view text, Source& source, Findings& findings) {
    bool usable = true;
    unsigned line = 1;
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (c == '\0') {
            findings.error(line, {}, "the file contains a NUL byte (libconfig would stop reading there)");
            return false;
        } else if (c == '#' || (c == '/' && i + 1 < n && text[i + 1] == '/')) {
            while (i < n && text[i] != '\n') {
                ++i;
            }
        } else if (c == '/' && i + 1 < n && text[i + 1] == '*') {
            i += 2;
            while (i < n && !(text[i] == '*' && i + 1 < n && text[i + 1] == '/')) {
                line += text[i] == '\n' ? 1u : 0u;
                ++i;
            }
            i = std::min(n, i + 2);
        } else if (c == '"') {
            ++i;
            while (i < n && text[i] != '"') {
                line += text[i] == '\n' ? 1u : 0u;
                i += text[i] == '\\' ? 2u : 1u;
            }
            ++i;
        } else if (c == '@') {
            findings.error(line, {}, "@include is not supported: keep the configuration in one file");
            usable = false;
            while (i < n && text[i] != '\n') {
                ++i;
            }
        } else if (is_name_start(c)) {
            while (i < n && is_name_char(text[i])) {
                ++i;
            }
        } else if (is_digit(c) || ((c == '-' || c == '+') && i + 1 < n && is_digit(text[i + 1]))) {
            const std::size_t start = i;
            ++i;
            bool is_float = false;
            while (i < n && (is_hex_digit(text[i]) || text[i] == 'x' || text[i] == 'X' || text[i] == '.' ||
                             ((text[i] == '-' || text[i] == '+') && (text[i - 1] == 'e' || text[i - 1] == 'E')))) {
                // 'e' is a hex digit too; only a decimal literal with '.' or an exponent is a float.
                is_float = is_float || text[i] == '.' ||
                           ((text[i] == 'e' || text[i] == 'E') &&
                            text.substr(start, i - start).find_first_of("xX") == std::string_view::npos);
                ++i;
            }
            while (i < n && (text[i] == 'L' || text[i] == 'l')) {
                ++i;
            }
            const std::string_view token = text.substr(start, i - start);
            if (!is_float && !literal_fits(token)) {
                source.overflows.emplace(line, std::string(token));
            }
        } else {
            ++i;
        }
    }
    return usable;
}

std::string trimmed(std::string_view s, std::size_t max_len) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    std::string out(s.substr(0, max_len));
    if (s.size() > max_len) {
        out += "...";
    }
    return out;
}

// The setting name libconfig complains about on a line: the first name assigned twice on the
// line, else the first name assigned on it.
std::string duplicate_name_on(std::string_view line) {
    std::vector<std::string> names;
    std::size_t i = 0;
    while (i < line.size()) {
        if (line[i] == '"') {
            ++i;
            while (i < line.size() && line[i] != '"') {
                i += line[i] == '\\' ? 2u : 1u;
            }
            ++i;
            continue;
        }
        if (line[i] == '#' || (line[i] == '/' && i + 1 < line.size() && line[i + 1] == '/')) {
            break;
        }
        if (is_name_start(line[i]) && (i == 0 || !is_name_char(line[i - 1]))) {
            const std::size_t start = i;
            while (i < line.size() && is_name_char(line[i])) {
                ++i;
            }
            std::size_t j = i;
            while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) {
                ++j;
            }
            if (j < line.size() && (line[j] == '=' || line[j] == ':')) {
                std::string name(line.substr(start, i - start));
                if (std::find(names.begin(), names.end(), name) != names.end()) {
                    return name;
                }
                names.push_back(std::move(name));
            }
            continue;
        }
        ++i;
    }
    return names.empty() ? std::string() : names.front();
}

// Messages quote values from the file, which may hold newlines (libconfig strings can span lines);
// escaping them keeps "one finding per line" true for whoever splits the joined message.
std::string one_line(std::string message) {
    if (std::none_of(message.begin(), message.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
        return message;
    }
    std::string out;
    for (char c : message) {
        if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char digits[] = "0123456789abcdef";
            out += "\\x";
            out += digits[static_cast<unsigned char>(c) >> 4];
            out += digits[static_cast<unsigned char>(c) & 0x0fu];
        } else {
            out += c;
        }
    }
    return out;
}

} // namespace

void Findings::error(unsigned line, std::string key, std::string message) {
    errors_.push_back(Diagnostic{file_, line, std::move(key), one_line(std::move(message))});
}

void Findings::warn(unsigned line, std::string key, std::string message) {
    warnings_.push_back(Diagnostic{file_, line, std::move(key), one_line(std::move(message))});
}

bool Findings::has_error_on(unsigned line) const {
    return std::any_of(errors_.begin(), errors_.end(), [&](const Diagnostic& d) { return d.line == line; });
}

bool Findings::has_error_for(std::string_view key) const {
    return std::any_of(errors_.begin(), errors_.end(), [&](const Diagnostic& d) { return d.key == key; });
}

Error Findings::to_error() const {
    return make_error(EINVAL, join(errors_));
}

bool read_source(std::string_view text, Source& source, Findings& findings) {
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = text.find('\n', start);
        const std::size_t length = end == std::string_view::npos ? std::string_view::npos : end - start;
        source.lines.emplace_back(text.substr(start, length));
        if (end == std::string_view::npos) {
            break;
        }
        start = end + 1;
    }
    if (text.size() > k_max_file_bytes) {
        findings.error(0, {}, "the file is larger than " + std::to_string(k_max_file_bytes) + " bytes");
        return false;
    }
    if (!prescan(text, source, findings)) {
        return false;
    }
    const std::string copy(text);
    if (config_read_string(source.config.get(), copy.c_str()) == CONFIG_TRUE) {
        return true;
    }
    const int raw_line = config_error_line(source.config.get());
    const unsigned line = raw_line > 0 ? static_cast<unsigned>(raw_line) : 0u;
    const char* raw_text = config_error_text(source.config.get());
    const std::string libconfig_text = raw_text != nullptr ? raw_text : "unknown error";
    const std::string line_text =
        line > 0 && line <= source.lines.size() ? trimmed(source.lines[line - 1], 80) : std::string();
    if (libconfig_text == "duplicate setting name" && !line_text.empty()) {
        const std::string name = duplicate_name_on(source.lines[line - 1]);
        findings.error(line, name,
                       "duplicate key: it is already set in this group (libconfig: " + libconfig_text + ")");
    } else {
        std::string message = "syntax error (libconfig: " + libconfig_text + ")";
        if (!line_text.empty()) {
            message += " in '" + line_text + "'";
        }
        findings.error(line, {}, std::move(message));
    }
    return false;
}

Result<std::string> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        return make_error(err, "cannot open '" + path + "': " + std::strerror(err));
    }
    std::string text;
    char chunk[16384];
    for (;;) {
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            const int err = errno;
            ::close(fd);
            return make_error(err, "cannot read '" + path + "': " + std::strerror(err));
        }
        if (got == 0) {
            break;
        }
        text.append(chunk, static_cast<std::size_t>(got));
        if (text.size() > k_max_file_bytes) {
            ::close(fd);
            return make_error(EFBIG, path + ": the file is larger than " + std::to_string(k_max_file_bytes) + " bytes");
        }
    }
    ::close(fd);
    return text;
}

std::string quote(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                static constexpr char digits[] = "0123456789abcdef";
                out += "\\x";
                out += digits[static_cast<unsigned char>(c) >> 4];
                out += digits[static_cast<unsigned char>(c) & 0x0fu];
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

std::string quote_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += (i == 0 ? "" : ", ") + quote(items[i]);
    }
    return out + "]";
}

std::string literal(Kind kind, const Value& value) {
    switch (kind) {
    case Kind::integer:
    case Kind::flag:
        return std::to_string(value.integer);
    case Kind::string:
        return quote(value.text);
    case Kind::string_list:
        return quote_list(value.list);
    }
    return {};
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0u : 1u)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string suggest(std::string_view unknown, std::span<const std::string_view> candidates) {
    // A third of the name's length catches Gazelle's documented "nic_read_num" (3 edits from
    // nic_read_number) without suggesting unrelated short names.
    const std::size_t budget = std::max<std::size_t>(2, unknown.size() / 3);
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto candidate : candidates) {
        std::size_t d = edit_distance(unknown, candidate);
        const bool prefix = unknown.size() >= 4 && (candidate.starts_with(unknown) || unknown.starts_with(candidate));
        if (prefix) {
            d = std::min(d, budget);
        }
        if (d <= budget && d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best.empty() ? std::string() : " (did you mean '" + std::string(best) + "'?)";
}

const char* type_name(int libconfig_type) {
    switch (libconfig_type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    case CONFIG_TYPE_GROUP:
        return "a group";
    default:
        return "nothing";
    }
}

unsigned line_of(const config_setting_t* setting) {
    return config_setting_source_line(setting);
}

std::string type_text(Kind kind) {
    switch (kind) {
    case Kind::integer:
        return "integer";
    case Kind::flag:
        return "flag";
    case Kind::string:
        return "string";
    case Kind::string_list:
        return "list of strings";
    }
    return {};
}

std::string range_text(const Limits& limits, std::string_view value_text) {
    if (limits.kind == Kind::flag) {
        return "0 or 1 (false, true)";
    }
    if (limits.kind == Kind::integer && limits.max > limits.min) {
        std::string out = std::to_string(limits.min) + ".." + std::to_string(limits.max);
        return limits.power_of_two ? out + ", power of two" : out;
    }
    if (limits.kind == Kind::string && !limits.choices.empty()) {
        std::string out;
        std::string_view rest = limits.choices;
        for (;;) {
            const std::size_t bar = rest.find('|');
            out += quote(rest.substr(0, bar));
            if (bar == std::string_view::npos) {
                break;
            }
            out += " or ";
            rest.remove_prefix(bar + 1);
        }
        return out;
    }
    return std::string(value_text);
}

namespace {

bool is_power_of_two(long long v) {
    return v > 0 && (v & (v - 1)) == 0;
}

bool in_choices(std::string_view choices, std::string_view text) {
    std::string_view rest = choices;
    for (;;) {
        const std::size_t bar = rest.find('|');
        if (rest.substr(0, bar) == text) {
            return true;
        }
        if (bar == std::string_view::npos) {
            return false;
        }
        rest.remove_prefix(bar + 1);
    }
}

std::string expected_text(Kind kind) {
    switch (kind) {
    case Kind::integer:
        return "an integer";
    case Kind::flag:
        return "0 or 1";
    case Kind::string:
        return "a string";
    case Kind::string_list:
        return "a list of strings like [\"a\", \"b\"]";
    }
    return {};
}

} // namespace

bool read_value(const config_setting_t* setting, const Limits& limits, Source& source, const Site& site, Value& out) {
    const int type = config_setting_type(setting);
    const auto wrong_type = [&] {
        site.error("wrong type: expected " + expected_text(limits.kind) + ", got " + type_name(type));
        return false;
    };
    switch (limits.kind) {
    case Kind::integer:
    case Kind::flag: {
        if (type == CONFIG_TYPE_BOOL && limits.kind == Kind::flag) {
            out.integer = config_setting_get_bool(setting) ? 1 : 0;
            return true;
        }
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            return wrong_type();
        }
        const std::string range = limits.kind == Kind::flag ? std::string("0 or 1") : range_text(limits, {});
        if (const auto overflow = source.overflows.find(site.line); overflow != source.overflows.end()) {
            site.error("out of range: " + overflow->second +
                       (range.empty() ? std::string(" does not fit in 32 bits") : " is not in " + range));
            source.overflows.erase(overflow);
            return false;
        }
        out.integer = config_setting_get_int64(setting);
        const bool flag_ok = limits.kind != Kind::flag || out.integer == 0 || out.integer == 1;
        const bool range_ok = limits.max <= limits.min || (out.integer >= limits.min && out.integer <= limits.max);
        if (!flag_ok || !range_ok) {
            site.error("out of range: " + std::to_string(out.integer) + " is not " +
                       (limits.kind == Kind::flag ? std::string("0 or 1") : "in " + range));
            return false;
        }
        if (limits.power_of_two && !is_power_of_two(out.integer)) {
            site.error(std::to_string(out.integer) + " is not a power of two (allowed: " + range + ")");
            return false;
        }
        return true;
    }
    case Kind::string: {
        if (type != CONFIG_TYPE_STRING) {
            return wrong_type();
        }
        out.text = config_setting_get_string(setting);
        if (out.text.size() > k_max_string_bytes) {
            site.error("the string is longer than " + std::to_string(k_max_string_bytes) + " bytes");
            return false;
        }
        if (!limits.choices.empty() && !in_choices(limits.choices, out.text)) {
            site.error("invalid value " + quote(out.text) + " (expected " + range_text(limits, {}) + ")");
            return false;
        }
        return true;
    }
    case Kind::string_list: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
            return wrong_type();
        }
        const int count = config_setting_length(setting);
        if (static_cast<std::size_t>(count) > k_max_list_entries) {
            site.error("too many entries: " + std::to_string(count) + " (at most " +
                       std::to_string(k_max_list_entries) + ")");
            return false;
        }
        for (int i = 0; i < count; ++i) {
            const config_setting_t* element = config_setting_get_elem(setting, static_cast<unsigned>(i));
            if (config_setting_type(element) != CONFIG_TYPE_STRING) {
                site.error("wrong type: expected a list of strings, entry " + std::to_string(i) + " is " +
                           type_name(config_setting_type(element)));
                return false;
            }
            out.list.emplace_back(config_setting_get_string(element));
            if (out.list.back().size() > k_max_string_bytes) {
                site.error("entry " + std::to_string(i) + " is longer than " + std::to_string(k_max_string_bytes) +
                           " bytes");
                return false;
            }
        }
        return true;
    }
    }
    return false;
}

std::vector<Diagnostic> Findings::warnings_by_line() const {
    std::vector<Diagnostic> sorted = warnings_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
    return sorted;
}

void report_unread_overflows(Source& source, Findings& findings) {
    for (const auto& [line, token] : source.overflows) {
        if (!findings.has_error_on(line)) {
            findings.error(line, {},
                           "integer " + token + " does not fit in 32 bits (libconfig 1.5 would silently wrap it)");
        }
    }
    source.overflows.clear();
}

} // namespace gazelle::conf::internal
