// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The manager's side of the registration protocol (fabric/mgr_protocol.h): the listening socket,
// and the checks every received packet goes through before the Manager looks at it.
//
// Socket: a unix SOCK_SEQPACKET socket at manager.socket. Missing parent directories are created
// 0755; the socket is 0660, owned by root and by group "gazelle" when that group exists (members
// of it may register apps without being root). A socket file left by a dead manager is removed at
// start; one somebody listens on is an error (another manager runs).
//
// Wire checks: size, version and type are checked before anything else; every failure is EPROTO
// with a message saying what was received and what was expected. Contents are never trusted for
// identity: the peer is whoever SO_PEERCRED says (mgr/app_watch.h).
//
// Threading: the event-loop thread. Never blocks (non-blocking sockets).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sys/types.h>

#include "conf/result.h"
#include "fabric/mgr_protocol.h"
#include "fabric/unique_fd.h"

namespace gazelle::mgr {

namespace proto = fabric::mgr_protocol;
using fabric::UniqueFd;

class RegistrationSocket {
public:
    RegistrationSocket() = default;
    RegistrationSocket(RegistrationSocket&&) noexcept = default;
    RegistrationSocket& operator=(RegistrationSocket&&) noexcept;
    ~RegistrationSocket();

    // Pre-flight, changes nothing: EADDRINUSE when a process listens at `path` ("another
    // gazelle-mgr is listening on '<path>'"), EEXIST when `path` exists and is not a socket,
    // ENAMETOOLONG when it does not fit a sockaddr_un.
    [[nodiscard]] static Result<void> check_unused(const std::string& path);
    // Creates the directories, removes a stale socket, binds (0660) and listens. Errors: those
    // of check_unused(), and of mkdir/socket/bind/listen with the path.
    [[nodiscard]] static Result<RegistrationSocket> listen(const std::string& path);

    bool valid() const { return fd_.valid(); }
    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }

    // The next pending connection (non-blocking, close-on-exec), or EAGAIN when there is none.
    [[nodiscard]] Result<UniqueFd> accept() const;

    // Stops accepting: closes the socket and removes the file if it is still the one we bound.
    void close();

private:
    UniqueFd fd_;
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

// A request from an app, after the wire checks.
struct AppMessage {
    proto::MessageType type = proto::MessageType::attach_request; // attach_request or detach_request
    proto::AttachRequest attach{};                                // when type == attach_request
};

// Checks one received packet: `data` is what was read, `size` the packet's real length (from
// MSG_TRUNC, may exceed data.size()). Errors (EPROTO): shorter than a header, another protocol
// version, a type that is not a request, or a size that is not the type's.
[[nodiscard]] Result<AppMessage> decode_app_message(std::span<const std::byte> data, std::size_t size);

// Replies. The message is cut to fit ErrorReply::message.
[[nodiscard]] proto::ErrorReply make_error_reply(const Error& error);

// Sends one reply without blocking (MSG_DONTWAIT | MSG_NOSIGNAL). Errors: the errno of send
// (EAGAIN: the app does not read its socket), EMSGSIZE for a short send.
[[nodiscard]] Result<void> send_packet(int fd, const void* data, std::size_t size);
template <typename T> [[nodiscard]] Result<void> send_reply(int fd, const T& reply) {
    return send_packet(fd, &reply, sizeof reply);
}

// A fixed-size text field of a request, up to its NUL (or its end), with every byte that is not
// printable ASCII (or is a space) replaced by '?': safe to put into a log line.
[[nodiscard]] std::string request_text(const char* data, std::size_t size);

// What the request's port selector asks for, for messages: "any port", "the port with IPv4
// 198.18.0.9", "the port with MAC 02:00:00:00:00:09", "port 'veth7'".
[[nodiscard]] std::string describe_selector(const proto::AttachRequest& request);

} // namespace gazelle::mgr
