// SPDX-License-Identifier: BSD-3-Clause
// gazellectl: the command-line client of gazelle-mgr. It talks to the manager over D-Bus only
// (org.openeuler.Gazelle1, doc/dbus-api.md); the guide with example outputs is doc/gazellectl.md.
//
// Exit status: 0 success, 1 failure (manager unreachable, access denied, no such app, ...),
// 2 usage error (including a ListRules filter the manager rejects).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include <systemd/sd-bus.h>

#ifndef GAZELLE_VERSION
#define GAZELLE_VERSION "unknown"
#endif

namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_failure = 1;
constexpr int k_exit_usage = 2;

constexpr const char* k_bus_name = "org.openeuler.Gazelle1";
constexpr const char* k_bus_path = "/org/openeuler/Gazelle1";
constexpr const char* k_bus_interface = "org.openeuler.Gazelle1.Manager";
constexpr const char* k_error_no_such_app = "org.openeuler.Gazelle1.Error.NoSuchApp";
constexpr std::uint16_t k_no_queue = 0xffff;
constexpr unsigned k_bar_width = 20;

constexpr const char* k_usage =
    "Usage: gazellectl [--bus system|session|ADDRESS] [--json] show WHAT\n"
    "       gazellectl [--bus ...] [--json] reclaim PID\n"
    "       gazellectl --help | --version\n"
    "\n"
    "Shows the state of gazelle-mgr, the manager of the Gazelle fabric, over D-Bus\n"
    "(org.openeuler.Gazelle1).\n"
    "\n"
    "  show apps              registered applications: pid, program, port, queues, lcores\n"
    "  show queues            the queue table: state, owner, epoch, lcore, heartbeat\n"
    "  show rules [FILTER]    flow rules (connections and listeners); FILTER terms, all of which\n"
    "                         must match: pid=N slot=N port=N lport=N rport=N ip=A.B.C.D\n"
    "                         lip=A.B.C.D rip=A.B.C.D proto=tcp|udp kind=connection|listener\n"
    "  show conns             connections, per application\n"
    "  show stats [-r [SECONDS]] [--count N]\n"
    "                         per-queue packet counters, drops by reason, flow table counters;\n"
    "                         -r: rates per second every SECONDS (default 1) until Ctrl-C or N samples\n"
    "  show memory            memory use: mbuf pools, stack memory, shared objects, hugepages\n"
    "  reclaim PID            kill application PID and reclaim its queues (root only)\n"
    "\n"
    "  --bus BUS    the bus gazelle-mgr is on: system (default), session, or a D-Bus address\n"
    "               such as unix:path=/run/gazelle/bus\n"
    "  --json       print JSON instead of tables (show stats -r: one JSON object per line)\n"
    "  -h, --help   show this help\n"
    "  --version    show the version\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

// --- RAII ------------------------------------------------------------------------------------

struct BusDeleter {
    void operator()(sd_bus* bus) const { (void)sd_bus_flush_close_unref(bus); }
};
using BusPtr = std::unique_ptr<sd_bus, BusDeleter>;

struct MessageDeleter {
    void operator()(sd_bus_message* m) const { (void)sd_bus_message_unref(m); }
};
using MessagePtr = std::unique_ptr<sd_bus_message, MessageDeleter>;

class BusError {
public:
    BusError() = default;
    ~BusError() { sd_bus_error_free(&error_); }
    BusError(const BusError&) = delete;
    BusError& operator=(const BusError&) = delete;
    sd_bus_error* get() { return &error_; }
    bool has_name(const char* name) const { return sd_bus_error_has_name(&error_, name) != 0; }
    std::string name() const { return error_.name ? error_.name : ""; }
    std::string message() const { return error_.message ? error_.message : ""; }

private:
    sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) {
    g_interrupted = 1;
}

// --- options ---------------------------------------------------------------------------------

struct Options {
    std::string bus = "system";
    bool json = false;
    std::optional<double> rate_seconds; // show stats -r
    std::optional<unsigned long> count; // show stats --count
    std::vector<std::string> words;     // command and its operands
};

struct UsageError {
    std::string message;
};

std::optional<double> parse_seconds(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !(v >= 0.01) || v > 86400.0) {
        return std::nullopt;
    }
    return v;
}

std::optional<unsigned long> parse_unsigned(const std::string& text, unsigned long max) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 10) {
        return std::nullopt;
    }
    const unsigned long v = std::stoul(text);
    if (v > max) {
        return std::nullopt;
    }
    return v;
}

// Options may appear anywhere; everything else is the command.
std::variant<Options, UsageError, int> parse_args(const std::vector<std::string>& args) {
    Options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-h" || a == "--help") {
            std::cout << k_usage;
            return k_exit_ok;
        }
        if (a == "--version") {
            std::cout << "gazellectl " << GAZELLE_VERSION << "\n";
            return k_exit_ok;
        }
        if (a == "--json") {
            o.json = true;
        } else if (a == "--bus" || a.starts_with("--bus=")) {
            if (a == "--bus") {
                if (i + 1 >= args.size()) {
                    return UsageError{"--bus needs a value: system, session or a D-Bus address"};
                }
                o.bus = args[++i];
            } else {
                o.bus = a.substr(6);
            }
            if (o.bus.empty()) {
                return UsageError{"--bus needs a value: system, session or a D-Bus address"};
            }
        } else if (a == "-r" || a == "--rate") {
            o.rate_seconds = 1.0;
            if (i + 1 < args.size() && !args[i + 1].starts_with("-")) {
                if (auto v = parse_seconds(args[i + 1])) {
                    o.rate_seconds = *v;
                    ++i;
                }
            }
        } else if (a == "--count" || a.starts_with("--count=")) {
            std::string value;
            if (a == "--count") {
                if (i + 1 >= args.size()) {
                    return UsageError{"--count needs a number of samples"};
                }
                value = args[++i];
            } else {
                value = a.substr(8);
            }
            const auto v = parse_unsigned(value, 1000000000ul);
            if (!v || *v == 0) {
                return UsageError{"--count needs a number of samples (1 or more), not '" + value + "'"};
            }
            o.count = *v;
        } else if (a.size() > 1 && a[0] == '-' && !std::isdigit(static_cast<unsigned char>(a[1]))) {
            return UsageError{"unknown option '" + a + "'"};
        } else {
            o.words.push_back(a);
        }
    }
    return o;
}

// --- output helpers ----------------------------------------------------------------------------

std::string human_bytes(std::uint64_t bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        return std::to_string(bytes) + " B";
    }
    double v = static_cast<double>(bytes);
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < std::size(units)) {
        v /= 1024.0;
        ++u;
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.1f %s", v, units[u]);
    return text;
}

std::string percent(double part, double whole) {
    char text[16];
    std::snprintf(text, sizeof text, "%.1f%%", whole > 0 ? 100.0 * part / whole : 0.0);
    return text;
}

std::string bar(double part, double whole) {
    const double share = whole > 0 ? std::clamp(part / whole, 0.0, 1.0) : 0.0;
    auto filled = static_cast<unsigned>(std::lround(share * k_bar_width));
    if (part > 0 && filled == 0) {
        filled = 1; // anything in use shows
    }
    return "[" + std::string(filled, '#') + std::string(k_bar_width - filled, '.') + "]";
}

std::string rate(double value) {
    if (value == 0) {
        return "0";
    }
    char text[32];
    std::snprintf(text, sizeof text, value < 100 ? "%.1f" : "%.0f", value);
    return text;
}

std::string local_time(std::uint64_t usec_since_epoch) {
    const auto t = static_cast<std::time_t>(usec_since_epoch / 1000000u);
    std::tm tm{};
    localtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%F %T", &tm);
    return text;
}

