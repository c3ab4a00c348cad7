// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The registration protocol between an app (its stack layer) and gazelle-mgr.
//
// Transport: a unix SOCK_SEQPACKET connection to the manager's socket (default
// /run/gazelle/mgr.sock), one message per packet, kept open for the app's whole life: the
// manager identifies the app by SO_PEERCRED (never by what a message claims), watches it with a
// pidfd, and treats EOF as "the app is gone" (clean detach or crash: reclaim either way; after a
// clean detach reclaim finds nothing left).
//
// The app talks to the manager before its EAL init: the reply carries the EAL arguments it must
// use (file prefix, huge dir, its unique lcore ids pinned on CPUs).
//
// Messages are fixed-size structs with a version; strings are NUL-terminated in fixed arrays.
// A message of the wrong size, version or type gets an Error reply and the connection is closed.

#include <cstdint>

#include "fabric/types.h"

namespace gazelle::fabric::mgr_protocol {

inline constexpr std::uint32_t k_version = 1;
inline constexpr unsigned k_max_app_queues = 8;

enum class MessageType : std::uint32_t {
    attach_request = 1, // app -> manager
    attach_reply = 2,   // manager -> app
    detach_request = 3, // app -> manager: clean exit, everything released by the app itself
    detach_reply = 4,
    error_reply = 5,    // manager -> app, then the manager closes the connection
};

struct Header {
    std::uint32_t version = k_version;
    MessageType type{};
};

enum class PortSelector : std::uint32_t { any = 0, by_ipv4 = 1, by_mac = 2, by_name = 3 };

struct AttachRequest {
    Header header{k_version, MessageType::attach_request};
    std::uint32_t queues = 1;          // stack threads the app wants (1..k_max_app_queues)
    PortSelector selector = PortSelector::any;
    std::uint32_t ipv4 = 0;            // by_ipv4, network byte order
    std::uint8_t mac[6] = {};          // by_mac
    std::uint8_t reserved_[2] = {};
    char port_name[16] = {};           // by_name
    char program[32] = {};             // for logs and `gazellectl show apps` only (identity is SO_PEERCRED)
};

struct AttachReply {
    Header header{k_version, MessageType::attach_reply};
    std::uint32_t nb_queues = 0;
    std::uint32_t port = 0;                       // registry port index
    QueueSlot slots[k_max_app_queues] = {};
    Epoch epochs[k_max_app_queues] = {};
    std::uint16_t lcores[k_max_app_queues] = {};  // EAL lcore id of stack thread i
    std::uint16_t cpus[k_max_app_queues] = {};    // CPU it is pinned to
    char file_prefix[64] = {};
    char huge_dir[128] = {};
};

struct DetachRequest {
    Header header{k_version, MessageType::detach_request};
};

struct DetachReply {
    Header header{k_version, MessageType::detach_reply};
};

struct ErrorReply {
    Header header{k_version, MessageType::error_reply};
    std::int32_t code = 0;   // errno: EBUSY (no free queue), ENOSPC (max apps), EINVAL, EPROTO, ...
    char message[256] = {};  // says what to change
};

} // namespace gazelle::fabric::mgr_protocol
