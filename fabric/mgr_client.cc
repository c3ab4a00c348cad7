// SPDX-License-Identifier: BSD-3-Clause
#include "fabric/mgr_client.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace gazelle::fabric {

namespace proto = mgr_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// Room for any reply plus slack, so that an oversized one is seen as such (MSG_TRUNC).
constexpr std::size_t k_receive_bytes = 1024;

std::string errno_text(int code) {
    return std::strerror(code);
}

std::string array_text(const char* data, std::size_t size) {
    return std::string(data, strnlen(data, size));
}

template <std::size_t N> void copy_text(char (&out)[N], const std::string& text) {
    const std::size_t n = std::min(text.size(), N - 1);
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
}

// Rounded up: a wait truncated to 0 ms in the deadline's last millisecond returns at once, and the
// caller's loop would spin through futex/poll calls (each a context switch) until the deadline.
int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -errno.
int wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd pfd{fd, events, 0};
        const int rc = poll(&pfd, 1, remaining_ms(deadline));
        if (rc > 0) {
            return 1;
        }
        if (rc == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

std::string connect_hint(int code) {
    switch (code) {
    case ENOENT:
    case ECONNREFUSED:
        return "is gazelle-mgr running?";
    case EACCES:
    case EPERM:
        return "the socket is for root and its group only";
    case EAGAIN:
        return "gazelle-mgr is not accepting connections";
    default:
        return "check manager.socket in gazelle-mgr.conf and mgr_socket in lstack.conf";
    }
}

Error connect_error(const std::string& path, int code) {
    return make_error(code, "Failed to connect to gazelle-mgr at '" + path + "': " + errno_text(code) + " (" +
                                connect_hint(code) + ")");
}

Result<UniqueFd> connect_manager(const std::string& path, Clock::time_point deadline) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
        return make_error(EINVAL, "gazelle-mgr socket path '" + path + "' must have 1.." +
                                      std::to_string(sizeof addr.sun_path - 1) + " characters");
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return make_error(errno, "Failed to create a socket for gazelle-mgr: " + errno_text(errno));
    }
    // A unix socket connects at once, or fails with EAGAIN while the listener's backlog is full:
    // retry until the deadline.
    for (;;) {
        if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
            return fd;
        }
        const int err = errno;
        if (err == EINTR) {
            continue;
        }
        if (err == EINPROGRESS) {
            const int ready = wait_for(fd.get(), POLLOUT, deadline);
            if (ready <= 0) {
                return ready == 0 ? make_error(ETIMEDOUT, "Timed out connecting to gazelle-mgr at '" + path + "'")
                                  : connect_error(path, -ready);
            }
            int so_error = 0;
            socklen_t len = sizeof so_error;
            (void)getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
            if (so_error != 0) {
                return connect_error(path, so_error);
            }
            return fd;
        }
        if (err != EAGAIN || remaining_ms(deadline) == 0) {
            return connect_error(path, err);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

Result<void> send_message(int fd, const void* data, std::size_t size, const std::string& path,
                          Clock::time_point deadline) {
    for (;;) {
        const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(size)) {
            return {};
        }
        const int err = n < 0 ? errno : EMSGSIZE;
        if (err == EINTR) {
            continue;
        }
        if (err == EAGAIN) {
            const int ready = wait_for(fd, POLLOUT, deadline);
            if (ready > 0) {
                continue;
            }
            if (ready == 0) {
                return make_error(ETIMEDOUT, "Timed out sending to gazelle-mgr at '" + path + "'");
            }
        }
        return make_error(err, "Failed to send to gazelle-mgr at '" + path + "': " + errno_text(err));
    }
}

struct Packet {
    alignas(8) std::byte data[k_receive_bytes];
    std::size_t size = 0; // real size (may exceed sizeof data)
};