std::string age(std::uint64_t usec_since_epoch) {
    const auto now = static_cast<std::uint64_t>(std::time(nullptr));
    const std::uint64_t then = usec_since_epoch / 1000000u;
    std::uint64_t s = now > then ? now - then : 0;
    char text[32];
    if (s < 60) {
        std::snprintf(text, sizeof text, "%llus", static_cast<unsigned long long>(s));
    } else if (s < 3600) {
        std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    } else if (s < 86400) {
        std::snprintf(text, sizeof text, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                      static_cast<unsigned long long>(s / 60 % 60));
    } else {
        std::snprintf(text, sizeof text, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s / 3600 % 24));
    }
    return text;
}

template <typename T>
std::string join(const std::vector<T>& items, const std::function<std::string(const T&)>& show,
                 const char* separator = ",") {
    std::string out;
    for (const T& item : items) {
        out += (out.empty() ? "" : separator) + show(item);
    }
    return out.empty() ? "-" : out;
}

std::string plural(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string slots_of_mask(std::uint64_t mask) {
    std::string out;
    for (unsigned s = 0; s < 64; ++s) {
        if ((mask >> s) & 1u) {
            out += (out.empty() ? "" : ",") + std::to_string(s);
        }
    }
    return out.empty() ? "-" : out;
}

// An aligned text table: columns separated by two spaces, numbers right-aligned.
class Table {
public:
    enum Align { left, right };
    struct Column {
        std::string header;
        Align align = left;
    };
    explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

    void add(std::vector<std::string> row) {
        row.resize(columns_.size());
        rows_.push_back(std::move(row));
    }
    // A row printed after a separator line (totals).
    void add_footer(std::vector<std::string> row) {
        row.resize(columns_.size());
        footer_ = std::move(row);
    }

    void print(std::ostream& out) const {
        std::vector<std::size_t> width(columns_.size());
        for (std::size_t c = 0; c < columns_.size(); ++c) {
            width[c] = columns_[c].header.size();
            for (const auto& row : rows_) {
                width[c] = std::max(width[c], row[c].size());
            }
            if (footer_) {
                width[c] = std::max(width[c], (*footer_)[c].size());
            }
        }
        const auto line = [&](const std::vector<std::string>& cells) {
            std::string text;
            for (std::size_t c = 0; c < cells.size(); ++c) {
                const std::size_t pad = width[c] - cells[c].size();
                const bool last = c + 1 == cells.size();
                if (columns_[c].align == right) {
                    text += std::string(pad, ' ') + cells[c];
                } else {
                    text += cells[c] + (last ? "" : std::string(pad, ' '));
                }
                if (!last) {
                    text += "  ";
                }
            }
            while (!text.empty() && text.back() == ' ') {
                text.pop_back();
            }
            out << text << "\n";
        };
        std::vector<std::string> headers;
        for (const auto& c : columns_) {
            headers.push_back(c.header);
        }
        line(headers);
        for (const auto& row : rows_) {
            line(row);
        }
        if (footer_) {
            std::size_t total = 0;
            for (std::size_t c = 0; c < width.size(); ++c) {
                total += width[c] + (c + 1 < width.size() ? 2 : 0);
            }
            out << std::string(total, '-') << "\n";
            line(*footer_);
        }
    }

private:
    std::vector<Column> columns_;
    std::vector<std::vector<std::string>> rows_;
    std::optional<std::vector<std::string>> footer_;
};

// A minimal streaming JSON writer (objects, arrays, strings, numbers, booleans).
class Json {
public:
    explicit Json(std::ostream& out) : out_(out) {}

    Json& begin_object() { return open('{'); }
    Json& end_object() { return close('}'); }
    Json& begin_array() { return open('['); }
    Json& end_array() { return close(']'); }
    Json& key(std::string_view k) {
        comma();
        string(k);
        out_ << ":";
        after_key_ = true;
        return *this;
    }
    Json& value(std::string_view s) {
        comma();
        string(s);
        return *this;
    }
    Json& value(const char* s) { return value(std::string_view(s)); }
    Json& value(bool b) {
        comma();
        out_ << (b ? "true" : "false");
        return *this;
    }
    Json& value(double d) {
        comma();
        char text[40];
        std::snprintf(text, sizeof text, "%.6g", std::isfinite(d) ? d : 0.0);
        out_ << text;
        return *this;
    }
    template <typename T>
    requires std::is_integral_v<T> Json& value(T n) {
        comma();
        out_ << +n;
        return *this;
    }
    template <typename T> Json& field(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }
    void newline() { out_ << "\n"; }

private:
    Json& open(char c) {
        comma();
        out_ << c;
        first_.push_back(true);
        return *this;
    }
    Json& close(char c) {
        out_ << c;
        first_.pop_back();
        return *this;
    }
    void comma() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_.empty()) {
            if (!first_.back()) {
                out_ << ",";
            }
            first_.back() = false;
        }
    }
    void string(std::string_view s) {
        out_ << '"';
        for (const char ch : s) {
            const auto c = static_cast<unsigned char>(ch);
            switch (ch) {
            case '"':
                out_ << "\\\"";
                break;
            case '\\':
                out_ << "\\\\";
                break;
            case '\n':
                out_ << "\\n";
                break;
            case '\t':
                out_ << "\\t";
                break;
            default:
                if (c < 0x20) {
                    char esc[8];
                    std::snprintf(esc, sizeof esc, "\\u%04x", c);
                    out_ << esc;
                } else {
                    out_ << ch;
                }
            }
        }
        out_ << '"';
    }

    std::ostream& out_;
    std::vector<bool> first_;
    bool after_key_ = false;
};

// --- reading replies ------------------------------------------------------------------------------

// Reads from a message, keeping the first error (a reply with an unexpected signature).
class Reader {
public:
    explicit Reader(sd_bus_message* m) : m_(m) {}

    template <typename... Args> bool read(const char* types, Args*... args) {
        if (r_ < 0) {
            return false;
        }
        const int r = sd_bus_message_read(m_, types, args...);
        if (r < 0) {
            r_ = r;
        }
        return r > 0;
    }
    std::string str() {
        const char* s = nullptr;
        return read("s", &s) && s ? std::string(s) : std::string();
    }
    template <typename T> T num(const char* type) {
        T v{};
        read(type, &v);
        return v;
    }
    // Enters a container; false at the end of the enclosing array (or on error).
    bool enter(char type, const char* contents) {
        if (r_ < 0) {
            return false;
        }
        const int r = sd_bus_message_enter_container(m_, type, contents);
        if (r < 0) {
            r_ = r;
        }
        return r > 0;
    }
    void exit() {
        if (r_ >= 0) {
            const int r = sd_bus_message_exit_container(m_);
            if (r < 0) {
                r_ = r;
            }
        }
    }
    std::vector<std::uint16_t> u16_array() {
        const void* data = nullptr;
        std::size_t size = 0;
        if (r_ >= 0) {
            const int r = sd_bus_message_read_array(m_, 'q', &data, &size);
            if (r < 0) {
                r_ = r;
                return {};
            }
        }
        std::vector<std::uint16_t> out(size / sizeof(std::uint16_t));
        if (!out.empty()) {
            std::memcpy(out.data(), data, out.size() * sizeof(std::uint16_t));
        }
        return out;
    }
    // Each element of an array of structs: enter the array, call `element` per struct.
    void each(const char* struct_contents, const std::function<void()>& element) {
        const std::string array_contents = "(" + std::string(struct_contents) + ")";
        if (!enter('a', array_contents.c_str())) {
            return;
        }
        while (enter('r', struct_contents)) {
            element();
            exit();
        }
        exit();
    }
    int result() const { return r_; }

private:
    sd_bus_message* m_;
    int r_ = 0;
};

