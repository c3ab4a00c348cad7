// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/bus_model.h"

#include <charconv>
#include <cstdio>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "conf/net_address.h"

namespace gazelle::mgr {
namespace {

constexpr const char* k_filter_keys = "pid, slot, port, lport, rport, ip, lip, rip, proto, kind";

// A printable excerpt of user input for an error message: at most 64 bytes, control bytes as '?'.
std::string quote(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 64)) {
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
    if (text.size() > 64) {
        out += "...";
    }
    return "'" + out + "'";
}

template <typename T> std::optional<T> parse_number(std::string_view text, T max) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || value > static_cast<std::uint64_t>(max)) {
        return std::nullopt;
    }
    return static_cast<T>(value);
}

Error bad_term(std::string_view term, const std::string& why) {
    return make_error(EINVAL, "bad filter term " + quote(term) + ": " + why);
}

bool is_separator(char c) {
    return c == ' ' || c == ',' || c == '\t';
}

bool has_slot(std::uint64_t mask, unsigned slot) {
    return slot < 64 && ((mask >> slot) & 1u) != 0;
}

} // namespace

bool RuleFilter::empty() const {
    return !pid && !slot && !port && !local_port && !remote_port && !ip && !local_ip && !remote_ip && !proto && !kind;
}

Result<RuleFilter> parse_rule_filter(std::string_view text) {
    if (text.size() > k_max_filter_bytes) {
        return make_error(EINVAL, "filter is " + std::to_string(text.size()) + " bytes long, at most " +
                                      std::to_string(k_max_filter_bytes) + " are accepted");
    }
    RuleFilter filter;
    std::size_t i = 0;
    while (i < text.size()) {
        if (is_separator(text[i])) {
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < text.size() && !is_separator(text[end])) {
            ++end;
        }
        const std::string_view term = text.substr(i, end - i);
        i = end;
        const std::size_t eq = term.find('=');
        if (eq == std::string_view::npos) {
            return bad_term(term, "expected key=value (keys: " + std::string(k_filter_keys) + ")");
        }
        const std::string_view key = term.substr(0, eq);
        const std::string_view value = term.substr(eq + 1);
        const auto port_value = [&]() -> Result<std::uint16_t> {
            const auto v = parse_number<std::uint16_t>(value, 65535);
            if (!v) {
                return bad_term(term, "expected a port number 0..65535");
            }
            return *v;
        };
        const auto ip_value = [&]() -> Result<std::uint32_t> {
            auto v = conf::parse_ipv4(value);
            if (!v) {
                return bad_term(term, v.error().message);
            }
            return v->value;
        };
        if (key == "pid") {
            const auto v = parse_number<pid_t>(value, 0x7fffffff);
            if (!v || *v == 0) {
                return bad_term(term, "expected a process id 1..2147483647");
            }
            filter.pid = *v;
        } else if (key == "slot") {
            const auto v = parse_number<fabric::QueueSlot>(value, fabric::k_max_queues - 1);
            if (!v) {
                return bad_term(term, "expected a queue slot 0.." + std::to_string(fabric::k_max_queues - 1));
            }
            filter.slot = *v;
        } else if (key == "port" || key == "lport" || key == "rport") {
            auto v = port_value();
            if (!v) {
                return v.error();
            }
            (key == "port" ? filter.port : key == "lport" ? filter.local_port : filter.remote_port) = *v;
        } else if (key == "ip" || key == "lip" || key == "rip") {
            auto v = ip_value();
            if (!v) {
                return v.error();
            }
            (key == "ip" ? filter.ip : key == "lip" ? filter.local_ip : filter.remote_ip) = *v;
        } else if (key == "proto") {
            if (value == "tcp") {
                filter.proto = IPPROTO_TCP;
            } else if (value == "udp") {
                filter.proto = IPPROTO_UDP;
            } else {
                return bad_term(term, "expected proto=tcp or proto=udp");
            }
        } else if (key == "kind") {
            if (value == "connection") {
                filter.kind = fabric::FlowKeyKind::connection;
            } else if (value == "listener") {
                filter.kind = fabric::FlowKeyKind::listener;
            } else {
                return bad_term(term, "expected kind=connection or kind=listener");
            }
        } else {
            return bad_term(term, "unknown key " + quote(key) + " (keys: " + std::string(k_filter_keys) + ")");
        }
    }
    return filter;
}

bool rule_matches(const RuleFilter& f, const fabric::FlowRule& rule, const std::vector<std::int32_t>& pid_of_slot) {
    const fabric::FlowKey& k = rule.key;
    const bool listener = k.is_listener();
    const std::uint16_t lport = ntohs(k.local_port);
    const std::uint16_t rport = ntohs(k.remote_port);
    const std::uint32_t lip = ntohl(k.local_ip);
    const std::uint32_t rip = ntohl(k.remote_ip);
    if (f.kind && *f.kind != k.kind) {
        return false;
    }
    if (f.proto && *f.proto != k.proto) {
        return false;
    }
    if (f.port && *f.port != lport && (listener || *f.port != rport)) {
        return false;
    }
    if ((f.local_port && *f.local_port != lport) || (f.remote_port && (listener || *f.remote_port != rport))) {
        return false;
    }
    if (f.ip && *f.ip != lip && (listener || *f.ip != rip)) {
        return false;
    }
    if ((f.local_ip && *f.local_ip != lip) || (f.remote_ip && (listener || *f.remote_ip != rip))) {
        return false;
    }
    if (f.slot) {
        const bool owned = listener ? has_slot(rule.hit.mask, *f.slot) : rule.hit.slot == *f.slot;
        if (!owned) {
            return false;
        }
    }
    if (f.pid) {
        const auto pid_of = [&](unsigned slot) { return slot < pid_of_slot.size() ? pid_of_slot[slot] : 0; };
        bool owned = false;
        if (listener) {
            for (unsigned s = 0; s < 64 && !owned; ++s) {
                owned = has_slot(rule.hit.mask, s) && pid_of(s) == *f.pid;
            }
        } else {
            owned = pid_of(rule.hit.slot) == *f.pid;
        }
        if (!owned) {
            return false;
        }
    }
    return true;
}

const char* queue_state_name(fabric::QueueState state) {
    switch (state) {
    case fabric::QueueState::free:
        return "free";
    case fabric::QueueState::owned:
        return "owned";
    case fabric::QueueState::draining:
        return "draining";
    }
    return "unknown";
}

std::string proto_name(std::uint8_t proto) {
    switch (proto) {
    case IPPROTO_TCP:
        return "tcp";
    case IPPROTO_UDP:
        return "udp";
    default:
        return std::to_string(proto);
    }
}

std::string ipv4_name(std::uint32_t network_order) {
    return conf::to_string(conf::Ipv4{ntohl(network_order)});
}

const char* app_end_name(AppEnd end) {
    switch (end) {
    case AppEnd::detached:
        return "detached";
    case AppEnd::exited:
        return "exited";
    case AppEnd::hung:
        return "hung";
    case AppEnd::forced:
        return "forced";
    }
    return "exited";
}

bool is_crash(AppEnd end) {
    return end != AppEnd::detached;
}

} // namespace gazelle::mgr