Result<Packet> receive_message(int fd, const std::string& path, Clock::time_point deadline, const char* waiting_for) {
    Packet packet;
    for (;;) {
        const int ready = wait_for(fd, POLLIN, deadline);
        if (ready == 0) {
            return make_error(ETIMEDOUT,
                              "Timed out waiting for gazelle-mgr at '" + path + "' to answer the " + waiting_for);
        }
        if (ready < 0) {
            return make_error(-ready, "Failed to wait for gazelle-mgr at '" + path + "': " + errno_text(-ready));
        }
        const ssize_t n = recv(fd, packet.data, sizeof packet.data, MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            const int err = errno;
            return make_error(err, "Failed to receive from gazelle-mgr at '" + path + "': " + errno_text(err));
        }
        if (n == 0) {
            return make_error(ECONNRESET, "gazelle-mgr at '" + path + "' closed the connection without answering the " +
                                              waiting_for);
        }
        packet.size = static_cast<std::size_t>(n);
        return packet;
    }
}

// The header of a reply, after checking it can be one of ours.
Result<proto::Header> reply_header(const Packet& packet, const std::string& path) {
    proto::Header header{};
    if (packet.size < sizeof header) {
        return make_error(EPROTO, "gazelle-mgr at '" + path + "' sent a message of " + std::to_string(packet.size) +
                                      " bytes, shorter than a header");
    }
    std::memcpy(&header, packet.data, sizeof header);
    if (header.version != proto::k_version) {
        return make_error(EPROTO, "gazelle-mgr at '" + path + "' speaks protocol version " +
                                      std::to_string(header.version) + ", this application version " +
                                      std::to_string(proto::k_version) + " (update one of them)");
    }
    return header;
}

template <typename T> Result<T> reply_as(const Packet& packet, const std::string& path, const char* what) {
    if (packet.size != sizeof(T)) {
        return make_error(EPROTO, std::string("gazelle-mgr at '") + path + "' sent a " + what + " of " +
                                      std::to_string(packet.size) + " bytes, expected " + std::to_string(sizeof(T)));
    }
    T value{};
    std::memcpy(&value, packet.data, sizeof value);
    return value;
}

Error refusal(const Packet& packet, const std::string& path, const char* what) {
    auto reply = reply_as<proto::ErrorReply>(packet, path, "error reply");
    if (!reply) {
        return reply.error();
    }
    const int code = reply->code > 0 ? reply->code : EPROTO;
    return make_error(code, std::string("gazelle-mgr refused the ") + what + ": " +
                                array_text(reply->message, sizeof reply->message));
}

std::string own_program_name() {
    std::ifstream comm("/proc/self/comm");
    std::string name;
    std::getline(comm, name);
    return name;
}

} // namespace

AttachOptions attach_options_from(const conf::LstackConfig& config) {
    AttachOptions options;
    options.socket_path = conf::effective_mgr_socket(config);
    options.queues = config.stack_num;
    if (config.host_addr) {
        options.selector = proto::PortSelector::by_ipv4;
        options.ipv4 = htonl(config.host_addr->value);
    } else if (config.devices) {
        options.selector = proto::PortSelector::by_mac;
        options.mac = config.devices->bytes;
    }
    options.cpus = config.num_cpus;
    options.extra_eal_args = config.dpdk_args;
    return options;
}

std::string Attachment::file_prefix() const {
    return array_text(reply_.file_prefix, sizeof reply_.file_prefix);
}

std::string Attachment::huge_dir() const {
    return array_text(reply_.huge_dir, sizeof reply_.huge_dir);
}

std::vector<std::string> Attachment::eal_args() const {
    std::string lcores;
    for (unsigned i = 0; i < reply_.nb_queues; ++i) {
        lcores += (i == 0 ? "" : ",") + std::to_string(reply_.lcores[i]) + "@" + std::to_string(cpus_[i]);
    }
    std::vector<std::string> args = {"--proc-type=secondary",
                                     "--file-prefix=" + file_prefix(),
                                     "--huge-dir=" + huge_dir(),
                                     "--lcores=" + lcores,
                                     "--no-pci",
                                     "--no-telemetry"};
    args.insert(args.end(), extra_eal_args_.begin(), extra_eal_args_.end());
    return args;
}