struct QueueRef {
    std::uint16_t slot = 0;
    std::uint32_t epoch = 0;
};

struct App {
    std::uint32_t pid = 0;
    std::uint32_t uid = 0;
    std::string program;
    std::string port;
    std::vector<QueueRef> queues;
    std::vector<std::uint16_t> lcores;
    std::uint64_t attached_usec = 0;
};

struct Queue {
    std::uint16_t slot = 0;
    std::string port;
    std::uint16_t hw_queue = 0;
    std::string state;
    std::uint32_t pid = 0;
    std::uint32_t epoch = 0;
    std::uint16_t lcore = 0;
    std::uint64_t heartbeat = 0;
    bool parked = false;
};

struct Rule {
    std::string kind;
    std::string proto;
    std::string local_ip;
    std::uint16_t local_port = 0;
    std::string remote_ip;
    std::uint16_t remote_port = 0;
    std::uint16_t slot = 0;
    std::uint32_t epoch = 0;
    std::uint64_t listeners = 0;
    std::uint32_t pid = 0;
};

struct Connection {
    std::uint16_t slot = 0;
    std::string proto;
    std::string local_ip;
    std::uint16_t local_port = 0;
    std::string remote_ip;
    std::uint16_t remote_port = 0;
};

struct AppConnections {
    std::uint32_t pid = 0;
    std::string program;
    std::vector<Connection> connections;
};

// Field names and order of GetStats' queue struct after (slot, port, pid).
constexpr const char* k_counter_names[] = {"rx_packets",      "rx_bytes",          "tx_packets",      "tx_bytes",
                                           "forwarded_out",   "forwarded_in",      "arp_fanout",      "local",
                                           "drop_inbox_full", "drop_no_owner",     "drop_owner_gone", "drop_malformed",
                                           "drop_tx_full",    "drop_alloc_failed", "drop_table_full", "connections",
                                           "adopted_rx_packets", "adopted_rx_bytes", "adopted_queues",
                                           "l2_allocs",       "l2_alloc_failed",   "l2_shed"};
constexpr std::size_t k_counters = std::size(k_counter_names);
constexpr std::size_t k_first_drop = 8;
constexpr std::size_t k_drop_counters = 7;
// Gauges (not rates): the connection count and the adoption leases held (ports without a RETA).
constexpr std::size_t k_connections = 15;
constexpr std::size_t k_adopted_rx_packets = 16;
constexpr std::size_t k_adopted_queues = 18;
// The L2 pool's counters (appended to the D-Bus struct after the adoption ones).
constexpr std::size_t k_first_l2 = 19;
constexpr std::size_t k_l2_counters = 3;

struct QueueStats {
    std::uint16_t slot = 0;
    std::string port;
    std::uint32_t pid = 0;
    std::uint64_t c[k_counters] = {};

    std::uint64_t drops() const {
        std::uint64_t sum = 0;
        for (std::size_t i = k_first_drop; i < k_first_drop + k_drop_counters; ++i) {
            sum += c[i];
        }
        return sum;
    }
};

constexpr const char* k_flow_counter_names[] = {"adds",
                                                "add_existing",
                                                "add_failed_exists",
                                                "add_failed_full",
                                                "deletes",
                                                "delete_failed_busy",
                                                "freed",
                                                "listener_joins",
                                                "listener_leaves",
                                                "listener_creates",
                                                "listener_reopened",
                                                "listener_join_raced",
                                                "pending_free"};
constexpr std::size_t k_flow_counters = std::size(k_flow_counter_names);

struct Stats {
    std::uint64_t timestamp_usec = 0;
    std::vector<QueueStats> queues;
    std::uint64_t flow[k_flow_counters] = {};
    std::uint32_t flow_keys = 0;
    std::uint32_t flow_capacity = 0;
};

struct Pool {
    std::string name;
    std::uint16_t slot = 0;
    std::string port;
    std::uint32_t size = 0;
    std::uint32_t available = 0;
    std::uint32_t in_use = 0;
    std::uint32_t element_size = 0;
    std::uint64_t bytes = 0;
};

struct Memp {
    std::uint16_t slot = 0;
    std::uint32_t pid = 0;
    std::string memzone;
    std::string label;
    std::uint64_t bytes = 0;
};

struct Memzone {
    std::string name;
    std::uint64_t bytes = 0;
};

struct Memory {
    std::vector<Pool> pools;
    std::vector<Memp> memps;
    std::vector<Memzone> memzones;
    std::uint64_t page_size = 0;
    std::uint64_t mapped = 0;
    std::uint64_t heap_allocated = 0;
    std::uint64_t heap_free = 0;
    std::uint64_t system_total = 0;
    std::uint64_t system_free = 0;
};

struct Report {
    std::uint16_t slot = 0;
    std::uint32_t pid = 0;
    std::uint32_t epoch = 0;
    int was_owned = 0;
    int grace_timed_out = 0;
    std::uint32_t rules = 0;
    std::uint32_t listeners = 0;
    std::uint32_t memp_pools = 0;
    std::uint64_t memp_bytes = 0;
    std::uint32_t inbox_drained = 0;
    std::uint32_t rx_drained = 0;
    std::uint32_t salvaged = 0;
    std::uint32_t cache_flushed = 0;
    std::uint32_t mbufs_returned = 0;
    double usec = 0;
};

std::vector<App> read_apps(Reader& r) {
    std::vector<App> apps;
    r.each("uussa(qu)aqt", [&] {
        App a;
        r.read("uu", &a.pid, &a.uid);
        a.program = r.str();
        a.port = r.str();
        if (r.enter('a', "(qu)")) {
            QueueRef q;
            while (r.read("(qu)", &q.slot, &q.epoch)) {
                a.queues.push_back(q);
            }
            r.exit();
        }
        a.lcores = r.u16_array();
        a.attached_usec = r.num<std::uint64_t>("t");
        apps.push_back(std::move(a));
    });
    return apps;
}

std::vector<Queue> read_queues(Reader& r) {
    std::vector<Queue> queues;
    r.each("qsqsuuqtb", [&] {
        Queue q;
        q.slot = r.num<std::uint16_t>("q");
        q.port = r.str();
        q.hw_queue = r.num<std::uint16_t>("q");
        q.state = r.str();
        int parked = 0;
        r.read("uuqtb", &q.pid, &q.epoch, &q.lcore, &q.heartbeat, &parked);
        q.parked = parked != 0;
        queues.push_back(std::move(q));
    });
    return queues;
}

std::vector<Rule> read_rules(Reader& r) {
    std::vector<Rule> rules;
    r.each("sssqsqqutu", [&] {
        Rule x;
        x.kind = r.str();
        x.proto = r.str();
        x.local_ip = r.str();
        x.local_port = r.num<std::uint16_t>("q");
        x.remote_ip = r.str();
        x.remote_port = r.num<std::uint16_t>("q");
        r.read("qutu", &x.slot, &x.epoch, &x.listeners, &x.pid);
        rules.push_back(std::move(x));
    });
    return rules;
}

std::vector<AppConnections> read_connections(Reader& r) {
    std::vector<AppConnections> out;
    r.each("usa(qssqsq)", [&] {
        AppConnections a;
        a.pid = r.num<std::uint32_t>("u");
        a.program = r.str();
        r.each("qssqsq", [&] {
            Connection c;
            c.slot = r.num<std::uint16_t>("q");
            c.proto = r.str();
            c.local_ip = r.str();
            c.local_port = r.num<std::uint16_t>("q");
            c.remote_ip = r.str();
            c.remote_port = r.num<std::uint16_t>("q");
            a.connections.push_back(std::move(c));
        });
        out.push_back(std::move(a));
    });
    return out;
}

