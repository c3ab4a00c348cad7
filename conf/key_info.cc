// SPDX-License-Identifier: BSD-3-Clause
#include "conf/key_info.h"

#include "conf/parse_internal.h"

namespace gazelle::conf {
namespace {

std::string cell(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '|') {
            out += "\\|";
        } else if (c == '\n') {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

std::string code(const std::string& text) {
    return text.empty() ? std::string() : "`" + cell(text) + "`";
}

std::string honoured_table(const std::vector<KeyInfo>& keys, const std::string& section) {
    std::string out = "| Key | Type | Values | Default | Meaning |\n|---|---|---|---|---|\n";
    for (const auto& key : keys) {
        const bool in_section =
            section.empty() ? key.name.find('.') == std::string::npos : key.name.starts_with(section);
        if (key.disposition != Disposition::honoured || !in_section) {
            continue;
        }
        out += "| " + code(key.name) + " | " + cell(key.type) + " | " + cell(key.range) + " | " +
               (key.required ? std::string("required") : code(key.default_value)) + " | " + cell(key.doc) + " |\n";
    }
    return out;
}

std::string compatibility_table(const std::vector<KeyInfo>& keys) {
    std::string out = "| Gazelle key | Disposition | Accepted without a finding | Here | In Gazelle |\n"
                      "|---|---|---|---|---|\n";
    for (const auto& key : keys) {
        if (!key.from_gazelle && key.disposition != Disposition::removed) {
            continue;
        }
        const bool honoured = key.disposition == Disposition::honoured;
        const std::string accepted = honoured               ? std::string("any valid value")
                                     : key.accepted.empty() ? std::string("nothing")
                                                            : code(key.accepted);
        const std::string here = honoured ? key.doc : key.reason;
        const std::string gazelle = honoured          ? std::string("the same key")
                                    : key.doc.empty() ? std::string("documented, no longer parsed")
                                                      : key.doc;
        out += "| " + code(key.name) + " | " + to_string(key.disposition) + " | " + accepted + " | " + cell(here) +
               " | " + cell(gazelle) + " |\n";
    }
    return out;
}

} // namespace

const char* to_string(Disposition disposition) {
    switch (disposition) {
    case Disposition::honoured:
        return "honoured";
    case Disposition::warning:
        return "warning";
    case Disposition::error:
        return "error";
    case Disposition::removed:
        return "removed";
    }
    return "honoured";
}

std::vector<KeyInfo> config_keys(ConfigFile file) {
    return file == ConfigFile::manager ? internal::manager_key_infos() : internal::lstack_key_infos();
}

std::string reference_markdown(ConfigFile file) {
    const auto keys = config_keys(file);
    if (file == ConfigFile::manager) {
        std::string out;
        for (const char* section : {"dpdk.", "fabric.", "ports[].", "bridges[].", "manager."}) {
            std::string title(section);
            title.pop_back();
            out += "#### `" + title + "`\n\n" + honoured_table(keys, section) + "\n";
        }
        out.pop_back();
        return out;
    }
    return "#### Keys with a meaning here\n\n" + honoured_table(keys, "") +
           "\n#### Compatibility with Gazelle's lstack.conf\n\n" + compatibility_table(keys);
}

} // namespace gazelle::conf
