// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// AppWatch: one application's registration connection and its process, watched on the event
// loop.
//
// Identity comes from the kernel, never from messages: SO_PEERCRED (pid, uid, gid as of
// connect()) and a pidfd for that pid: SO_PEERPIDFD (Linux 6.5; no pid-reuse race at all), or
// else pidfd_open(pid) followed by a check that the connection is still open (if the peer had
// died and its pid been reused before pidfd_open, its end of the connection would be closed).
//
// Events, each reported at most once: a message (every packet, checked by the Manager), the
// connection's hang-up (EOF or error: the app closed it or died), and the process's exit (the
// pidfd became readable; fires after the hang-up when the app dies, typically 1-5 ms later for a
// DPDK process, but alone when the connection was inherited by a child). Measurements:
// ../shared/research/dpdk-probes.md Q4.
//
// Threading: the event-loop thread. Event handlers may destroy the AppWatch.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <sys/types.h>

#include "conf/result.h"
#include "fabric/unique_fd.h"
#include "mgr/event.h"

namespace gazelle::mgr {

using fabric::UniqueFd;

// pidfd syscalls (glibc 2.36's wrappers need <sys/pidfd.h>, which older headers lack).
[[nodiscard]] Result<UniqueFd> pidfd_open_checked(pid_t pid);
// 0 or -errno.
int pidfd_signal(int pidfd, int sig);
// Whether the process of `pidfd` has exited (the pidfd is readable).
[[nodiscard]] bool pidfd_exited(int pidfd);
// Whether the process is on its way out: exited, or every one of its threads has started exiting
// (PF_EXITING in /proc/<pid>/task/*/stat). Use only while pidfd_exited() is false (so that `pid`
// still names this process).
[[nodiscard]] bool process_exiting(pid_t pid, int pidfd);

class AppWatch {
public:
    struct Events {
        // One packet: `data` as read, `size` its real length (larger than data.size() if cut).
        std::function<void(AppWatch&, std::span<const std::byte> data, std::size_t size)> message;
        std::function<void(AppWatch&)> hangup;
        std::function<void(AppWatch&)> exited;
    };

    // Takes over an accepted connection; reads its peer's identity and starts watching.
    // Errors: getsockopt/pidfd_open's, ESRCH (the peer is already gone).
    [[nodiscard]] static Result<std::unique_ptr<AppWatch>> create(sd_event* event, UniqueFd connection,
                                                                  std::uint64_t id, Events events);
    ~AppWatch() = default;
    AppWatch(const AppWatch&) = delete;
    AppWatch& operator=(const AppWatch&) = delete;

    std::uint64_t id() const { return id_; }
    pid_t pid() const { return pid_; }
    uid_t uid() const { return uid_; }
    gid_t gid() const { return gid_; }
    int pidfd() const { return pidfd_.get(); }
    bool connected() const { return connection_.valid(); }
    bool exited() const { return exited_; }

    // Sends one reply (non-blocking). EPIPE/ENOTCONN once the connection is closed.
    [[nodiscard]] Result<void> send(const void* data, std::size_t size);
    // Closes our end of the connection (the app sees EOF); the process stays watched.
    void close_connection();
    // SIGKILL (or `sig`) through the pidfd: never hits a process that reused the pid.
    [[nodiscard]] Result<void> kill(int sig);
    // Blocks until the process has exited or `timeout` passed; true when it exited. For the
    // bounded wait of a forced reclaim only (the event loop is stopped meanwhile).
    [[nodiscard]] bool wait_exit(std::chrono::milliseconds timeout);

    // A timer slot for the owner (attach deadline, linger after hang-up); replaced, or dropped
    // with the AppWatch.
    EventSourcePtr timer;

private:
    AppWatch(std::uint64_t id, Events events) : id_(id), events_(std::move(events)) {}
    static int on_connection(sd_event_source* source, int fd, std::uint32_t revents, void* userdata);
    static int on_pidfd(sd_event_source* source, int fd, std::uint32_t revents, void* userdata);

    std::uint64_t id_;
    Events events_;
    pid_t pid_ = 0;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    UniqueFd connection_;
    UniqueFd pidfd_;
    EventSourcePtr connection_source_;
    EventSourcePtr pidfd_source_;
    bool hung_up_ = false;
    bool exited_ = false;
};

} // namespace gazelle::mgr
