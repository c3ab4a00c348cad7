// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Shell commands and a network namespace for the tests that use the kernel as a peer through a
// tap port (the kernel side of the tap moved into a namespace of its own). Header-only; every
// command is bounded by timeout(1); the namespace goes away with its owner, also on failure.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <utility>

namespace gazelle::test {

// Runs a shell command (bounded by `timeout_s`); returns its exit status and stdout.
inline std::pair<int, std::string> run_shell(const std::string& command, int timeout_s = 10) {
    const std::string line = "timeout " + std::to_string(timeout_s) + " " + command + " 2>/dev/null";
    FILE* p = popen(line.c_str(), "r");
    if (p == nullptr) {
        return {-1, ""};
    }
    std::string out;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) {
        out += buf.data();
    }
    const int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A network namespace, removed (with an interface of its name left outside it) on destruction.
class Netns {
public:
    explicit Netns(std::string name) : name_(std::move(name)) {
        (void)run_shell("ip netns del " + name_);
        created_ = run_shell("ip netns add " + name_).first == 0;
    }
    ~Netns() {
        (void)run_shell("ip netns del " + name_);
        (void)run_shell("ip link del " + name_); // in case it never moved
    }
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    bool created() const { return created_; }
    std::pair<int, std::string> exec(const std::string& command, int timeout_s = 10) const {
        return run_shell("ip netns exec " + name_ + " " + command, timeout_s);
    }
    const std::string& name() const { return name_; }

private:
    std::string name_;
    bool created_ = false;
};

} // namespace gazelle::test
