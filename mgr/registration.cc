// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/registration.h"

#include <arpa/inet.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "conf/net_address.h"
#include "mgr/log.h"

namespace gazelle::mgr {

namespace {

constexpr int k_backlog = 64;
constexpr mode_t k_socket_mode = 0660;
constexpr mode_t k_dir_mode = 0755;
constexpr char k_socket_group[] = "gazelle";

std::string errno_text(int code) {
    return std::strerror(code);
}

Result<sockaddr_un> socket_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path[0] != '/' || path.size() >= sizeof addr.sun_path) {
        return make_error(ENAMETOOLONG, "registration socket '" + path + "' must be an absolute path of at most " +
                                            std::to_string(sizeof addr.sun_path - 1) + " characters");
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

// Whether somebody accepts connections at `path`: 1 yes, 0 no (stale or absent), or an error.
Result<bool> somebody_listens(const std::string& path, const sockaddr_un& addr) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return false;
        }
        return make_error(errno, "Failed to stat registration socket '" + path + "': " + errno_text(errno));
    }
    if (!S_ISSOCK(st.st_mode)) {
        return make_error(EEXIST, "'" + path + "' exists and is not a socket; remove it or set manager.socket");
    }
    UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) {
        return make_error(errno, "Failed to create a socket: " + errno_text(errno));
    }
    if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        return true;
    }
    switch (errno) {
    case ECONNREFUSED:
        return false;
    case EAGAIN:     // listening, backlog full
    case EPROTOTYPE: // a stream or datagram socket of some other program
        return true;
    default:
        return make_error(errno, "Failed to probe registration socket '" + path + "': " + errno_text(errno));
    }
}

Result<void> make_parent_dirs(const std::string& path) {
    for (std::size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
        const std::string dir = path.substr(0, at);
        if (mkdir(dir.c_str(), k_dir_mode) == 0) {
            (void)chmod(dir.c_str(), k_dir_mode); // the umask may have taken bits away
            log_debug("Created directory '%s'", dir.c_str());
        } else if (errno != EEXIST) {
            return make_error(errno, "Failed to create directory '" + dir + "': " + errno_text(errno));
        }
    }
    return {};
}

} // namespace

RegistrationSocket& RegistrationSocket::operator=(RegistrationSocket&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::move(other.fd_);
        path_ = std::move(other.path_);
        dev_ = other.dev_;
        ino_ = other.ino_;
    }
    return *this;
}

RegistrationSocket::~RegistrationSocket() {
    close();
}

Result<void> RegistrationSocket::check_unused(const std::string& path) {
    auto addr = socket_address(path);
    if (!addr) {
        return addr.error();
    }
    auto listens = somebody_listens(path, *addr);
    if (!listens) {
        return listens.error();
    }
    if (*listens) {
        return make_error(EADDRINUSE, "another gazelle-mgr is listening on '" + path +
                                          "' (stop it, or give this one another manager.socket)");
    }
    return {};
}

Result<RegistrationSocket> RegistrationSocket::listen(const std::string& path) {
    auto addr = socket_address(path);
    if (!addr) {
        return addr.error();
    }
    if (auto dirs = make_parent_dirs(path); !dirs) {
        return dirs.error();
    }
    auto listens = somebody_listens(path, *addr);
    if (!listens) {
        return listens.error();
    }
    if (*listens) {
        return make_error(EADDRINUSE, "another gazelle-mgr is listening on '" + path +
                                          "' (stop it, or give this one another manager.socket)");
    }
    if (unlink(path.c_str()) == 0) {
        log_notice("Removed stale registration socket '%s' (nobody listened on it)", path.c_str());
    } else if (errno != ENOENT) {
        return make_error(errno, "Failed to remove stale registration socket '" + path + "': " + errno_text(errno));
    }
    RegistrationSocket s;
    s.fd_.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.fd_) {
        return make_error(errno, "Failed to create the registration socket: " + errno_text(errno));
    }
    // bind() creates the file with the umask applied: make it 0660 from the start, never wider.
    const mode_t old_umask = umask(0777 & ~k_socket_mode);
    const int bound = bind(s.fd_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    const int bind_errno = errno;
    umask(old_umask);
    if (bound != 0) {
        return make_error(bind_errno, "Failed to bind registration socket '" + path + "': " + errno_text(bind_errno));
    }
    s.path_ = path;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
        s.dev_ = st.st_dev;
        s.ino_ = st.st_ino;
    }
    if (const group* g = getgrnam(k_socket_group); g != nullptr) {
        if (chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
            log_warning("Failed to give registration socket '%s' to group '%s': %s, ignoring", path.c_str(),
                        k_socket_group, std::strerror(errno));
        }
    }
    if (::listen(s.fd_.get(), k_backlog) != 0) {
        return make_error(errno, "Failed to listen on registration socket '" + path + "': " + errno_text(errno));
    }
    return s;
}

