// SPDX-License-Identifier: BSD-3-Clause
#include "conf/lstack_config.h"

#include <sched.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstdlib>

#include "conf/cpu_list.h"
#include "conf/parse_internal.h"

namespace gazelle::conf {
namespace {

using internal::KeySpec;
using internal::Kind;
using internal::quote;
using internal::Site;
using internal::Value;

// Stack threads are fabric queues, and queue sets are 64-bit masks (fabric/types.h k_max_queues).
constexpr unsigned k_max_stacks = 64;
// CPU ids go into a cpu_set_t.
constexpr unsigned k_max_cpu_id = CPU_SETSIZE;

constexpr std::string_view k_removed = "removed in Gazelle; not supported";
constexpr std::string_view k_queues_by_mgr =
    "queues are assigned by gazelle-mgr: run each process with its own lstack.conf, the fabric steers every "
    "flow to the queue that owns it; remove the key";
constexpr std::string_view k_no_repin =
    "has no effect: application threads keep the affinity the application gives them";
constexpr std::string_view k_bonding =
    "bonding is not supported: a port is one NIC or virtual device (ports in gazelle-mgr.conf); remove the key";

std::string show_ipv4(const std::optional<Ipv4>& address) {
    return quote(address ? to_string(*address) : "");
}

void store_ipv4(std::optional<Ipv4>& field, const Value& value, const Site& site) {
    if (value.text.empty()) {
        field.reset();
        return;
    }
    auto parsed = parse_ipv4(value.text);
    if (!parsed) {
        site.error(parsed.error().message);
        return;
    }
    field = *parsed;
}

void store_mask(LstackConfig& config, const Value& value, const Site& site) {
    if (value.text.empty()) {
        config.mask_addr.reset();
        return;
    }
    auto parsed = parse_netmask(value.text);
    if (!parsed) {
        site.error(parsed.error().message);
        return;
    }
    config.mask_addr = *parsed;
}

void store_mac(LstackConfig& config, const Value& value, const Site& site) {
    if (value.text.empty()) {
        config.devices.reset();
        return;
    }
    auto parsed = parse_mac(value.text);
    if (!parsed) {
        site.error(parsed.error().message);
        return;
    }
    if (parsed->is_multicast() || parsed->is_zero()) {
        site.error("'" + value.text + "' is not a unicast MAC address, so no port can have it");
        return;
    }
    config.devices = *parsed;
}

void store_cpus(LstackConfig& config, const Value& value, const Site& site) {
    auto cpus = parse_cpu_list(value.text, k_max_cpu_id);
    if (!cpus) {
        site.error("invalid CPU list " + quote(value.text) + ": " + cpus.error().message);
        return;
    }
    if (cpus->size() > k_max_stacks) {
        site.error(std::to_string(cpus->size()) + " CPUs listed, but a process has at most " +
                   std::to_string(k_max_stacks) + " stack threads");
        return;
    }
    config.num_cpus = std::move(*cpus);
}

// --- dpdk_args -------------------------------------------------------------------------------

enum class EalUse {
    passed,    // handed to rte_eal_init() of the secondary as written
    no_effect, // the primary's setting wins in a secondary: warning
    rejected,  // gazelle-mgr decides, or not an upstream DPDK 22.11 option: error
};

struct EalOption {
    std::string_view name;
    bool takes_value; // the value is the next entry unless written as --opt=value (or -lVALUE)
    EalUse use;
    std::string_view reason;
};

constexpr std::string_view k_memory_reason =
    "memory belongs to gazelle-mgr, the DPDK primary (dpdk in gazelle-mgr.conf)";
constexpr std::string_view k_lcore_reason =
    "gazelle-mgr assigns lcore ids (dpdk.app_lcores in gazelle-mgr.conf) so that no two processes share one; pin "
    "stack threads with num_cpus";
constexpr std::string_view k_port_reason =
    "ports belong to gazelle-mgr (ports in gazelle-mgr.conf); choose yours with host_addr or devices";
constexpr std::string_view k_attach_reason =
    "a secondary can only attach to gazelle-mgr's shared hugepage memory, which this option turns off";

constexpr std::array k_eal_options{
    EalOption{"--log-level", true, EalUse::passed, {}},
    EalOption{"--syslog", true, EalUse::passed, {}},
    EalOption{"-v", false, EalUse::passed, {}},
    EalOption{"--telemetry", false, EalUse::passed, {}},
    EalOption{"--no-telemetry", false, EalUse::passed, {}},
    EalOption{"--trace", true, EalUse::passed, {}},
    EalOption{"--trace-dir", true, EalUse::passed, {}},
    EalOption{"--trace-bufsz", true, EalUse::passed, {}},
    EalOption{"--trace-mode", true, EalUse::passed, {}},
    EalOption{"--socket-mem", true, EalUse::no_effect, k_memory_reason},
    EalOption{"--socket-limit", true, EalUse::no_effect, k_memory_reason},
    EalOption{"-m", true, EalUse::no_effect, k_memory_reason},
    EalOption{"--legacy-mem", false, EalUse::no_effect, k_memory_reason},
    EalOption{"--single-file-segments", false, EalUse::no_effect, k_memory_reason},
    EalOption{"--match-allocations", false, EalUse::no_effect, k_memory_reason},
    EalOption{"--huge-unlink", false, EalUse::no_effect, k_memory_reason},
    EalOption{"-n", true, EalUse::no_effect, k_memory_reason},
    EalOption{"-r", true, EalUse::no_effect, k_memory_reason},
    EalOption{"--proc-type", true, EalUse::rejected,
              "gazelle-mgr assigns it: applications always attach as DPDK secondaries of gazelle-mgr"},
    EalOption{"--file-prefix", true, EalUse::rejected, "gazelle-mgr assigns it (dpdk.file_prefix in gazelle-mgr.conf)"},
    EalOption{"--huge-dir", true, EalUse::rejected, "gazelle-mgr assigns it (dpdk.huge_dir in gazelle-mgr.conf)"},
    EalOption{"--base-virtaddr", true, EalUse::rejected,
              "gazelle-mgr assigns it: a secondary must map shared memory where the primary did"},
    EalOption{"--iova-mode", true, EalUse::rejected,
              "gazelle-mgr assigns it: a secondary must use the primary's IOVA mode"},
    EalOption{"-l", true, EalUse::rejected, k_lcore_reason},
    EalOption{"--lcores", true, EalUse::rejected, k_lcore_reason},
    EalOption{"-c", true, EalUse::rejected, k_lcore_reason},
    EalOption{"--main-lcore", true, EalUse::rejected, k_lcore_reason},
    EalOption{"--master-lcore", true, EalUse::rejected, k_lcore_reason},
    EalOption{"-s", true, EalUse::rejected, k_lcore_reason},
    EalOption{"-S", true, EalUse::rejected, k_lcore_reason},
    EalOption{"-a", true, EalUse::rejected, k_port_reason},
    EalOption{"--allow", true, EalUse::rejected, k_port_reason},
    EalOption{"-w", true, EalUse::rejected, k_port_reason},
    EalOption{"--pci-whitelist", true, EalUse::rejected, k_port_reason},
    EalOption{"-b", true, EalUse::rejected, k_port_reason},
    EalOption{"--block", true, EalUse::rejected, k_port_reason},
    EalOption{"--pci-blacklist", true, EalUse::rejected, k_port_reason},
    EalOption{"--vdev", true, EalUse::rejected, k_port_reason},
    EalOption{"--no-pci", false, EalUse::rejected, k_port_reason},
    EalOption{"--in-memory", false, EalUse::rejected, k_attach_reason},
    EalOption{"--no-huge", false, EalUse::rejected, k_attach_reason},
    EalOption{"--no-shconf", false, EalUse::rejected, k_attach_reason},
    EalOption{"--map-perfect", false, EalUse::rejected,
              "an openEuler DPDK patch option for ltran; upstream DPDK 22.11 has no such option"},
};

std::string passed_options() {
    std::string out;
    for (const auto& option : k_eal_options) {
        if (option.use == EalUse::passed) {
            out += (out.empty() ? "" : ", ") + std::string(option.name);
        }
    }
    return out;
}

const EalOption* find_eal_option(std::string_view name) {
    for (const auto& option : k_eal_options) {
        if (option.name == name) {
            return &option;
        }
    }
    return nullptr;
}

// The whole array is checked, every entry, before anything is stored.
void store_dpdk_args(LstackConfig& config, const Value& value, const Site& site) {
    std::vector<std::string> passed;
    bool ok = true;
    const auto& args = value.list;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg.find(' ') != std::string::npos) {
            site.error("'" + arg +
                       "' contains a space: give an option and its value as two entries, or as "
                       "--option=value");
            ok = false;
            continue;
        }
        if (arg.size() < 2 || arg[0] != '-') {
            site.error("'" + arg +
                       "' is not an EAL option (each entry is an option, or the value of the option "
                       "before it)");
            ok = false;
            continue;
        }
        // "--opt=value", "-lVALUE" and "--opt value" (two entries) are all what getopt accepts.
        std::string name = arg;
        bool inline_value = false;
        if (arg[1] == '-') {
            if (const auto eq = arg.find('='); eq != std::string::npos) {
                name = arg.substr(0, eq);
                inline_value = true;
            }
        } else if (arg.size() > 2) {
            name = arg.substr(0, 2);
            inline_value = true;
        }
        const EalOption* option = find_eal_option(name);
        std::string shown = arg;
        if (option != nullptr && option->takes_value && !inline_value && i + 1 < args.size()) {
            shown += " " + args[++i];
        }
        if (option == nullptr) {
            std::string abbreviates;
            for (const auto& candidate : k_eal_options) {
                if (name.size() > 2 && name[1] == '-' && candidate.name.starts_with(name)) {
                    abbreviates = std::string(candidate.name);
                    break;
                }
            }
            if (!abbreviates.empty()) {
                site.error("'" + arg + "' abbreviates '" + abbreviates + "': write EAL options in full");
            } else {
                site.error("'" + arg + "' is not an EAL option lstack.conf may set (allowed: " + passed_options() +
                           ")");
            }
            ok = false;
            continue;
        }
        if (option->takes_value && !inline_value && shown == arg) {
            site.error("'" + arg + "' needs a value");
            ok = false;
            continue;
        }
        switch (option->use) {
        case EalUse::passed:
            passed.push_back(arg);
            if (shown != arg) {
                passed.push_back(args[i]);
            }
            break;
        case EalUse::no_effect:
            site.warn("'" + shown + "' has no effect: " + std::string(option->reason));
            break;
        case EalUse::rejected:
            site.error("'" + shown + "': " + std::string(option->reason) + "; remove it");
            ok = false;
            break;
        }
    }
    if (ok) {
        config.dpdk_args = std::move(passed);
    }
}

