// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// lstack.conf: the per-application configuration read by liblstack.so.
//
// The file keeps Gazelle's name and syntax so existing files can be checked as they are. Every
// key of Gazelle's lstack.conf is known and has one disposition (see KeyInfo and doc/config.md):
// honoured with the meaning given on its field below, accepted with a warning when it has no
// effect here, or rejected with the reason when keeping it would silently change behaviour (ltran,
// KNI, bonding, tuple_filter, manager-assigned EAL arguments...). Unknown keys are errors.
//
// Thread and process model: the loaders are plain functions without global state; call them from
// any thread. They never print, log or exit: liblstack.so runs inside applications we do not own.

#include <optional>
#include <string>
#include <vector>

#include "conf/diagnostic.h"
#include "conf/key_info.h"
#include "conf/log_level.h"
#include "conf/net_address.h"
#include "conf/result.h"

namespace gazelle::conf {

enum class StackThreadMode {
    run_to_wakeup,     // "run-to-wakeup": each stack has its own polling thread (Gazelle's default)
    run_to_completion, // "run-to-completion": the stack runs inside the application's socket calls
};

enum class AttachFailure {
    kernel, // "kernel": fall back to kernel sockets for the whole process, with one clear message
    error,  // "error": socket calls fail with an errno instead of falling back
};

// How connect() picks a local port when the socket is not bound (benchmarks use the second).
enum class ConnectPortPolicy {
    own_queue,   // "own-queue": replies hash (software RSS) onto the connecting stack's own queue
    other_queue, // "other-queue": onto another queue of the port, so every reply is forwarded (benchmark only)
};

struct LstackConfig {
    // Which gazelle-mgr.conf port to attach to: by its IPv4 (host_addr) and/or its MAC (devices).
    // Unset: the manager chooses. mask_addr and gateway_addr, when set, must match the port's
    // (checked by the manager at attach time; here only their syntax and consistency).
    std::optional<Ipv4> host_addr;
    std::optional<Ipv4> mask_addr;
    std::optional<Ipv4> gateway_addr;
    std::optional<MacAddr> devices;

    unsigned stack_num = 1; // stack threads (= fabric queues) to request, 1..64; from num_cpus unless given
    std::vector<unsigned> num_cpus;     // CPU for stack thread i (empty: the manager's dpdk.app_cpus)
    std::vector<std::string> dpdk_args; // the EAL arguments passed through (--log-level, --syslog, ...)

    unsigned tcp_conn_count = 1500;     // maximum TCP connections of this process
    unsigned mbuf_count_per_conn = 170; // per-connection buffer budget, in mbufs
    unsigned nic_read_number = 32;      // rx burst size of one poll of a stack's queue
    unsigned rpc_number = 4;            // application requests a stack thread serves per poll loop
    bool udp_enable = true;             // false: UDP sockets stay kernel sockets
    StackThreadMode stack_thread_mode = StackThreadMode::run_to_wakeup;

    // Idle back-off of stack threads: after idle_spin_us of empty polls, sleep briefly
    // (low_power_mode) or block until the fabric or the application wakes the thread
    // (stack_interrupt). Neither: busy polling.
    bool low_power_mode = false;
    bool stack_interrupt = false;
    unsigned idle_spin_us = 50;

    std::string unix_prefix; // prepended to the file name of mgr_socket (several managers on one host)
    std::string mgr_socket = "/run/gazelle/mgr.sock";
    AttachFailure attach_failure = AttachFailure::kernel;
    LogLevel log_level = LogLevel::warning; // quiet by default: we run inside someone else's process
    // Benchmark knob: other_queue measures the mis-steering penalty (doc/performance.md).
    ConnectPortPolicy connect_port_policy = ConnectPortPolicy::own_queue;

    // Keys accepted with a warning (no effect here), in file order.
    std::vector<Diagnostic> warnings;

    bool operator==(const LstackConfig&) const = default;
};

// LSTACK_CONF_PATH if set and not empty, else /etc/gazelle/lstack.conf (as in Gazelle).
[[nodiscard]] std::string lstack_config_path();

// Loads and validates a file. Errors: the errno of open/read (ENOENT, EACCES...) with
// "cannot open 'path': ...", or EINVAL with every finding as "path:line: key: reason", one per line.
[[nodiscard]] Result<LstackConfig> load_lstack_config(const std::string& path);
// The same for text in memory; `file_name` labels the findings (tests, fuzzers, check tools).
[[nodiscard]] Result<LstackConfig> parse_lstack_config(const std::string& text, const std::string& file_name);

// The effective values in libconfig syntax (loading the result gives the same config, minus warnings).
[[nodiscard]] std::string describe(const LstackConfig& config);

// The manager socket after unix_prefix: "/run/gazelle/" + unix_prefix + "mgr.sock".
[[nodiscard]] std::string effective_mgr_socket(const LstackConfig& config);

[[nodiscard]] const char* to_string(StackThreadMode mode);
[[nodiscard]] const char* to_string(AttachFailure failure);
[[nodiscard]] const char* to_string(ConnectPortPolicy policy);

} // namespace gazelle::conf