Result<UniqueFd> RegistrationSocket::accept() const {
    for (;;) {
        UniqueFd fd(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (fd) {
            return fd;
        }
        if (errno == EINTR) {
            continue;
        }
        const int err = errno;
        return make_error(err, "Failed to accept a connection on '" + path_ + "': " + errno_text(err));
    }
}

void RegistrationSocket::close() {
    if (!fd_) {
        return;
    }
    fd_.reset();
    struct stat st {};
    // Remove the file only if it is still ours (not the socket of a manager started after us).
    if (stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
        if (unlink(path_.c_str()) != 0) {
            log_warning("Failed to remove registration socket '%s': %s, ignoring", path_.c_str(), std::strerror(errno));
        }
    }
}

Result<AppMessage> decode_app_message(std::span<const std::byte> data, std::size_t size) {
    proto::Header header{};
    if (size < sizeof header || data.size() < sizeof header) {
        return make_error(EPROTO, "message of " + std::to_string(size) + " bytes is shorter than a header (" +
                                      std::to_string(sizeof header) + " bytes)");
    }
    std::memcpy(&header, data.data(), sizeof header);
    if (header.version != proto::k_version) {
        return make_error(EPROTO, "protocol version " + std::to_string(header.version) +
                                      ", this gazelle-mgr speaks version " + std::to_string(proto::k_version));
    }
    AppMessage message;
    message.type = header.type;
    const auto expect_size = [&](std::size_t want, const char* what) -> Result<void> {
        if (size != want || data.size() < want) {
            return make_error(EPROTO, std::string(what) + " of " + std::to_string(size) + " bytes, expected " +
                                          std::to_string(want) + " (another protocol build?)");
        }
        return {};
    };
    switch (header.type) {
    case proto::MessageType::attach_request:
        if (auto ok = expect_size(sizeof(proto::AttachRequest), "attach request"); !ok) {
            return ok.error();
        }
        std::memcpy(&message.attach, data.data(), sizeof message.attach);
        return message;
    case proto::MessageType::detach_request:
        if (auto ok = expect_size(sizeof(proto::DetachRequest), "detach request"); !ok) {
            return ok.error();
        }
        return message;
    case proto::MessageType::attach_reply:
    case proto::MessageType::detach_reply:
    case proto::MessageType::error_reply:
        break;
    }
    return make_error(EPROTO, "message type " + std::to_string(static_cast<std::uint32_t>(header.type)) +
                                  " is not a request (expected attach_request = 1 or detach_request = 3)");
}

proto::ErrorReply make_error_reply(const Error& error) {
    proto::ErrorReply reply;
    reply.code = error.code;
    const std::size_t n = std::min(error.message.size(), sizeof reply.message - 1);
    std::memcpy(reply.message, error.message.data(), n);
    reply.message[n] = '\0';
    return reply;
}

Result<void> send_packet(int fd, const void* data, std::size_t size) {
    for (;;) {
        const ssize_t n = send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(size)) {
            return {};
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        const int err = n < 0 ? errno : EMSGSIZE;
        return make_error(err, "Failed to send a reply of " + std::to_string(size) + " bytes: " + errno_text(err));
    }
}

std::string request_text(const char* data, std::size_t size) {
    std::string text(data, strnlen(data, size));
    for (char& c : text) {
        if (c <= ' ' || c > '~') {
            c = '?';
        }
    }
    return text;
}

std::string describe_selector(const proto::AttachRequest& request) {
    switch (request.selector) {
    case proto::PortSelector::any:
        return "any port";
    case proto::PortSelector::by_ipv4:
        return "the port with IPv4 " + conf::to_string(conf::Ipv4{ntohl(request.ipv4)});
    case proto::PortSelector::by_mac: {
        conf::MacAddr mac;
        std::memcpy(mac.bytes.data(), request.mac, mac.bytes.size());
        return "the port with MAC " + conf::to_string(mac);
    }
    case proto::PortSelector::by_name:
        return "port '" + request_text(request.port_name, sizeof request.port_name) + "'";
    }
    return "port selector " + std::to_string(static_cast<std::uint32_t>(request.selector));
}

} // namespace gazelle::mgr
