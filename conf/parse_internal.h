// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Private to conf/: the table-driven libconfig reader behind manager_config.cc and
// lstack_config.cc. Not installed, not included outside conf/.
//
// A file is read in three steps, each reporting every finding it can (not only the first):
//  1. prescan(): what libconfig 1.5 gets silently wrong or we refuse outright: integer literals
//     it would wrap (`2147483648` becomes -2147483648, `0xffffffff` becomes -1), @include (it
//     would make file:line ambiguous), NUL bytes (config_read_string stops at the first).
//  2. libconfig: syntax. 1.5 already rejects a name set twice in one group ("duplicate setting
//     name"), so duplicates surface here and we only name the key.
//  3. read_group() per group, driven by a KeySpec table: unknown keys (with a did-you-mean),
//     types, ranges, values, dispositions; then the caller's cross-field checks, which run after
//     every key is stored, so the order of keys in a file never matters.

#include <libconfig.h>

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "conf/diagnostic.h"
#include "conf/key_info.h"
#include "conf/result.h"

namespace gazelle::conf::internal {

// Every user-controlled size has a limit (these are far above any sane file).
inline constexpr std::size_t k_max_file_bytes = 1u << 20;
inline constexpr std::size_t k_max_string_bytes = 4096;
inline constexpr std::size_t k_max_list_entries = 64;

// Collects the findings of one pass over one file.
class Findings {
public:
    explicit Findings(std::string file) : file_(std::move(file)) {}

    void error(unsigned line, std::string key, std::string message);
    void warn(unsigned line, std::string key, std::string message);

    [[nodiscard]] bool has_error_on(unsigned line) const;
    [[nodiscard]] bool has_error_for(std::string_view key) const;
    [[nodiscard]] bool ok() const { return errors_.empty(); }
    const std::string& file() const { return file_; }
    const std::vector<Diagnostic>& errors() const { return errors_; }
    const std::vector<Diagnostic>& warnings() const { return warnings_; }
    // The warnings in file order (stable: same-line warnings keep the order they were found in).
    [[nodiscard]] std::vector<Diagnostic> warnings_by_line() const;
    // All errors as one Error (EINVAL), one per line, sorted by line.
    [[nodiscard]] Error to_error() const;

private:
    std::string file_;
    std::vector<Diagnostic> errors_;
    std::vector<Diagnostic> warnings_;
};

// One setting being read: where it is, and where its findings go.
struct Site {
    Findings* findings = nullptr;
    unsigned line = 0;
    std::string key; // full name as reported: "host_addr", "ports[1].mtu"

    void error(std::string message) const { findings->error(line, key, std::move(message)); }
    void warn(std::string message) const { findings->warn(line, key, std::move(message)); }
};

// Owns a config_t. Not movable: every setting points back at its config_t.
class LibConfig {
public:
    LibConfig() { config_init(&config_); }
    ~LibConfig() { config_destroy(&config_); }
    LibConfig(const LibConfig&) = delete;
    LibConfig& operator=(const LibConfig&) = delete;