Stats read_stats(Reader& r) {
    Stats s;
    s.timestamp_usec = r.num<std::uint64_t>("t");
    r.each("qsutttttttttttttttttttttt", [&] {
        QueueStats q;
        q.slot = r.num<std::uint16_t>("q");
        q.port = r.str();
        q.pid = r.num<std::uint32_t>("u");
        for (auto& counter : q.c) {
            counter = r.num<std::uint64_t>("t");
        }
        s.queues.push_back(std::move(q));
    });
    if (r.enter('r', "tttttttttttttuu")) {
        for (auto& counter : s.flow) {
            counter = r.num<std::uint64_t>("t");
        }
        r.read("uu", &s.flow_keys, &s.flow_capacity);
        r.exit();
    }
    return s;
}

Memory read_memory(Reader& r) {
    Memory m;
    r.each("sqsuuuut", [&] {
        Pool p;
        p.name = r.str();
        p.slot = r.num<std::uint16_t>("q");
        p.port = r.str();
        r.read("uuuut", &p.size, &p.available, &p.in_use, &p.element_size, &p.bytes);
        m.pools.push_back(std::move(p));
    });
    r.each("qusst", [&] {
        Memp p;
        r.read("qu", &p.slot, &p.pid);
        p.memzone = r.str();
        p.label = r.str();
        p.bytes = r.num<std::uint64_t>("t");
        m.memps.push_back(std::move(p));
    });
    r.each("st", [&] {
        Memzone z;
        z.name = r.str();
        z.bytes = r.num<std::uint64_t>("t");
        m.memzones.push_back(std::move(z));
    });
    r.read("(tttttt)", &m.page_size, &m.mapped, &m.heap_allocated, &m.heap_free, &m.system_total, &m.system_free);
    return m;
}

std::vector<Report> read_reports(Reader& r) {
    std::vector<Report> out;
    if (!r.enter('a', "(quubbuuutuuuuud)")) {
        return out;
    }
    Report x;
    while (r.read("(quubbuuutuuuuud)", &x.slot, &x.pid, &x.epoch, &x.was_owned, &x.grace_timed_out, &x.rules,
                  &x.listeners, &x.memp_pools, &x.memp_bytes, &x.inbox_drained, &x.rx_drained, &x.salvaged,
                  &x.cache_flushed, &x.mbufs_returned, &x.usec)) {
        out.push_back(x);
    }
    r.exit();
    return out;
}

// --- the client ------------------------------------------------------------------------------

class Client {
public:
    explicit Client(const Options& options) : options_(options) {}

    std::string where() const {
        if (options_.bus == "system" || options_.bus == "session") {
            return "the " + options_.bus + " bus";
        }
        return "the bus at " + options_.bus;
    }

    void not_running(const std::string& detail = "") const {
        std::cerr << "gazellectl: cannot reach gazelle-mgr on " << where() << " (" << k_bus_name
                  << "): is it running?\n";
        if (!detail.empty()) {
            std::cerr << "gazellectl: " << detail << "\n";
        }
    }

    // 0, or the exit status after printing why not.
    int connect() {
        sd_bus* raw = nullptr;
        int r = 0;
        if (options_.bus == "system") {
            r = sd_bus_open_system(&raw);
        } else if (options_.bus == "session") {
            r = sd_bus_open_user(&raw);
        } else {
            r = sd_bus_new(&raw);
            BusPtr bus(raw);
            raw = nullptr;
            if (r >= 0) {
                r = sd_bus_set_address(bus.get(), options_.bus.c_str());
            }
            if (r >= 0) {
                r = sd_bus_set_bus_client(bus.get(), 1);
            }
            if (r >= 0) {
                r = sd_bus_start(bus.get());
            }
            if (r >= 0) {
                raw = bus.release();
            }
        }
        if (r < 0) {
            not_running("cannot connect to " + where() + ": " + std::strerror(-r));
            return k_exit_failure;
        }
        bus_.reset(raw);
        return k_exit_ok;
    }

    // Calls `member`; on failure prints why and returns the exit status in `status`.
    template <typename... Args>
    MessagePtr call(const char* member, int& status, const char* types = nullptr, Args... args) {
        BusError error;
        sd_bus_message* reply = nullptr;
        const int r = sd_bus_call_method(bus_.get(), k_bus_name, k_bus_path, k_bus_interface, member, error.get(),
                                         &reply, types, args...);
        if (r >= 0) {
            status = k_exit_ok;
            return MessagePtr(reply);
        }
        status = explain(member, r, error);
        return nullptr;
    }

