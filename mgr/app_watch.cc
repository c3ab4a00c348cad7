// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/app_watch.h"

#include <dirent.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "mgr/procfs.h"

namespace gazelle::mgr {

namespace {

// Linux 6.5 (include/uapi/asm-generic/socket.h); Debian 12's glibc headers predate it.
#ifndef SO_PEERPIDFD
constexpr int SO_PEERPIDFD = 77;
#endif
// include/linux/sched.h: the task is in do_exit().
constexpr unsigned long k_pf_exiting = 0x00000004;
// Room for any request plus slack, so that an oversized one is seen as such (MSG_TRUNC).
constexpr std::size_t k_receive_bytes = 512;

std::string errno_text(int code) {
    return std::strerror(code);
}

// Exiting (PF_EXITING) or already a zombie/dead, from /proc/<pid>/task/<tid>/stat. False when the
// file cannot be read (the thread is gone: then it is not running either, so callers treat a
// missing task directory separately).
bool thread_exiting(const std::string& stat_path, bool& readable) {
    const std::string text = read_text_file(stat_path, 4096);
    readable = !text.empty();
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) {
        return false;
    }
    // Fields 3 .. 9 of proc(5): state ppid pgrp session tty_nr tpgid flags.
    char state = 0;
    unsigned long flags = 0;
    if (std::sscanf(text.c_str() + paren + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2) {
        return false;
    }
    return state == 'Z' || state == 'X' || (flags & k_pf_exiting) != 0;
}

} // namespace

Result<UniqueFd> pidfd_open_checked(pid_t pid) {
    const long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        return make_error(errno, "Failed to open a pidfd for pid " + std::to_string(pid) + ": " + errno_text(errno));
    }
    return UniqueFd(static_cast<int>(fd));
}

int pidfd_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 ? 0 : -errno;
}

bool pidfd_exited(int pidfd) {
    pollfd pfd{pidfd, POLLIN, 0};
    return poll(&pfd, 1, 0) == 1;
}

bool process_exiting(pid_t pid, int pidfd) {
    if (pidfd_exited(pidfd)) {
        return true;
    }
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* tasks = opendir(dir.c_str());
    if (tasks == nullptr) {
        return errno == ENOENT;
    }
    bool all_exiting = true;
    unsigned seen = 0;
    while (const dirent* entry = readdir(tasks)) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        bool readable = false;
        const bool exiting = thread_exiting(dir + "/" + entry->d_name + "/stat", readable);
        if (readable) {
            ++seen;
            all_exiting = all_exiting && exiting;
        }
    }
    closedir(tasks);
    return all_exiting || seen == 0 || pidfd_exited(pidfd);
}

Result<std::unique_ptr<AppWatch>> AppWatch::create(sd_event* event, UniqueFd connection, std::uint64_t id,
                                                   Events events) {
    std::unique_ptr<AppWatch> w(new AppWatch(id, std::move(events)));
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(connection.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return make_error(errno, std::string("Failed to get the credentials of a registration connection: ") +
                                     errno_text(errno));
    }
    if (cred.pid <= 0) {
        return make_error(ESRCH, "registration connection without a peer process (from another pid namespace?)");
    }
    w->pid_ = cred.pid;
    w->uid_ = cred.uid;
    w->gid_ = cred.gid;
    int pidfd = -1;
    len = sizeof pidfd;
    if (getsockopt(connection.get(), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
        w->pidfd_.reset(pidfd);
    } else {
        // Before Linux 6.5: pidfd_open(pid), then make sure pid still is our peer: had the peer died
        // (and its pid been reused), its end of the connection would be closed by now.
        auto opened = pidfd_open_checked(cred.pid);
        if (!opened) {
            return opened.error();
        }
        pollfd pfd{connection.get(), POLLRDHUP, 0};
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0) {
            return make_error(ESRCH,
                              "process " + std::to_string(cred.pid) + " closed its registration connection at once");
        }
        w->pidfd_ = std::move(*opened);
    }
    w->connection_ = std::move(connection);
    sd_event_source* raw = nullptr;
    int rc = sd_event_add_io(event, &raw, w->connection_.get(), EPOLLIN, on_connection, w.get());
    if (rc < 0) {
        return make_error(-rc, "Failed to watch the registration connection of pid " + std::to_string(w->pid_) + ": " +
                                   errno_text(-rc));
    }
    w->connection_source_.reset(raw);
    rc = sd_event_add_io(event, &raw, w->pidfd_.get(), EPOLLIN, on_pidfd, w.get());
    if (rc < 0) {
        return make_error(-rc, "Failed to watch the pidfd of pid " + std::to_string(w->pid_) + ": " + errno_text(-rc));
    }
    w->pidfd_source_.reset(raw);
    return w;
}

int AppWatch::on_connection(sd_event_source* /*source*/, int fd, std::uint32_t /*revents*/, void* userdata) {
    auto& self = *static_cast<AppWatch*>(userdata);
    alignas(8) std::byte buffer[k_receive_bytes];
    // One packet per dispatch (the source is level-triggered): a handler may destroy `self`.
    const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_TRUNC | MSG_DONTWAIT);
    if (n > 0) {
        const auto handler = self.events_.message;
        const std::size_t size = static_cast<std::size_t>(n);
        handler(self, std::span<const std::byte>(buffer, std::min(size, sizeof buffer)), size);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    // EOF, or an error (ECONNRESET): either way the app's end is gone.
    self.hung_up_ = true;
    self.connection_source_.reset();
    self.connection_.reset();
    const auto handler = self.events_.hangup;
    handler(self);
    return 0;
}

int AppWatch::on_pidfd(sd_event_source* /*source*/, int /*fd*/, std::uint32_t /*revents*/, void* userdata) {
    auto& self = *static_cast<AppWatch*>(userdata);
    self.exited_ = true;
    self.pidfd_source_.reset();
    const auto handler = self.events_.exited;
    handler(self);
    return 0;
}

Result<void> AppWatch::send(const void* data, std::size_t size) {
    if (!connection_) {
        return make_error(ENOTCONN, "registration connection of pid " + std::to_string(pid_) + " is closed");
    }
    for (;;) {
        const ssize_t n = ::send(connection_.get(), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(size)) {
            return {};
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        const int err = n < 0 ? errno : EMSGSIZE;
        return make_error(err, "Failed to send to pid " + std::to_string(pid_) + ": " + errno_text(err));
    }
}

void AppWatch::close_connection() {
    connection_source_.reset();
    connection_.reset();
}

Result<void> AppWatch::kill(int sig) {
    if (exited_) {
        return {};
    }
    if (const int rc = pidfd_signal(pidfd_.get(), sig); rc < 0 && rc != -ESRCH) {
        return make_error(-rc, "Failed to send signal " + std::to_string(sig) + " to pid " + std::to_string(pid_) +
                                   ": " + errno_text(-rc));
    }
    return {};
}

bool AppWatch::wait_exit(std::chrono::milliseconds timeout) {
    if (exited_) {
        return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        pollfd pfd{pidfd_.get(), POLLIN, 0};
        const int rc = poll(&pfd, 1, static_cast<int>(std::max<long long>(left, 0)));
        if (rc == 1) {
            return true;
        }
        if (rc == 0 || errno != EINTR) {
            return false;
        }
    }
}

} // namespace gazelle::mgr