    config_t* get() { return &config_; }
    const config_setting_t* root() const { return config_root_setting(&config_); }

private:
    config_t config_{};
};

// A parsed file plus what the prescan learned about it.
struct Source {
    LibConfig config;
    std::map<unsigned, std::string> overflows; // line -> integer literal libconfig would wrap
    std::vector<std::string> lines;            // the text, for quoting a line in syntax errors
};

// Steps 1 and 2. Returns false after reporting to findings when the text cannot be used.
[[nodiscard]] bool read_source(std::string_view text, Source& source, Findings& findings);

// Reads a whole file (at most k_max_file_bytes). Errors carry the errno of the failure.
[[nodiscard]] Result<std::string> read_file(const std::string& path);

enum class Kind { integer, flag, string, string_list };

// One setting's value after its type check.
struct Value {
    long long integer = 0; // integer and flag (0/1; libconfig booleans are accepted too)
    std::string text;      // string
    std::vector<std::string> list;
};

template <typename T>
using Field = std::variant<std::monostate, unsigned T::*, bool T::*, std::string T::*, std::vector<std::string> T::*>;

// One row of a key table. Honoured keys are stored through `field`, or through `store` when they
// need validation beyond kind and range (addresses, CPU lists, enums); `store` reports through the
// Site and must leave the target unchanged on error.
template <typename T>
struct KeySpec {
    std::string_view name;
    Kind kind = Kind::integer;
    long long min = 0; // integer range, checked when max > min
    long long max = 0;
    bool power_of_two = false;
    std::string_view choices;    // string keys with a fixed set of values: "a|b|c"
    std::string_view value_text; // what a string holds, for the docs: "IPv4 address"
    Disposition disposition = Disposition::honoured;
    std::string_view accepted; // warning/error keys: literal that draws no finding ("0", "\"\"")
    std::string_view reason;
    std::string_view doc;
    std::string_view example; // a valid literal of this key's kind (tests use it)
    bool required = false;
    bool from_gazelle = false;
    Field<T> field{};
    void (*store)(T&, const Value&, const Site&) = nullptr;
    std::string (*show)(const T&) = nullptr; // effective value as a libconfig literal
    bool (*applies)(const T&) = nullptr;     // describe() prints the key only when true (null: always)
};

// libconfig string literal: "a\"b".
[[nodiscard]] std::string quote(std::string_view text);
[[nodiscard]] std::string quote_list(const std::vector<std::string>& items);
[[nodiscard]] std::string literal(Kind kind, const Value& value);
// " (did you mean 'x'?)" for the closest candidate by edit distance, or "".
[[nodiscard]] std::string suggest(std::string_view unknown, std::span<const std::string_view> candidates);
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

struct Limits {
    Kind kind = Kind::integer;
    long long min = 0;
    long long max = 0;
    bool power_of_two = false;
    std::string_view choices;
};

// Type, overflow, range and choice checks of one setting. Returns false after reporting.
[[nodiscard]] bool read_value(const config_setting_t* setting, const Limits& limits, Source& source, const Site& site,
                              Value& out);
// Reports integer literals that no key consumed (e.g. inside an unknown key of the wrong type).
void report_unread_overflows(Source& source, Findings& findings);

[[nodiscard]] std::string type_text(Kind kind);
[[nodiscard]] std::string range_text(const Limits& limits, std::string_view value_text);
[[nodiscard]] unsigned line_of(const config_setting_t* setting);
[[nodiscard]] const char* type_name(int libconfig_type);

template <typename T>
Limits limits_of(const KeySpec<T>& spec) {
    return Limits{spec.kind, spec.min, spec.max, spec.power_of_two, spec.choices};
}

template <typename T>
std::string show_value(const KeySpec<T>& spec, const T& target) {
    if (spec.show != nullptr) {
        return spec.show(target);
    }
    return std::visit(
        [&](auto member) -> std::string {
            using M = decltype(member);
            if constexpr (std::is_same_v<M, std::monostate>) {
                return {};
            } else {
                const auto& v = target.*member;
                using V = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<V, unsigned>) {
                    return std::to_string(v);
                } else if constexpr (std::is_same_v<V, bool>) {
                    return v ? "1" : "0";
                } else if constexpr (std::is_same_v<V, std::string>) {
                    return quote(v);
                } else {
                    return quote_list(v);
                }
            }
        },
        spec.field);
}

template <typename T>
void store_value(const KeySpec<T>& spec, T& target, const Value& value, const Site& site) {
    if (spec.store != nullptr) {
        spec.store(target, value, site);
        return;
    }
    std::visit(
        [&](auto member) {
            using M = decltype(member);
            if constexpr (!std::is_same_v<M, std::monostate>) {
                auto& v = target.*member;
                using V = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<V, unsigned>) {
                    v = static_cast<unsigned>(value.integer); // the table's min >= 0 (tested)
                } else if constexpr (std::is_same_v<V, bool>) {
                    v = value.integer != 0;
                } else if constexpr (std::is_same_v<V, std::string>) {
                    v = value.text;
                } else {
                    v = value.list;
                }
            }
        },
        spec.field);
}