    // The same for a property (Get on org.freedesktop.DBus.Properties).
    MessagePtr property(const char* name, const char* type, int& status) {
        BusError error;
        sd_bus_message* reply = nullptr;
        const int r =
            sd_bus_get_property(bus_.get(), k_bus_name, k_bus_path, k_bus_interface, name, error.get(), &reply, type);
        if (r >= 0) {
            status = k_exit_ok;
            return MessagePtr(reply);
        }
        status = explain(name, r, error);
        return nullptr;
    }

private:
    int explain(const char* member, int r, const BusError& error) const {
        if (error.has_name(SD_BUS_ERROR_SERVICE_UNKNOWN) || error.has_name(SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
            error.has_name(SD_BUS_ERROR_DISCONNECTED) || r == -ECONNRESET || r == -ENOTCONN) {
            not_running();
            return k_exit_failure;
        }
        if (error.has_name(SD_BUS_ERROR_NO_REPLY) || r == -ETIMEDOUT) {
            std::cerr << "gazellectl: gazelle-mgr did not answer " << member << " in time (" << error.message()
                      << ")\n";
            return k_exit_failure;
        }
        if (error.has_name(SD_BUS_ERROR_ACCESS_DENIED)) {
            if (std::string_view(member) == "Reclaim") {
                std::cerr << "gazellectl: access denied: Reclaim needs root (run gazellectl reclaim as root)\n"
                          << "gazellectl: " << error.message() << "\n";
            } else {
                std::cerr << "gazellectl: access denied calling " << member << ": " << error.message()
                          << "\n(is the D-Bus policy org.openeuler.Gazelle1.conf installed?)\n";
            }
            return k_exit_failure;
        }
        if (error.has_name(k_error_no_such_app)) {
            std::string text = error.message();
            if (!text.empty()) {
                text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
            }
            std::cerr << "gazellectl: " << text << " with gazelle-mgr ('gazellectl show apps' lists them)\n";
            return k_exit_failure;
        }
        if (error.has_name(SD_BUS_ERROR_INVALID_ARGS)) {
            std::cerr << "gazellectl: " << member << " rejected the arguments: " << error.message() << "\n";
            return k_exit_usage;
        }
        if (error.has_name(SD_BUS_ERROR_UNKNOWN_METHOD) || error.has_name(SD_BUS_ERROR_UNKNOWN_OBJECT) ||
            error.has_name(SD_BUS_ERROR_UNKNOWN_INTERFACE) || error.has_name(SD_BUS_ERROR_UNKNOWN_PROPERTY)) {
            std::cerr << "gazellectl: gazelle-mgr does not provide " << member
                      << " (is it another version?): " << error.message() << "\n";
            return k_exit_failure;
        }
        std::cerr << "gazellectl: " << member
                  << " failed: " << (error.message().empty() ? std::strerror(-r) : error.message())
                  << (error.name().empty() ? "" : " (" + error.name() + ")") << "\n";
        return k_exit_failure;
    }

    const Options& options_;
    BusPtr bus_;
};

int bad_reply(const char* member, const Reader& r) {
    std::cerr << "gazellectl: unexpected reply to " << member << ": " << std::strerror(-r.result())
              << " (gazelle-mgr of another version?)\n";
    return k_exit_failure;
}

// --- show apps ---------------------------------------------------------------------------------

int show_apps(Client& client, const Options& o) {
    int status = 0;
    auto reply = client.call("ListApps", status);
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    const auto apps = read_apps(r);
    if (r.result() < 0) {
        return bad_reply("ListApps", r);
    }
    if (o.json) {
        Json j(std::cout);
        j.begin_object().key("apps").begin_array();
        for (const App& a : apps) {
            j.begin_object().field("pid", a.pid).field("uid", a.uid).field("program", a.program).field("port", a.port);
            j.key("queues").begin_array();
            for (const QueueRef& q : a.queues) {
                j.begin_object().field("slot", q.slot).field("epoch", q.epoch).end_object();
            }
            j.end_array().key("lcores").begin_array();
            for (const auto l : a.lcores) {
                j.value(l);
            }
            j.end_array().field("attached_at_usec", a.attached_usec).end_object();
        }
        j.end_array().end_object().newline();
        return k_exit_ok;
    }
    Table t({{"PID", Table::right},
             {"UID", Table::right},
             {"PROGRAM"},
             {"PORT"},
             {"QUEUES (SLOT:EPOCH)"},
             {"LCORES"},
             {"ATTACHED"},
             {"AGE", Table::right}});
    for (const App& a : apps) {
        t.add({std::to_string(a.pid), std::to_string(a.uid), a.program.empty() ? "-" : a.program, a.port,
               join<QueueRef>(a.queues,
                              [](const QueueRef& q) { return std::to_string(q.slot) + ":" + std::to_string(q.epoch); }),
               join<std::uint16_t>(a.lcores, [](const std::uint16_t& l) { return std::to_string(l); }),
               local_time(a.attached_usec), age(a.attached_usec)});
    }
    t.print(std::cout);
    std::cout << plural(apps.size(), "app", "apps") << "\n";
    return k_exit_ok;
}

// --- show queues -----------------------------------------------------------------------------------

std::map<std::uint32_t, std::string> program_names(Client& client) {
    std::map<std::uint32_t, std::string> names;
    int status = 0;
    auto reply = client.call("ListApps", status);
    if (reply) {
        Reader r(reply.get());
        for (const App& a : read_apps(r)) {
            names[a.pid] = a.program;
        }
    }
    return names;
}

int show_queues(Client& client, const Options& o) {
    int status = 0;
    auto reply = client.call("ListQueues", status);
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    const auto queues = read_queues(r);
    if (r.result() < 0) {
        return bad_reply("ListQueues", r);
    }
    if (o.json) {
        Json j(std::cout);
        j.begin_object().key("queues").begin_array();
        for (const Queue& q : queues) {
            j.begin_object()
                .field("slot", q.slot)
                .field("port", q.port)
                .field("hw_queue", q.hw_queue)
                .field("state", q.state)
                .field("owner_pid", q.pid)
                .field("epoch", q.epoch)
                .field("lcore", q.lcore)
                .field("heartbeat", q.heartbeat)
                .field("parked", q.parked)
                .end_object();
        }
        j.end_array().end_object().newline();
        return k_exit_ok;
    }
    const auto names = program_names(client);
    Table t({{"SLOT", Table::right},
             {"PORT"},
             {"HWQ", Table::right},
             {"STATE"},
             {"PID", Table::right},
             {"PROGRAM"},
             {"EPOCH", Table::right},
             {"LCORE", Table::right},
             {"HEARTBEAT", Table::right},
             {"PARKED"}});
    unsigned owned = 0;
    for (const Queue& q : queues) {
        const bool free = q.state == "free";
        owned += q.state == "owned" ? 1u : 0u;
        const auto name = names.find(q.pid);
        t.add({std::to_string(q.slot), q.port, std::to_string(q.hw_queue), q.state, free ? "-" : std::to_string(q.pid),
               free ? "-" : (name != names.end() && !name->second.empty() ? name->second : "?"),
               std::to_string(q.epoch), free ? "-" : std::to_string(q.lcore), free ? "-" : std::to_string(q.heartbeat),
               free ? "-" : (q.parked ? "yes" : "no")});
    }
    t.print(std::cout);
    std::cout << plural(queues.size(), "queue", "queues") << ", " << owned << " owned\n";
    return k_exit_ok;
}

// --- show rules / conns --------------------------------------------------------------------------

std::string endpoint(const std::string& ip, std::uint16_t port) {
    return ip + ":" + std::to_string(port);
}

int show_rules(Client& client, const Options& o, const std::string& filter) {
    int status = 0;
    auto reply = client.call("ListRules", status, "s", filter.c_str());
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    auto rules = read_rules(r);
    if (r.result() < 0) {
        return bad_reply("ListRules", r);
    }
    // The manager lists rules in hash-table order: connections by owner and port, then listeners.
    std::stable_sort(rules.begin(), rules.end(), [](const Rule& a, const Rule& b) {
        const auto key = [](const Rule& x) {
            return std::tuple(x.kind != "connection", x.slot, x.local_port, x.local_ip, x.remote_port, x.remote_ip);
        };
        return key(a) < key(b);
    });
    if (o.json) {
        Json j(std::cout);
        j.begin_object().field("filter", filter).key("rules").begin_array();
        for (const Rule& x : rules) {
            const bool listener = x.kind == "listener";
            j.begin_object()
                .field("kind", x.kind)
                .field("proto", x.proto)
                .field("local_ip", x.local_ip)
                .field("local_port", x.local_port)
                .field("remote_ip", x.remote_ip)
                .field("remote_port", x.remote_port);
            if (listener) {
                j.key("listener_slots").begin_array();
                for (unsigned s = 0; s < 64; ++s) {
                    if ((x.listeners >> s) & 1u) {
                        j.value(s);
                    }
                }
                j.end_array();
            } else {
                j.field("slot", x.slot).field("epoch", x.epoch).field("owner_pid", x.pid);
            }
            j.end_object();
        }
        j.end_array().end_object().newline();
        return k_exit_ok;
    }
    Table t({{"KIND"},
             {"PROTO"},
             {"LOCAL"},
             {"REMOTE"},
             {"SLOT", Table::right},
             {"EPOCH", Table::right},
             {"PID", Table::right},
             {"LISTENERS"}});
    unsigned connections = 0;
    for (const Rule& x : rules) {
        const bool listener = x.kind == "listener";
        connections += listener ? 0u : 1u;
        t.add(
            {x.kind, x.proto, endpoint(x.local_ip, x.local_port), listener ? "-" : endpoint(x.remote_ip, x.remote_port),
             listener || x.slot == k_no_queue ? "-" : std::to_string(x.slot), listener ? "-" : std::to_string(x.epoch),
             listener || x.pid == 0 ? "-" : std::to_string(x.pid), listener ? slots_of_mask(x.listeners) : "-"});
    }
    t.print(std::cout);
    std::cout << plural(rules.size(), "rule", "rules") << ": " << plural(connections, "connection", "connections")
              << ", " << plural(rules.size() - connections, "listener", "listeners")
              << (filter.empty() ? "" : " matching '" + filter + "'") << "\n";
    return k_exit_ok;
}

int show_conns(Client& client, const Options& o) {
    int status = 0;
    auto reply = client.call("ListConnections", status);
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    auto apps = read_connections(r);
    if (r.result() < 0) {
        return bad_reply("ListConnections", r);
    }
    for (AppConnections& a : apps) {
        std::stable_sort(a.connections.begin(), a.connections.end(), [](const Connection& x, const Connection& y) {
            return std::tuple(x.slot, x.local_port, x.local_ip, x.remote_port, x.remote_ip) <
                   std::tuple(y.slot, y.local_port, y.local_ip, y.remote_port, y.remote_ip);
        });
    }
    if (o.json) {
        Json j(std::cout);
        j.begin_object().key("apps").begin_array();
        for (const AppConnections& a : apps) {
            j.begin_object().field("pid", a.pid).field("program", a.program).key("connections").begin_array();
            for (const Connection& c : a.connections) {
                j.begin_object()
                    .field("slot", c.slot)
                    .field("proto", c.proto)
                    .field("local_ip", c.local_ip)
                    .field("local_port", c.local_port)
                    .field("remote_ip", c.remote_ip)
                    .field("remote_port", c.remote_port)
                    .end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().end_object().newline();
        return k_exit_ok;
    }
    Table t({{"PID", Table::right}, {"PROGRAM"}, {"SLOT", Table::right}, {"PROTO"}, {"LOCAL"}, {"REMOTE"}});
    std::size_t total = 0;
    for (const AppConnections& a : apps) {
        const std::string pid = a.pid == 0 ? "-" : std::to_string(a.pid);
        const std::string program = a.program.empty() ? (a.pid == 0 ? "(free queue)" : "?") : a.program;
        if (a.connections.empty()) {
            t.add({pid, program, "-", "-", "-", "-"});
        }
        for (const Connection& c : a.connections) {
            t.add({pid, program, std::to_string(c.slot), c.proto, endpoint(c.local_ip, c.local_port),
                   endpoint(c.remote_ip, c.remote_port)});
        }
        total += a.connections.size();
    }
    t.print(std::cout);
    std::cout << plural(total, "connection", "connections") << " of " << plural(apps.size(), "app", "apps") << "\n";
    return k_exit_ok;
}

// --- show stats ------------------------------------------------------------------------------------

std::optional<Stats> fetch_stats(Client& client, int& status) {
    auto reply = client.call("GetStats", status);
    if (!reply) {
        return std::nullopt;
    }
    Reader r(reply.get());
    Stats s = read_stats(r);
    if (r.result() < 0) {
        status = bad_reply("GetStats", r);
        return std::nullopt;
    }
    return s;
}

void json_stats(const Stats& s) {
    Json j(std::cout);
    j.begin_object().field("timestamp_usec", s.timestamp_usec).key("queues").begin_array();
    for (const QueueStats& q : s.queues) {
        j.begin_object().field("slot", q.slot).field("port", q.port).field("owner_pid", q.pid);
        for (std::size_t i = 0; i < k_counters; ++i) {
            j.field(k_counter_names[i], q.c[i]);
        }
        j.end_object();
    }
    j.end_array().key("flow_table").begin_object();
    for (std::size_t i = 0; i < k_flow_counters; ++i) {
        j.field(k_flow_counter_names[i], s.flow[i]);
    }
    j.field("keys", s.flow_keys).field("capacity", s.flow_capacity).end_object().end_object().newline();
}

void print_stats(const Stats& s) {
    Table traffic({{"SLOT", Table::right},
                   {"PORT"},
                   {"PID", Table::right},
                   {"RX-PKTS", Table::right},
                   {"RX-BYTES", Table::right},
                   {"TX-PKTS", Table::right},
                   {"TX-BYTES", Table::right},
                   {"FWD-OUT", Table::right},
                   {"FWD-IN", Table::right},
                   {"ARP-FANOUT", Table::right},
                   {"LOCAL", Table::right},
                   {"DROPS", Table::right},
                   {"CONNS", Table::right},
                   {"ADOPTED-RX", Table::right},
                   {"ADOPTED-Q", Table::right}});
    Table drops({{"SLOT", Table::right},
                 {"INBOX-FULL", Table::right},
                 {"NO-OWNER", Table::right},
                 {"OWNER-GONE", Table::right},
                 {"MALFORMED", Table::right},
                 {"TX-FULL", Table::right},
                 {"ALLOC-FAILED", Table::right},
                 {"TABLE-FULL", Table::right}});
    Table l2({{"SLOT", Table::right},
              {"L2-ALLOCS", Table::right},
              {"L2-FAILED", Table::right},
              {"SHED", Table::right}});
    for (const QueueStats& q : s.queues) {
        std::vector<std::string> row{std::to_string(q.slot), q.port, q.pid == 0 ? "-" : std::to_string(q.pid)};
        for (std::size_t i = 0; i < k_first_drop; ++i) {
            row.push_back(std::to_string(q.c[i]));
        }
        row.push_back(std::to_string(q.drops()));
        row.push_back(std::to_string(q.c[k_connections]));
        row.push_back(std::to_string(q.c[k_adopted_rx_packets]));
        row.push_back(std::to_string(q.c[k_adopted_queues]));
        traffic.add(row);
        std::vector<std::string> drop_row{std::to_string(q.slot)};
        for (std::size_t i = k_first_drop; i < k_first_drop + k_drop_counters; ++i) {
            drop_row.push_back(std::to_string(q.c[i]));
        }
        drops.add(drop_row);
        std::vector<std::string> l2_row{std::to_string(q.slot)};
        for (std::size_t i = k_first_l2; i < k_first_l2 + k_l2_counters; ++i) {
            l2_row.push_back(std::to_string(q.c[i]));
        }
        l2.add(l2_row);
    }
    traffic.print(std::cout);
    std::cout << "\nDrops by reason\n";
    drops.print(std::cout);
    std::cout << "\nL2 mbuf pool (used when a queue's own pool is below the low watermark)\n";
    l2.print(std::cout);
    std::cout << "\nFlow table: " << s.flow_keys << " keys of " << s.flow_capacity << " ("
              << percent(s.flow_keys, s.flow_capacity) << ")\n";
    Table flow({{"COUNTER"}, {"VALUE", Table::right}});
    for (std::size_t i = 0; i < k_flow_counters; ++i) {
        flow.add({k_flow_counter_names[i], std::to_string(s.flow[i])});
    }
    flow.print(std::cout);
}

double per_second(std::uint64_t now, std::uint64_t before, double seconds) {
    return now >= before && seconds > 0 ? static_cast<double>(now - before) / seconds : 0.0;
}

void print_rates(const Stats& now, const Stats& before, double seconds, bool json) {
    std::map<std::uint16_t, const QueueStats*> previous;
    for (const QueueStats& q : before.queues) {
        previous[q.slot] = &q;
    }
    if (json) {
        Json j(std::cout);
        j.begin_object().field("timestamp_usec", now.timestamp_usec).field("interval_seconds", seconds);
        j.key("queues").begin_array();
        for (const QueueStats& q : now.queues) {
            const auto it = previous.find(q.slot);
            const QueueStats zero{};
            const QueueStats& p = it != previous.end() ? *it->second : zero;
            j.begin_object().field("slot", q.slot).field("port", q.port).field("owner_pid", q.pid);
            for (std::size_t i = 0; i < k_counters; ++i) {
                if (i != k_connections && i != k_adopted_queues) {
                    j.field(std::string(k_counter_names[i]) + "_per_second", per_second(q.c[i], p.c[i], seconds));
                }
            }
            j.field("connections", q.c[k_connections]).field("adopted_queues", q.c[k_adopted_queues]).end_object();
        }
        j.end_array().end_object().newline();
        std::cout.flush();
        return;
    }
    char header[96];
    std::snprintf(header, sizeof header, "%s  rates over %.2f s\n",
                  local_time(static_cast<std::uint64_t>(std::time(nullptr)) * 1000000u).c_str(), seconds);
    std::cout << header;
    Table t({{"SLOT", Table::right},
             {"PORT"},
             {"PID", Table::right},
             {"RX-PKT/S", Table::right},
             {"RX-BYTE/S", Table::right},
             {"TX-PKT/S", Table::right},
             {"TX-BYTE/S", Table::right},
             {"FWD-OUT/S", Table::right},
             {"FWD-IN/S", Table::right},
             {"DROP/S", Table::right},
             {"CONNS", Table::right}});
    for (const QueueStats& q : now.queues) {
        const auto it = previous.find(q.slot);
        const QueueStats zero{};
        const QueueStats& p = it != previous.end() ? *it->second : zero;
        t.add({std::to_string(q.slot), q.port, q.pid == 0 ? "-" : std::to_string(q.pid),
               rate(per_second(q.c[0], p.c[0], seconds)), rate(per_second(q.c[1], p.c[1], seconds)),
               rate(per_second(q.c[2], p.c[2], seconds)), rate(per_second(q.c[3], p.c[3], seconds)),
               rate(per_second(q.c[4], p.c[4], seconds)), rate(per_second(q.c[5], p.c[5], seconds)),
               rate(per_second(q.drops(), p.drops(), seconds)), std::to_string(q.c[k_connections])});
    }
    t.print(std::cout);
    std::cout << "\n";
    std::cout.flush();
}

// Sleeps `seconds`; false when interrupted by SIGINT/SIGTERM.
bool sleep_interruptible(double seconds) {
    timespec left{};
    left.tv_sec = static_cast<time_t>(seconds);
    left.tv_nsec = static_cast<long>((seconds - static_cast<double>(left.tv_sec)) * 1e9);
    while (!g_interrupted && nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    return !g_interrupted;
}

int show_stats(Client& client, const Options& o) {
    int status = 0;
    auto first = fetch_stats(client, status);
    if (!first) {
        return status;
    }
    if (!o.rate_seconds) {
        if (o.json) {
            json_stats(*first);
        } else {
            print_stats(*first);
        }
        return k_exit_ok;
    }
    struct sigaction sa {};
    sa.sa_handler = on_interrupt; // no SA_RESTART: nanosleep returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    Stats before = std::move(*first);
    timespec t0{};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned long sample = 0; !o.count || sample < *o.count; ++sample) {
        if (!sleep_interruptible(*o.rate_seconds)) {
            break;
        }
        auto now = fetch_stats(client, status);
        if (!now) {
            return status;
        }
        timespec t1{};
        clock_gettime(CLOCK_MONOTONIC, &t1);
        // The manager's own timestamps give the exact interval between the two readings.
        double seconds = static_cast<double>(now->timestamp_usec - before.timestamp_usec) / 1e6;
        if (now->timestamp_usec <= before.timestamp_usec) {
            seconds = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e9;
        }
        print_rates(*now, before, seconds, o.json);
        before = std::move(*now);
        t0 = t1;
    }
    return k_exit_ok;
}

// --- show memory -------------------------------------------------------------------------------------

int show_memory(Client& client, const Options& o) {
    int status = 0;
    auto reply = client.call("GetMemory", status);
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    const Memory m = read_memory(r);
    if (r.result() < 0) {
        return bad_reply("GetMemory", r);
    }
    std::uint64_t total = 0;
    std::uint64_t in_use = 0;
    std::uint64_t pool_bytes = 0;
    for (const Pool& p : m.pools) {
        total += p.size;
        in_use += p.in_use;
        pool_bytes += p.bytes;
    }
    std::uint64_t memp_bytes = 0;
    for (const Memp& p : m.memps) {
        memp_bytes += p.bytes;
    }
    std::uint64_t zone_bytes = 0;
    for (const Memzone& z : m.memzones) {
        zone_bytes += z.bytes;
    }
    const std::uint64_t pages = m.page_size ? (m.mapped + m.page_size - 1) / m.page_size : 0;
    if (o.json) {
        Json j(std::cout);
        j.begin_object().key("pools").begin_array();
        for (const Pool& p : m.pools) {
            j.begin_object()
                .field("name", p.name)
                .field("slot", p.slot)
                .field("port", p.port)
                .field("size", p.size)
                .field("available", p.available)
                .field("in_use", p.in_use)
                .field("element_size", p.element_size)
                .field("bytes", p.bytes)
                .end_object();
        }
        j.end_array().key("memp_pools").begin_array();
        for (const Memp& p : m.memps) {
            j.begin_object()
                .field("slot", p.slot)
                .field("owner_pid", p.pid)
                .field("memzone", p.memzone)
                .field("label", p.label)
                .field("bytes", p.bytes)
                .end_object();
        }
        j.end_array().key("memzones").begin_array();
        for (const Memzone& z : m.memzones) {
            j.begin_object().field("name", z.name).field("bytes", z.bytes).end_object();
        }
        j.end_array().key("hugepages").begin_object();
        j.field("page_size", m.page_size)
            .field("mapped", m.mapped)
            .field("mapped_pages", pages)
            .field("heap_allocated", m.heap_allocated)
            .field("heap_free", m.heap_free)
            .field("system_total", m.system_total)
            .field("system_free", m.system_free)
            .end_object();
        j.key("totals").begin_object();
        j.field("mbufs", total)
            .field("mbufs_in_use", in_use)
            .field("mbufs_free", total - std::min(total, in_use))
            .field("pool_bytes", pool_bytes)
            .field("memp_bytes", memp_bytes)
            .field("memzone_bytes", zone_bytes)
            .end_object()
            .end_object()
            .newline();
        return k_exit_ok;
    }

    std::cout << "Mbuf pools (one per queue, and the fabric's L2 pool: slot -)\n";
    Table pools({{"SLOT", Table::right},
                 {"PORT"},
                 {"POOL"},
                 {"TOTAL", Table::right},
                 {"IN USE", Table::right},
                 {"FREE", Table::right},
                 {"USAGE"},
                 {"USE%", Table::right},
                 {"MBUF", Table::right},
                 {"MEMORY", Table::right}});
    for (const Pool& p : m.pools) {
        pools.add({p.slot == k_no_queue ? "-" : std::to_string(p.slot), p.port.empty() ? "-" : p.port, p.name, std::to_string(p.size),
                   std::to_string(p.in_use), std::to_string(p.available), bar(p.in_use, p.size),
                   percent(p.in_use, p.size), std::to_string(p.element_size) + " B", human_bytes(p.bytes)});
    }
    pools.add_footer({"", "", "total", std::to_string(total), std::to_string(in_use),
                      std::to_string(total - std::min(total, in_use)),
                      bar(static_cast<double>(in_use), static_cast<double>(total)),
                      percent(static_cast<double>(in_use), static_cast<double>(total)), "", human_bytes(pool_bytes)});
    pools.print(std::cout);

    std::cout << "\nStack memory (memp pools registered to a queue, freed when its app goes)\n";
    Table memps({{"SLOT", Table::right}, {"PID", Table::right}, {"LABEL"}, {"MEMZONE"}, {"SIZE", Table::right}});
    for (const Memp& p : m.memps) {
        memps.add({std::to_string(p.slot), p.pid == 0 ? "-" : std::to_string(p.pid), p.label, p.memzone,
                   human_bytes(p.bytes)});
    }
    memps.add_footer({"", "", "total", std::to_string(m.memps.size()) + (m.memps.size() == 1 ? " pool" : " pools"),
                      human_bytes(memp_bytes)});
    memps.print(std::cout);

    std::cout << "\nShared memory (memzones: tables, inboxes, pool headers and objects)\n";
    Table zones({{"MEMZONE"}, {"SIZE", Table::right}});
    for (const Memzone& z : m.memzones) {
        zones.add({z.name, human_bytes(z.bytes)});
    }
    zones.add_footer({"total (" + std::to_string(m.memzones.size()) + " memzones)", human_bytes(zone_bytes)});
    zones.print(std::cout);

    std::cout << "\nHugepages\n";
    Table huge({{"WHAT"}, {"SIZE", Table::right}, {"PAGES", Table::right}, {"USAGE"}, {"USE%", Table::right}});
    const auto page_count = [&](std::uint64_t bytes) {
        return m.page_size ? std::to_string(bytes / m.page_size) : std::string("-");
    };
    huge.add({"page size", human_bytes(m.page_size), "", "", ""});
    huge.add({"mapped by the fabric", human_bytes(m.mapped), std::to_string(pages),
              bar(static_cast<double>(m.heap_allocated), static_cast<double>(m.mapped)),
              percent(static_cast<double>(m.heap_allocated), static_cast<double>(m.mapped))});
    huge.add({"of which allocated", human_bytes(m.heap_allocated), "", "", ""});
    huge.add({"of which free (heap)", human_bytes(m.heap_free), "", "", ""});
    huge.add({"system total", human_bytes(m.system_total), page_count(m.system_total),
              bar(static_cast<double>(m.system_total - std::min(m.system_total, m.system_free)),
                  static_cast<double>(m.system_total)),
              percent(static_cast<double>(m.system_total - std::min(m.system_total, m.system_free)),
                      static_cast<double>(m.system_total))});
    huge.add({"system free", human_bytes(m.system_free), page_count(m.system_free), "", ""});
    huge.print(std::cout);
    std::cout << "\nThe fabric needs " << pages << " hugepages of " << human_bytes(m.page_size) << " ("
              << human_bytes(m.mapped) << ") for what exists now; mbufs in use: " << in_use << " of " << total << " ("
              << percent(static_cast<double>(in_use), static_cast<double>(total)) << ").\n";
    return k_exit_ok;
}

// --- reclaim ---------------------------------------------------------------------------------------------

int reclaim(Client& client, const Options& o, const std::string& pid_text) {
    const auto pid = parse_unsigned(pid_text, 0x7fffffffu);
    if (!pid || *pid == 0) {
        std::cerr << "gazellectl: reclaim needs a process id, not '" << pid_text << "'\n";
        return k_exit_usage;
    }
    int status = 0;
    auto reply = client.call("Reclaim", status, "u", static_cast<std::uint32_t>(*pid));
    if (!reply) {
        return status;
    }
    Reader r(reply.get());
    const auto reports = read_reports(r);
    if (r.result() < 0) {
        return bad_reply("Reclaim", r);
    }
    if (o.json) {
        Json j(std::cout);
        j.begin_object().field("pid", *pid).key("reclaimed").begin_array();
        for (const Report& x : reports) {
            j.begin_object()
                .field("slot", x.slot)
                .field("pid", x.pid)
                .field("epoch", x.epoch)
                .field("was_owned", x.was_owned != 0)
                .field("grace_timed_out", x.grace_timed_out != 0)
                .field("rules", x.rules)
                .field("listeners", x.listeners)
                .field("memp_pools", x.memp_pools)
                .field("memp_bytes", x.memp_bytes)
                .field("inbox_drained", x.inbox_drained)
                .field("rx_drained", x.rx_drained)
                .field("salvaged", x.salvaged)
                .field("cache_flushed", x.cache_flushed)
                .field("mbufs_returned", x.mbufs_returned)
                .field("usec", x.usec)
                .end_object();
        }
        j.end_array().end_object().newline();
        return k_exit_ok;
    }
    std::cout << "Reclaimed pid " << *pid << ": " << reports.size() << (reports.size() == 1 ? " queue\n" : " queues\n");
    Table t({{"SLOT", Table::right},
             {"EPOCH", Table::right},
             {"RULES", Table::right},
             {"LISTENERS", Table::right},
             {"MEMP", Table::right},
             {"MBUFS", Table::right},
             {"CACHE", Table::right},
             {"INBOX", Table::right},
             {"RX", Table::right},
             {"SALVAGED", Table::right},
             {"TIME", Table::right},
             {"NOTE"}});
    for (const Report& x : reports) {
        char time[32];
        std::snprintf(time, sizeof time, "%.1f ms", x.usec / 1000.0);
        t.add({std::to_string(x.slot), std::to_string(x.epoch), std::to_string(x.rules), std::to_string(x.listeners),
               std::to_string(x.memp_pools) + " (" + human_bytes(x.memp_bytes) + ")", std::to_string(x.mbufs_returned),
               std::to_string(x.cache_flushed), std::to_string(x.inbox_drained), std::to_string(x.rx_drained),
               std::to_string(x.salvaged), time,
               !x.was_owned ? "not owned" : (x.grace_timed_out ? "grace wait timed out" : "-")});
    }
    t.print(std::cout);
    return k_exit_ok;
}

int usage_error(const std::string& why) {
    std::cerr << "gazellectl: " << why << "\nTry 'gazellectl --help'.\n";
    return k_exit_usage;
}

int run(const std::vector<std::string>& args) {
    auto parsed = parse_args(args);
    if (const int* done = std::get_if<int>(&parsed)) {
        return *done;
    }
    if (const auto* bad = std::get_if<UsageError>(&parsed)) {
        return usage_error(bad->message);
    }
    const Options& o = std::get<Options>(parsed);
    const auto& w = o.words;
    if (w.empty()) {
        return usage_error("no command given (show WHAT or reclaim PID)");
    }
    const bool is_stats = w.size() >= 2 && w[0] == "show" && w[1] == "stats";
    if ((o.rate_seconds || o.count) && !is_stats) {
        return usage_error("-r and --count apply to 'show stats' only");
    }
    if (o.count && !o.rate_seconds) {
        return usage_error("--count needs -r");
    }
    std::function<int(Client&)> action;
    if (w[0] == "show") {
        if (w.size() < 2) {
            return usage_error("show what? apps, queues, rules, conns, stats or memory");
        }
        const std::string& what = w[1];
        const bool takes_operands = what == "rules";
        if (!takes_operands && w.size() > 2) {
            return usage_error("unexpected argument '" + w[2] + "' after 'show " + what + "'");
        }
        if (what == "apps") {
            action = [&](Client& c) { return show_apps(c, o); };
        } else if (what == "queues") {
            action = [&](Client& c) { return show_queues(c, o); };
        } else if (what == "rules") {
            std::string filter;
            for (std::size_t i = 2; i < w.size(); ++i) {
                filter += (filter.empty() ? "" : " ") + w[i];
            }
            action = [&o, filter](Client& c) { return show_rules(c, o, filter); };
        } else if (what == "conns" || what == "connections") {
            action = [&](Client& c) { return show_conns(c, o); };
        } else if (what == "stats") {
            action = [&](Client& c) { return show_stats(c, o); };
        } else if (what == "memory" || what == "mem") {
            action = [&](Client& c) { return show_memory(c, o); };
        } else {
            return usage_error("unknown 'show " + what + "' (apps, queues, rules, conns, stats or memory)");
        }
    } else if (w[0] == "reclaim") {
        if (w.size() != 2) {
            return usage_error("reclaim needs exactly one PID");
        }
        if (const auto pid = parse_unsigned(w[1], 0x7fffffffu); !pid || *pid == 0) {
            return usage_error("reclaim needs a process id, not '" + w[1] + "'");
        }
        action = [&](Client& c) { return reclaim(c, o, w[1]); };
    } else {
        return usage_error("unknown command '" + w[0] + "' (show WHAT or reclaim PID)");
    }
    Client client(o);
    if (const int status = client.connect(); status != k_exit_ok) {
        return status;
    }
    return action(client);
}

} // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(true);
    const std::vector<std::string> args(argv + 1, argv + argc);
    return run(args);
}
