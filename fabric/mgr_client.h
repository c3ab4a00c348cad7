// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The application side of the registration protocol (fabric/mgr_protocol.h): connect to
// gazelle-mgr, ask for queues, learn the EAL arguments to use, and keep the connection open for
// the life of the process (the manager identifies the process by the connection's SO_PEERCRED and
// takes its end as the process's end).
//
// It runs before the application's EAL init (the reply decides the EAL arguments), so it uses
// nothing of DPDK. Every call is blocking with a deadline (AttachOptions::timeout): connect, send
// and receive never wait longer; a manager that does not answer is an ETIMEDOUT error, never a
// hang.
//
// Errors are one line that says what to do, e.g.
//   "Failed to connect to gazelle-mgr at '/run/gazelle/mgr.sock': No such file or directory (is
//    gazelle-mgr running?)"
//   "gazelle-mgr refused the attach: port veth0 has 0 free queues, app asked 2"  (code EBUSY)
//
// Threading: any thread; one Attachment is used by one thread at a time. Never logs, prints or
// exits (it runs inside applications we do not own).

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "conf/lstack_config.h"
#include "conf/result.h"
#include "fabric/mgr_protocol.h"
#include "fabric/types.h"
#include "fabric/unique_fd.h"

namespace gazelle::fabric {

struct AttachOptions {
    std::string socket_path = "/run/gazelle/mgr.sock";
    unsigned queues = 1; // stack threads = queues, 1..mgr_protocol::k_max_app_queues
    mgr_protocol::PortSelector selector = mgr_protocol::PortSelector::any;
    std::uint32_t ipv4 = 0;            // by_ipv4, network byte order
    std::array<std::uint8_t, 6> mac{}; // by_mac
    std::string port_name;             // by_name, 1..15 characters
    // Shown in the manager's logs and `gazellectl show apps` (empty: /proc/self/comm). Display
    // only: the manager identifies the process by SO_PEERCRED.
    std::string program;
    // CPU of stack thread i (lstack.conf num_cpus), used by eal_args() instead of the manager's
    // choice; empty: the manager's (dpdk.app_cpus, round robin).
    std::vector<unsigned> cpus;
    // Appended to eal_args() (lstack.conf dpdk_args: --log-level, --syslog, ...).
    std::vector<std::string> extra_eal_args;
    // Deadline of the whole exchange (connect, request, reply), and of detach().
    std::chrono::milliseconds timeout{5000};
};

// The request an lstack.conf makes: mgr_socket (after unix_prefix), stack_num queues, the port of
// host_addr (by_ipv4) or else of devices (by_mac) or else any, num_cpus, dpdk_args.
[[nodiscard]] AttachOptions attach_options_from(const conf::LstackConfig& config);

// A granted registration. Move-only; owns the connection.
//
// Destroying an attached Attachment without detach() closes the connection, which the manager
// takes as the death of the process: it reclaims the queues once the process has exited, and
// SIGKILLs a process still alive shortly after (a process that may still poll its queues cannot
// have them reclaimed). A process that goes on without the fabric calls detach() first.
class Attachment {
public:
    Attachment(Attachment&&) noexcept = default;
    Attachment& operator=(Attachment&&) noexcept = default;
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;
    ~Attachment() = default;

    // The manager's reply as received.
    const mgr_protocol::AttachReply& reply() const { return reply_; }
    unsigned nb_queues() const { return reply_.nb_queues; }
    unsigned port() const { return reply_.port; } // registry port index
    std::span<const QueueSlot> slots() const { return {reply_.slots, reply_.nb_queues}; }
    std::span<const Epoch> epochs() const { return {reply_.epochs, reply_.nb_queues}; }
    // EAL lcore id of stack thread i (unique fabric-wide).
    std::span<const std::uint16_t> lcores() const { return {reply_.lcores, reply_.nb_queues}; }
    // CPU of stack thread i: AttachOptions::cpus when given, else the manager's.
    std::span<const std::uint16_t> cpus() const { return {cpus_.data(), reply_.nb_queues}; }
    std::string file_prefix() const;
    std::string huge_dir() const;
    const std::string& socket_path() const { return socket_path_; }

    // The registration connection (open until detach() or destruction).
    int fd() const { return fd_.get(); }
    bool attached() const { return fd_.valid(); }

    // The EAL arguments this process must use, in this order: --proc-type=secondary,
    // --file-prefix=P, --huge-dir=D, --lcores=ID@CPU,ID@CPU,... (stack thread i = lcores()[i]; the
    // first is the EAL main lcore), --no-pci, --no-telemetry, then AttachOptions::extra_eal_args.
    [[nodiscard]] std::vector<std::string> eal_args() const;

    // Clean exit: tells the manager this process released everything itself (parked its stacks,
    // freed its mbufs, removed its rules), waits for the answer (AttachOptions::timeout) and
    // closes the connection. The manager still reclaims the queues, and finds nothing.
    // Errors: EINVAL (not attached), ETIMEDOUT (no answer in time), ECONNRESET (the manager closed
    // the connection), EPROTO (unexpected answer), or the manager's ErrorReply code; the
    // connection is closed in every case.
    [[nodiscard]] Result<void> detach();

private:
    friend Result<Attachment> attach_to_manager(const AttachOptions& options);
    Attachment() = default;

    UniqueFd fd_;
    mgr_protocol::AttachReply reply_{};
    std::array<std::uint16_t, mgr_protocol::k_max_app_queues> cpus_{};
    std::string socket_path_;
    std::vector<std::string> extra_eal_args_;
    std::chrono::milliseconds timeout_{5000};
};

// Connects to the manager, sends an AttachRequest and waits for the reply.
// Errors: EINVAL (bad options, said which), the connect errno (ENOENT, ECONNREFUSED, EACCES...)
// with "Failed to connect to gazelle-mgr at '<path>': <reason> (<hint>)", ETIMEDOUT, ECONNRESET
// (closed without answering), EPROTO (a reply this build does not understand), or the code of
// the manager's ErrorReply (EBUSY, ENOSPC, EINVAL, EPROTO) with its text.
[[nodiscard]] Result<Attachment> attach_to_manager(const AttachOptions& options);

} // namespace gazelle::fabric