template <typename T>
void apply(const KeySpec<T>& spec, T& target, const Value& value, const Site& site) {
    switch (spec.disposition) {
    case Disposition::honoured:
        store_value(spec, target, value, site);
        return;
    case Disposition::warning:
        if (spec.accepted.empty() || literal(spec.kind, value) != spec.accepted) {
            site.warn(std::string(spec.reason));
        }
        return;
    case Disposition::error:
        if (spec.accepted.empty() || literal(spec.kind, value) != spec.accepted) {
            site.error(std::string(spec.reason));
        }
        return;
    case Disposition::removed:
        site.error(std::string(spec.reason));
        return;
    }
}

// Key name -> line of every key present in one group (for cross-field checks and "was it set").
using Lines = std::map<std::string, unsigned, std::less<>>;

// Step 3 for one group: every setting of `group` is looked up in `specs` and applied to target.
// `prefix` makes reported keys unique ("ports[1]."); required keys that are absent are reported
// at the group's line.
template <typename T>
void read_group(const config_setting_t* group, std::span<const KeySpec<T>> specs, T& target, const std::string& prefix,
                Source& source, Findings& findings, Lines& lines) {
    std::vector<std::string_view> candidates;
    for (const auto& spec : specs) {
        if (spec.disposition != Disposition::removed) {
            candidates.push_back(spec.name);
        }
    }
    const int count = config_setting_length(group);
    for (int i = 0; i < count; ++i) {
        const config_setting_t* setting = config_setting_get_elem(group, static_cast<unsigned>(i));
        const char* raw_name = config_setting_name(setting);
        const std::string name = raw_name != nullptr ? raw_name : "";
        const Site site{&findings, line_of(setting), prefix + name};
        const KeySpec<T>* spec = nullptr;
        for (const auto& candidate : specs) {
            if (candidate.name == name) {
                spec = &candidate;
                break;
            }
        }
        if (spec == nullptr) {
            site.error("unknown key" + suggest(name, candidates));
            continue;
        }
        lines[name] = site.line;
        if (spec->disposition == Disposition::removed) {
            site.error(std::string(spec->reason));
            continue;
        }
        Value value;
        if (read_value(setting, limits_of(*spec), source, site, value)) {
            apply(*spec, target, value, site);
        }
    }
    for (const auto& spec : specs) {
        if (spec.required && !lines.contains(spec.name)) {
            findings.error(line_of(group), prefix + std::string(spec.name), "missing required key");
        }
    }
}

// The effective values of one group in libconfig syntax, one "name = value;" line per key.
template <typename T>
std::string describe_group(std::span<const KeySpec<T>> specs, const T& target, std::string_view indent) {
    std::string out;
    for (const auto& spec : specs) {
        if (spec.disposition != Disposition::honoured || (spec.applies != nullptr && !spec.applies(target))) {
            continue;
        }
        out += std::string(indent) + std::string(spec.name) + " = " + show_value(spec, target) + ";\n";
    }
    return out;
}

template <typename T>
KeyInfo key_info(const KeySpec<T>& spec, std::string_view prefix, const T& defaults) {
    KeyInfo info;
    info.name = std::string(prefix) + std::string(spec.name);
    info.type = spec.disposition == Disposition::removed ? std::string() : type_text(spec.kind);
    info.range =
        spec.disposition == Disposition::removed ? std::string() : range_text(limits_of(spec), spec.value_text);
    if (spec.disposition == Disposition::honoured && !spec.required) {
        info.default_value = show_value(spec, defaults);
    }
    info.disposition = spec.disposition;
    info.accepted = std::string(spec.accepted);
    info.reason = std::string(spec.reason);
    info.doc = std::string(spec.doc);
    info.example = std::string(spec.example);
    info.required = spec.required;
    info.from_gazelle = spec.from_gazelle;
    return info;
}

// The tables, as KeyInfo (defined next to each table).
[[nodiscard]] std::vector<KeyInfo> lstack_key_infos();
[[nodiscard]] std::vector<KeyInfo> manager_key_infos();

} // namespace gazelle::conf::internal