// --- the table -------------------------------------------------------------------------------

constexpr KeySpec<LstackConfig> k_keys[] = {
    // Which port.
    {.name = "host_addr",
     .kind = Kind::string,
     .value_text = "IPv4 address or \"\"",
     .doc = "Attach to the gazelle-mgr.conf port whose ports[].ipv4 is this address. \"\": the manager chooses "
            "(or devices does).",
     .example = "\"198.18.0.1\"",
     .from_gazelle = true,
     .store = [](LstackConfig& c, const Value& v, const Site& s) { store_ipv4(c.host_addr, v, s); },
     .show = [](const LstackConfig& c) { return show_ipv4(c.host_addr); }},
    {.name = "mask_addr",
     .kind = Kind::string,
     .value_text = "contiguous IPv4 netmask or \"\"",
     .doc = "Expected netmask of the port; gazelle-mgr refuses the attach when it differs from ports[].netmask.",
     .example = "\"255.255.255.0\"",
     .from_gazelle = true,
     .store = store_mask,
     .show = [](const LstackConfig& c) { return show_ipv4(c.mask_addr); }},
    {.name = "gateway_addr",
     .kind = Kind::string,
     .value_text = "IPv4 address or \"\"",
     .doc = "Expected gateway of the port; gazelle-mgr refuses the attach when it differs from ports[].gateway. "
            "Must be inside host_addr/mask_addr when those are set.",
     .example = "\"198.18.0.254\"",
     .from_gazelle = true,
     .store = [](LstackConfig& c, const Value& v, const Site& s) { store_ipv4(c.gateway_addr, v, s); },
     .show = [](const LstackConfig& c) { return show_ipv4(c.gateway_addr); }},
    {.name = "devices",
     .kind = Kind::string,
     .value_text = "unicast MAC address or \"\"",
     .doc = "Attach to the port whose ports[].mac is this address (with host_addr: both must name the same port).",
     .example = "\"02:00:00:00:00:01\"",
     .from_gazelle = true,
     .store = store_mac,
     .show = [](const LstackConfig& c) { return quote(c.devices ? to_string(*c.devices) : ""); }},
    // Threads.
    {.name = "stack_num",
     .kind = Kind::integer,
     .min = 0,
     .max = k_max_stacks,
     .doc = "Number of stack threads, i.e. fabric queues this process asks for. 0 or absent: the number of CPUs in "
            "num_cpus, else 1. (In Gazelle only 0 and 1 were valid, 1 meaning one NUMA-bound stack; 0 was its "
            "default and means the same here.)",
     .example = "2",
     .from_gazelle = true,
     .field = &LstackConfig::stack_num},
    {.name = "num_cpus",
     .kind = Kind::string,
     .value_text = "CPU list such as \"2,22\" or \"2-5\"",
     .doc = "CPU of each stack thread, in order. \"\": the manager picks from dpdk.app_cpus.",
     .example = "\"2,22\"",
     .from_gazelle = true,
     .store = store_cpus,
     .show = [](const LstackConfig& c) { return quote(format_cpu_list(c.num_cpus)); }},
    {.name = "stack_thread_mode",
     .kind = Kind::string,
     .choices = "run-to-wakeup|run-to-completion",
     .doc = "\"run-to-wakeup\": every stack has its own polling thread. \"run-to-completion\": the stack runs "
            "inside the application's socket calls, no stack threads.",
     .example = "\"run-to-completion\"",
     .from_gazelle = true,
     .store =
         [](LstackConfig& c, const Value& v, const Site&) {
             c.stack_thread_mode =
                 v.text == "run-to-completion" ? StackThreadMode::run_to_completion : StackThreadMode::run_to_wakeup;
         },
     .show = [](const LstackConfig& c) { return quote(to_string(c.stack_thread_mode)); }},
    {.name = "dpdk_args",
     .kind = Kind::string_list,
     .value_text = "EAL arguments",
     .doc = "Extra EAL arguments of this process. Passed: --log-level, --syslog, -v, --telemetry, --no-telemetry, "
            "--trace*. Memory options (--socket-mem, -m, --legacy-mem, ...) have no effect (warning). Arguments "
            "gazelle-mgr assigns (--proc-type, --file-prefix, --huge-dir, -l, --lcores, -a, --vdev, ...) and "
            "--map-perfect are errors.",
     .example = "[\"--log-level\", \"lib.eal:debug\"]",
     .from_gazelle = true,
     .store = store_dpdk_args,
     .show = [](const LstackConfig& c) { return internal::quote_list(c.dpdk_args); }},
    // Sizing and polling.
    {.name = "tcp_conn_count",
     .kind = Kind::integer,
     .min = 1,
     .max = 20000,
     .doc = "Maximum number of TCP connections (including listening sockets) of this process, over all its "
            "stacks. Beyond it connect() and listen() fail with ENOBUFS and connection requests from peers are "
            "reset (the peer's connect() fails with ECONNREFUSED); a connection's place is free again once its "
            "close completed.",
     .example = "20000",
     .from_gazelle = true,
     .field = &LstackConfig::tcp_conn_count},
    {.name = "mbuf_count_per_conn",
     .kind = Kind::integer,
     .min = 1,
     .max = 4096,
     .doc = "Buffer budget of one connection, in mbufs (send buffer plus receive queue).",
     .example = "34",
     .from_gazelle = true,
     .field = &LstackConfig::mbuf_count_per_conn},
    {.name = "nic_read_number",
     .kind = Kind::integer,
     .min = 1,
     .max = 64,
     .doc = "Receive burst size: packets taken from the queue per poll. (Gazelle's default was 128; Gazelle's "
            "documentation calls it nic_read_num, which is not a key.)",
     .example = "64",
     .from_gazelle = true,
     .field = &LstackConfig::nic_read_number},
    {.name = "rpc_number",
     .kind = Kind::integer,
     .min = 1,
     .max = 1024,
     .doc = "Requests from application threads a stack thread serves per poll loop (run-to-wakeup).",
     .example = "8",
     .from_gazelle = true,
     .field = &LstackConfig::rpc_number},
    {.name = "udp_enable",
     .kind = Kind::flag,
     .doc = "1: UDP sockets use the user-space stack. 0: they stay kernel sockets.",
     .example = "0",
     .from_gazelle = true,
     .field = &LstackConfig::udp_enable},
    // Idle back-off.
    {.name = "low_power_mode",
     .kind = Kind::flag,
     .doc = "1: after idle_spin_us without packets a stack thread sleeps briefly between polls.",
     .example = "1",
     .from_gazelle = true,
     .field = &LstackConfig::low_power_mode},
    {.name = "stack_interrupt",
     .kind = Kind::flag,
     .doc = "1: after idle_spin_us without packets a stack thread blocks on an event until the fabric (packet "
            "for its queue) or the application (request) wakes it. Needs run-to-wakeup.",
     .example = "1",
     .from_gazelle = true,
     .field = &LstackConfig::stack_interrupt},
    {.name = "idle_spin_us",
     .kind = Kind::integer,
     .min = 0,
     .max = 1000000,
     .doc = "New: microseconds of empty polls before low_power_mode or stack_interrupt backs off.",
     .example = "200",
     .field = &LstackConfig::idle_spin_us},
    // The manager.
    {.name = "mgr_socket",
     .kind = Kind::string,
     .value_text = "absolute path",
     .doc = "New: the unix socket of gazelle-mgr (its manager.socket).",
     .example = "\"/run/gazelle/test.sock\"",
     .store =
         [](LstackConfig& c, const Value& v, const Site& s) {
             if (v.text.empty() || v.text.front() != '/') {
                 s.error(quote(v.text) + " is not an absolute path");
                 return;
             }
             if (v.text.back() == '/') {
                 s.error(quote(v.text) + " names a directory, not a socket");
                 return;
             }
             c.mgr_socket = v.text;
         },
     .show = [](const LstackConfig& c) { return quote(c.mgr_socket); }},
    {.name = "unix_prefix",
     .kind = Kind::string,
     .value_text = "letters, digits, '.', '_', '-'",
     .doc = "Prepended to the file name of mgr_socket (\"a_\" gives /run/gazelle/a_mgr.sock), to pick one of "
            "several gazelle-mgr instances on a host.",
     .example = "\"test_\"",
     .from_gazelle = true,
     .store =
         [](LstackConfig& c, const Value& v, const Site& s) {
             const bool ok = std::all_of(v.text.begin(), v.text.end(), [](char ch) {
                 return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                        ch == '_' || ch == '-';
             });
             if (!ok) {
                 s.error(quote(v.text) + " may contain only letters, digits, '.', '_' and '-'");
                 return;
             }
             c.unix_prefix = v.text;
         },
     .show = [](const LstackConfig& c) { return quote(c.unix_prefix); }},
    {.name = "attach_failure",
     .kind = Kind::string,
     .choices = "kernel|error",
     .doc = "New: what sockets do when the process cannot attach to gazelle-mgr. \"kernel\": the whole process "
            "uses kernel sockets, with one message saying why. \"error\": socket calls fail with an errno.",
     .example = "\"error\"",
     .store = [](LstackConfig& c, const Value& v,
                 const Site&) { c.attach_failure = v.text == "error" ? AttachFailure::error : AttachFailure::kernel; },
     .show = [](const LstackConfig& c) { return quote(to_string(c.attach_failure)); }},
    {.name = "log_level",
     .kind = Kind::string,
     .choices = k_log_level_choices,
     .doc = "New: the most verbose level liblstack.so logs (to stderr).",
     .example = "\"debug\"",
     .store = [](LstackConfig& c, const Value& v,
                 const Site&) { c.log_level = parse_log_level(v.text).value_or(LogLevel::warning); },
     .show = [](const LstackConfig& c) { return quote(to_string(c.log_level)); }},
    {.name = "connect_port_policy",
     .kind = Kind::string,
     .choices = "own-queue|other-queue",
     .doc = "New, for benchmarks: how connect() picks the local port of an unbound socket. \"own-queue\": one "
            "whose replies the port's RSS steers onto the connecting stack's own queue (no forwarding). "
            "\"other-queue\": one whose replies land on another queue of the port (the next one the RETA points "
            "at), so the stack owning that queue forwards every reply: the mis-steering penalty of tools/bench. "
            "Needs a second owned queue (stack_num = 2); without one, own-queue.",
     .example = "\"other-queue\"",
     .store =
         [](LstackConfig& c, const Value& v, const Site&) {
             c.connect_port_policy =
                 v.text == "other-queue" ? ConnectPortPolicy::other_queue : ConnectPortPolicy::own_queue;
         },
     .show = [](const LstackConfig& c) { return quote(to_string(c.connect_port_policy)); }},

    // Accepted with a warning: no effect here.
    {.name = "nic_rxqueue_size",
     .kind = Kind::integer,
     .disposition = Disposition::warning,
     .reason = "has no effect: a port property, set by ports[].rx_ring_size in gazelle-mgr.conf",
     .doc = "NIC rx descriptors per queue.",
     .example = "4096",
     .from_gazelle = true},
    {.name = "nic_txqueue_size",
     .kind = Kind::integer,
     .disposition = Disposition::warning,
     .reason = "has no effect: a port property, set by ports[].tx_ring_size in gazelle-mgr.conf",
     .doc = "NIC tx descriptors per queue.",
     .example = "2048",
     .from_gazelle = true},
    {.name = "mem_cache_num",
     .kind = Kind::integer,
     .disposition = Disposition::warning,
     .reason = "has no effect: mbuf pools and their caches are created by gazelle-mgr (fabric.mbuf_cache_size)",
     .doc = "Per-lcore cache size of the mbuf pools.",
     .example = "64",
     .from_gazelle = true},
    {.name = "app_bind_numa",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .accepted = "0",
     .reason = k_no_repin,
     .doc = "Re-pin threads waiting in epoll/poll to the NUMA node of their stack.",
     .example = "1",
     .from_gazelle = true},
    {.name = "app_exclude_cpus",
     .kind = Kind::string,
     .disposition = Disposition::warning,
     .accepted = "\"\"",
     .reason = k_no_repin,
     .doc = "CPUs app_bind_numa must not pin application threads to.",
     .example = "\"3\"",
     .from_gazelle = true},
    {.name = "main_thread_affinity",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .accepted = "0",
     .reason = k_no_repin,
     .doc = "Let DPDK set the affinity of the application's main thread.",
     .example = "1",
     .from_gazelle = true},
    {.name = "listen_shadow",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .accepted = "0",
     .reason = "has no effect: a listening socket is always reachable from every queue, the fabric's listener "
               "table steers each SYN to a stack that listens",
     .doc = "Clone each listening socket onto every stack.",
     .example = "1",
     .from_gazelle = true},
    {.name = "use_sockmap",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .accepted = "0",
     .reason = "has no effect: traffic between applications on this host always stays inside the fabric "
               "(bridges in gazelle-mgr.conf)",
     .doc = "Same-node loopback through shared rings.",
     .example = "1",
     .from_gazelle = true},
    {.name = "send_cache_mode",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .accepted = "0",
     .reason = "has no effect: the stack sends each poll loop's packets as one burst anyway",
     .doc = "Per-queue transmit cache flushed every 16 loops.",
     .example = "1",
     .from_gazelle = true},
    {.name = "mem_async_mode",
     .kind = Kind::flag,
     .disposition = Disposition::warning,
     .reason = "has no effect (Gazelle ignored it too): mbufs come from the pools gazelle-mgr creates",
     .doc = "Application-thread mbuf caches fed by the stack; parsed and then ignored.",
     .example = "1",
     .from_gazelle = true},
    {.name = "process_numa",
     .kind = Kind::string,
     .disposition = Disposition::warning,
     .accepted = "\"\"",
     .reason = "has no effect: queues and their NUMA placement are assigned by gazelle-mgr",
     .doc = "NUMA node of each process's queues (tuple_filter mode).",
     .example = "\"0,1\"",
     .from_gazelle = true},
    {.name = "bond_miimon",
     .kind = Kind::integer,
     .disposition = Disposition::warning,
     .reason = "has no effect: bonding is not supported",
     .doc = "Bond link monitoring interval, ms.",
     .example = "10",
     .from_gazelle = true},

    // Rejected: keeping them would silently change what the application gets.
    {.name = "use_ltran",
     .kind = Kind::flag,
     .disposition = Disposition::error,
     .accepted = "0",
     .reason = "ltran does not exist here: the decentralized fabric replaces it; remove the key or set 0",
     .doc = "Receive through the ltran forwarder process (Gazelle's default when absent was 1).",
     .example = "1",
     .from_gazelle = true},
    {.name = "kni_switch",
     .kind = Kind::flag,
     .disposition = Disposition::error,
     .accepted = "0",
     .reason = "KNI was removed in DPDK 22.11: give the kernel a port with ports[].type = \"tap\" in "
               "gazelle-mgr.conf; remove the key or set 0",
     .doc = "A KNI interface for traffic the stack does not handle.",
     .example = "1",
     .from_gazelle = true},
    {.name = "flow_bifurcation",
     .kind = Kind::flag,
     .disposition = Disposition::error,
     .accepted = "0",
     .reason = "virtio_user flow bifurcation is not supported: give the kernel a port with ports[].type = \"tap\" "
               "in gazelle-mgr.conf; remove the key or set 0",
     .doc = "Hand unclaimed traffic to the kernel through virtio_user.",
     .example = "1",
     .from_gazelle = true},
    {.name = "tuple_filter",
     .kind = Kind::flag,
     .disposition = Disposition::error,
     .accepted = "0",
     .reason = k_queues_by_mgr,
     .doc = "Share one NIC between processes with per-flow hardware rules.",
     .example = "1",
     .from_gazelle = true},
    {.name = "num_process",
     .kind = Kind::integer,
     .disposition = Disposition::error,
     .accepted = "1",
     .reason = k_queues_by_mgr,
     .doc = "Number of processes sharing the NIC (tuple_filter mode).",
     .example = "2",
     .from_gazelle = true},
    {.name = "process_idx",
     .kind = Kind::integer,
     .disposition = Disposition::error,
     .accepted = "0",
     .reason = k_queues_by_mgr,
     .doc = "This process's index among num_process (tuple_filter mode).",
     .example = "1",
     .from_gazelle = true},
    {.name = "bond_mode",
     .kind = Kind::integer,
     .disposition = Disposition::error,
     .accepted = "-1",
     .reason = k_bonding,
     .doc = "Bond mode 1, 4 or 6 over bond_slave_mac; -1 is off.",
     .example = "4",
     .from_gazelle = true},
    {.name = "bond_slave_mac",
     .kind = Kind::string,
     .disposition = Disposition::error,
     .accepted = "\"\"",
     .reason = k_bonding,
     .doc = "MACs (or PCI addresses) of the bond members, separated by ';'.",
     .example = "\"aa:bb:cc:dd:ee:ff;aa:bb:cc:dd:ee:fe\"",
     .from_gazelle = true},
    {.name = "xdp_eth_name",
     .kind = Kind::string,
     .disposition = Disposition::error,
     .accepted = "\"\"",
     .reason = "AF_XDP ports are not supported: ports are created by gazelle-mgr (ports[].type is \"user-veth\", "
               "\"tap\" or \"pci\"); remove the key",
     .doc = "Kernel interface of an AF_XDP port (derived from --vdev net_af_xdp).",
     .example = "\"eth0\"",
     .from_gazelle = true},
    {.name = "host_addr6",
     .kind = Kind::string,
     .disposition = Disposition::error,
     .accepted = "\"\"",
     .reason = "IPv6 is not supported yet: ports have IPv4 addresses only (ports[].ipv4); remove the key",
     .doc = "The stack's IPv6 address.",
     .example = "\"fd00::1\"",
     .from_gazelle = true},
    {.name = "nic_vlan_mode",
     .kind = Kind::integer,
     .disposition = Disposition::error,
     .accepted = "-1",
     .reason = "VLAN tagging is not supported: ports are untagged; remove the key or set -1",
     .doc = "VLAN id 0..4094 of the port, -1 is off.",
     .example = "100",
     .from_gazelle = true},

    // Documented by Gazelle, gone there too.
    {.name = "nonblock_mode", .disposition = Disposition::removed, .reason = k_removed, .example = "1"},
    {.name = "send_connect_number", .disposition = Disposition::removed, .reason = k_removed, .example = "4"},
    {.name = "read_connect_number", .disposition = Disposition::removed, .reason = k_removed, .example = "4"},
    {.name = "num_wakeup", .disposition = Disposition::removed, .reason = k_removed, .example = "\"1\""},
    {.name = "mbuf_pool_size", .disposition = Disposition::removed, .reason = k_removed, .example = "1024"},
    {.name = "send_ring_size", .disposition = Disposition::removed, .reason = k_removed, .example = "32"},
};

