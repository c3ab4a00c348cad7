// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The posix layer's log and counters.
//
// liblstack.so runs inside applications we do not own: it logs only to stderr, one line per
// message ("gazelle[pid]: posix: ..."), at or above lstack.conf's log_level (warning by
// default), written with one write(2) so lines of several threads never interleave. Per-socket
// decisions (a socket left to the kernel, an option without effect) are counted and logged at
// debug level: never silent, never noisy. Messages that must always reach the user (a failed
// attach) use log_always().
//
// Threading: any thread; the level may change while others log (relaxed atomic).

#include <array>
#include <atomic>
#include <cstdint>

#include "conf/log_level.h"

namespace gazelle::posix {

void set_log_level(conf::LogLevel level);
bool log_enabled(conf::LogLevel level);

void log_message(conf::LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));
// Printed whatever the level (attach failures: the one message a user must see).
void log_always(const char* format, ...) __attribute__((format(printf, 1, 2)));

#define GZ_LOG(level, ...)                                                                     \
    do {                                                                                       \
        if (::gazelle::posix::log_enabled(::gazelle::conf::LogLevel::level)) {                 \
            ::gazelle::posix::log_message(::gazelle::conf::LogLevel::level, __VA_ARGS__);      \
        }                                                                                      \
    } while (0)

// Why a socket is a kernel socket (one counter each).
enum class KernelReason : unsigned {
    family,          // not AF_INET (AF_UNIX, AF_INET6, AF_NETLINK, ...)
    type,            // not SOCK_STREAM/SOCK_DGRAM with protocol 0/TCP/UDP (raw, seqpacket, ...)
    kernel_address,  // bound or connected to 127.0.0.0/8 or an address of a kernel interface
    off_fabric,      // connected to an address outside the fabric port's subnet
    udp_disabled,    // lstack.conf udp_enable = 0
    option,          // an option the fabric does not implement was set before bind/connect
    not_attached,    // the process could not attach (attach_failure = kernel) or is a child of
                     // an attached process
    count_
};

const char* to_string(KernelReason reason);

struct Counters {
    std::atomic<std::uint64_t> fabric_sockets{0};  // sockets placed on the fabric (incl. accepted)
    std::atomic<std::uint64_t> accepted{0};
    std::array<std::atomic<std::uint64_t>, static_cast<unsigned>(KernelReason::count_)> kernel{};
    std::atomic<std::uint64_t> ignored_options{0}; // setsockopt accepted without effect
    std::atomic<std::uint64_t> refused_options{0}; // setsockopt refused (ENOPROTOOPT) on a fabric socket
    std::atomic<std::uint64_t> orphaned_calls{0};  // calls on sockets inherited from an attached parent
};

Counters& counters();
void count_kernel(KernelReason reason);

} // namespace gazelle::posix