Result<void> Attachment::detach() {
    if (!fd_) {
        return make_error(EINVAL, "detach: this process is not attached to gazelle-mgr");
    }
    UniqueFd fd = std::move(fd_); // closed on every path
    const auto deadline = Clock::now() + timeout_;
    const proto::DetachRequest request;
    if (auto sent = send_message(fd.get(), &request, sizeof request, socket_path_, deadline); !sent) {
        return sent.error();
    }
    auto packet = receive_message(fd.get(), socket_path_, deadline, "detach request");
    if (!packet) {
        return packet.error();
    }
    auto header = reply_header(*packet, socket_path_);
    if (!header) {
        return header.error();
    }
    if (header->type == proto::MessageType::error_reply) {
        return refusal(*packet, socket_path_, "detach");
    }
    if (header->type != proto::MessageType::detach_reply) {
        return make_error(EPROTO, "gazelle-mgr at '" + socket_path_ + "' answered a detach request with message type " +
                                      std::to_string(static_cast<std::uint32_t>(header->type)));
    }
    if (auto reply = reply_as<proto::DetachReply>(*packet, socket_path_, "detach reply"); !reply) {
        return reply.error();
    }
    return {};
}

Result<Attachment> attach_to_manager(const AttachOptions& options) {
    if (options.queues < 1 || options.queues > proto::k_max_app_queues) {
        return make_error(EINVAL, "attach: " + std::to_string(options.queues) +
                                      " queues asked, an application may have 1.." +
                                      std::to_string(proto::k_max_app_queues));
    }
    proto::AttachRequest request;
    if (options.selector == proto::PortSelector::by_name &&
        (options.port_name.empty() || options.port_name.size() >= sizeof request.port_name)) {
        return make_error(EINVAL, "attach: port name '" + options.port_name + "' must have 1.." +
                                      std::to_string(sizeof request.port_name - 1) + " characters");
    }
    for (unsigned cpu : options.cpus) {
        if (cpu > UINT16_MAX) {
            return make_error(EINVAL, "attach: CPU " + std::to_string(cpu) + " is out of range");
        }
    }
    const auto deadline = Clock::now() + options.timeout;
    auto fd = connect_manager(options.socket_path, deadline);
    if (!fd) {
        return fd.error();
    }
    request.queues = options.queues;
    request.selector = options.selector;
    request.ipv4 = options.ipv4;
    std::memcpy(request.mac, options.mac.data(), sizeof request.mac);
    copy_text(request.port_name, options.port_name);
    copy_text(request.program, options.program.empty() ? own_program_name() : options.program);
    if (auto sent = send_message(fd->get(), &request, sizeof request, options.socket_path, deadline); !sent) {
        return sent.error();
    }
    auto packet = receive_message(fd->get(), options.socket_path, deadline, "attach request");
    if (!packet) {
        return packet.error();
    }
    auto header = reply_header(*packet, options.socket_path);
    if (!header) {
        return header.error();
    }
    if (header->type == proto::MessageType::error_reply) {
        return refusal(*packet, options.socket_path, "attach");
    }
    if (header->type != proto::MessageType::attach_reply) {
        return make_error(EPROTO, "gazelle-mgr at '" + options.socket_path +
                                      "' answered an attach request with message type " +
                                      std::to_string(static_cast<std::uint32_t>(header->type)));
    }
    auto reply = reply_as<proto::AttachReply>(*packet, options.socket_path, "attach reply");
    if (!reply) {
        return reply.error();
    }
    if (reply->nb_queues != options.queues) {
        return make_error(EPROTO, "gazelle-mgr at '" + options.socket_path + "' granted " +
                                      std::to_string(reply->nb_queues) + " queues, " + std::to_string(options.queues) +
                                      " were asked");
    }
    Attachment attachment;
    attachment.fd_ = std::move(*fd);
    attachment.reply_ = *reply;
    for (unsigned i = 0; i < reply->nb_queues; ++i) {
        attachment.cpus_[i] =
            options.cpus.empty() ? reply->cpus[i] : static_cast<std::uint16_t>(options.cpus[i % options.cpus.size()]);
    }
    attachment.socket_path_ = options.socket_path;
    attachment.extra_eal_args_ = options.extra_eal_args;
    attachment.timeout_ = options.timeout;
    return attachment;
}

} // namespace gazelle::fabric