// Checks that need more than one key; they run after every key is stored.
void cross_check(LstackConfig& config, const internal::Lines& lines, internal::Findings& findings) {
    const auto line = [&](std::string_view key) {
        const auto it = lines.find(key);
        return it == lines.end() ? 0u : it->second;
    };
    const auto is_set = [&](std::string_view key) { return lines.contains(key); };

    // stack_num 0 (Gazelle's default) and an absent stack_num both mean "as many as num_cpus lists".
    const auto cpus = static_cast<unsigned>(config.num_cpus.size());
    if (!is_set("stack_num") || config.stack_num == 0) {
        config.stack_num = cpus == 0 ? 1u : cpus;
    } else if (cpus != 0) {
        if (config.stack_num != cpus) {
            findings.error(line("stack_num"), "stack_num",
                           std::to_string(config.stack_num) + " stack threads, but num_cpus lists " +
                               std::to_string(cpus) + " CPUs (one per stack thread); make them agree or drop one");
        }
    }

    if (config.host_addr && config.mask_addr) {
        const Ipv4 host = *config.host_addr;
        const Ipv4 mask = *config.mask_addr;
        if (prefix_length(mask) <= 30 &&
            ((host.value & ~mask.value) == 0 || (host.value | mask.value) == 0xffffffffu)) {
            findings.error(line("host_addr"), "host_addr",
                           to_string(host) + " is the network or broadcast address of its subnet /" +
                               std::to_string(prefix_length(mask)));
        }
        if (config.gateway_addr) {
            const Ipv4 gateway = *config.gateway_addr;
            if (!same_subnet(gateway, host, mask)) {
                findings.error(line("gateway_addr"), "gateway_addr",
                               to_string(gateway) + " is not in the subnet of host_addr " + to_string(host) + "/" +
                                   std::to_string(prefix_length(mask)));
            } else if (gateway == host) {
                findings.error(line("gateway_addr"), "gateway_addr", "is host_addr itself");
            }
        }
    }

    if (config.stack_thread_mode == StackThreadMode::run_to_completion) {
        if (config.stack_interrupt) {
            findings.error(line("stack_interrupt"), "stack_interrupt",
                           "needs stack threads to block, but stack_thread_mode = \"run-to-completion\" has none");
        }
        if (config.low_power_mode) {
            findings.warn(line("low_power_mode"), "low_power_mode",
                          "has no effect: stack_thread_mode = \"run-to-completion\" has no stack threads to slow down");
        }
        if (!config.num_cpus.empty()) {
            findings.warn(line("num_cpus"), "num_cpus",
                          "has no effect: stack_thread_mode = \"run-to-completion\" has no stack threads to pin");
        }
    }
    if (config.low_power_mode && config.stack_interrupt) {
        findings.warn(line("low_power_mode"), "low_power_mode",
                      "has no effect: stack_interrupt = 1 blocks on an event instead of sleeping");
    }
    // Only a changed value is worth a warning: spelling out the default is what the sample does.
    if (config.idle_spin_us != LstackConfig{}.idle_spin_us && !config.low_power_mode && !config.stack_interrupt) {
        findings.warn(line("idle_spin_us"), "idle_spin_us",
                      "has no effect: neither low_power_mode nor stack_interrupt is 1");
    }

    const std::string socket = effective_mgr_socket(config);
    if (socket.size() >= sizeof(sockaddr_un::sun_path)) {
        const std::string key = is_set("unix_prefix") ? "unix_prefix" : "mgr_socket";
        findings.error(line(key), key,
                       "the socket path '" + socket + "' is longer than a unix socket address allows (" +
                           std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
    }
}

} // namespace

