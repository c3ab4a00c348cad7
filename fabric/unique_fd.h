// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// UniqueFd: the one owner of a file descriptor (move-only, closes on destruction).
//
// Control path only (the manager, the registration client, tools); the packet path holds no fds.

#include <utility>

#include <unistd.h>

namespace gazelle::fabric {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other.fd_, -1));
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }

    // Gives up ownership without closing.
    [[nodiscard]] int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) {
            (void)::close(fd_); // nothing useful to do about EINTR/EIO on close of a socket or pidfd
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

} // namespace gazelle::fabric