std::string lstack_config_path() {
    const char* env = std::getenv("LSTACK_CONF_PATH"); // NOLINT(concurrency-mt-unsafe): read-only at startup
    if (env != nullptr && env[0] != '\0') {
        return env;
    }
    return "/etc/gazelle/lstack.conf";
}

Result<LstackConfig> parse_lstack_config(const std::string& text, const std::string& file_name) {
    internal::Findings findings(file_name);
    internal::Source source;
    if (!internal::read_source(text, source, findings)) {
        return findings.to_error();
    }
    LstackConfig config;
    internal::Lines lines;
    internal::read_group<LstackConfig>(source.config.root(), k_keys, config, "", source, findings, lines);
    cross_check(config, lines, findings);
    internal::report_unread_overflows(source, findings);
    if (!findings.ok()) {
        return findings.to_error();
    }
    config.warnings = findings.warnings_by_line();
    return config;
}

Result<LstackConfig> load_lstack_config(const std::string& path) {
    auto text = internal::read_file(path);
    if (!text) {
        return text.error();
    }
    return parse_lstack_config(*text, path);
}

std::string describe(const LstackConfig& config) {
    return "// lstack.conf: effective values\n" + internal::describe_group<LstackConfig>(k_keys, config, "");
}

std::string effective_mgr_socket(const LstackConfig& config) {
    const std::size_t slash = config.mgr_socket.rfind('/');
    if (slash == std::string::npos) {
        return config.unix_prefix + config.mgr_socket;
    }
    return config.mgr_socket.substr(0, slash + 1) + config.unix_prefix + config.mgr_socket.substr(slash + 1);
}

const char* to_string(StackThreadMode mode) {
    return mode == StackThreadMode::run_to_completion ? "run-to-completion" : "run-to-wakeup";
}

const char* to_string(AttachFailure failure) {
    return failure == AttachFailure::error ? "error" : "kernel";
}

const char* to_string(ConnectPortPolicy policy) {
    return policy == ConnectPortPolicy::other_queue ? "other-queue" : "own-queue";
}

namespace internal {

std::vector<KeyInfo> lstack_key_infos() {
    std::vector<KeyInfo> out;
    const LstackConfig defaults;
    for (const auto& spec : k_keys) {
        out.push_back(key_info(spec, "", defaults));
    }
    return out;
}

} // namespace internal

} // namespace gazelle::conf
