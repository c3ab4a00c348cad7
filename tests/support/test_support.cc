// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/test_support.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fabric/eal.h"

extern char** environ;

namespace gazelle::test {
namespace fs = std::filesystem;

namespace {

std::string unique_tag() {
    static std::atomic<unsigned> counter{0};
    return std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

} // namespace

HugeMount::HugeMount() {
    char tmpl[] = "/tmp/gz-huge-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        error_ = std::string("mkdtemp: ") + std::strerror(errno);
        return;
    }
    path_ = tmpl;
    if (mount("nodev", path_.c_str(), "hugetlbfs", 0, "pagesize=2M,mode=0700") != 0) {
        error_ = "mount -t hugetlbfs " + path_ + ": " + std::strerror(errno) +
                 " (run tools/setup as root first)";
        return;
    }
    mounted_ = true;
}

HugeMount::~HugeMount() {
    if (path_.empty()) {
        return;
    }
    std::error_code ec;
    if (mounted_) {
        for (const auto& entry : fs::directory_iterator(path_, ec)) {
            fs::remove(entry.path(), ec);
        }
        if (umount2(path_.c_str(), MNT_DETACH) != 0) {
            std::fprintf(stderr, "test: umount %s: %s\n", path_.c_str(), std::strerror(errno));
        }
    }
    fs::remove(path_, ec);
}

long free_hugepages() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    long value = -1;
    while (meminfo >> key) {
        if (key == "HugePages_Free:") {
            meminfo >> value;
            return value;
        }
    }
    return -1;
}

EalInstance::EalInstance(const HugeMount& mount, const std::string& tag)
    : prefix_("gzt-" + tag + "-" + unique_tag()), huge_dir_(mount.path()) {}

EalInstance::~EalInstance() {
    std::error_code ec;
    fs::remove_all("/var/run/dpdk/" + prefix_, ec);
}

std::vector<std::string> EalInstance::common(unsigned lcore_id) const {
    const unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    return {"--no-pci", "--file-prefix=" + prefix_, "--huge-dir=" + huge_dir_,
            "--lcores=" + std::to_string(lcore_id) + "@" + std::to_string(lcore_id % ncpu),
            "--log-level=lib.eal:error", "--no-telemetry"};
}

std::vector<std::string> EalInstance::primary_args(unsigned lcore_id, std::vector<std::string> extra) const {
    auto args = common(lcore_id);
    args.emplace_back("--proc-type=primary");
    // Secondaries must map the hugepages at the primary's addresses (see k_base_virtaddr_arg).
    args.emplace_back(gazelle::fabric::k_base_virtaddr_arg);
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

std::vector<std::string> EalInstance::secondary_args(unsigned lcore_id, std::vector<std::string> extra) const {
    auto args = common(lcore_id);
    args.emplace_back("--proc-type=secondary");
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

Child::Child(std::vector<std::string> argv, ProcessGroup group) {
    int out[2];
    int in[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        return;
    }
    if (pipe2(in, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) {
        cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    if (group == ProcessGroup::own) {
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&attributes, 0);
    }
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, cargv[0], &actions, &attributes, cargv.data(), environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(in[0]);
    if (rc != 0) {
        std::fprintf(stderr, "test: spawn %s: %s\n", cargv[0], std::strerror(rc));
        close(out[0]);
        close(in[1]);
        return;
    }
    pid_ = pid;
    out_fd_ = out[0];
    in_fd_ = in[1];
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), out_fd_(std::exchange(other.out_fd_, -1)),
      in_fd_(std::exchange(other.in_fd_, -1)), status_(other.status_), buffer_(std::move(other.buffer_)),
      transcript_(std::move(other.transcript_)) {}

Child::~Child() {
    if (running()) {
        ::kill(pid_, SIGKILL);
        (void)wait(10s);
    }
    if (out_fd_ >= 0) {
        close(out_fd_);
    }
    if (in_fd_ >= 0) {
        close(in_fd_);
    }
}

std::optional<std::string> Child::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            transcript_ += line + "\n";
            return line;
        }
        if (out_fd_ < 0) {
            return std::nullopt;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd pfd{out_fd_, POLLIN, 0};
        const int rc = poll(&pfd, 1, static_cast<int>(left.count()));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc <= 0) {
            return std::nullopt;
        }
        char chunk[4096];
        const ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
        if (n <= 0) {
            close(out_fd_);
            out_fd_ = -1;
            if (!buffer_.empty()) {
                buffer_ += '\n';
            }
            continue;
        }
        buffer_.append(chunk, static_cast<size_t>(n));
    }
}

std::optional<std::string> Child::expect(const std::string& prefix, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        auto line = read_line(left);
        if (!line) {
            return std::nullopt;
        }
        if (line->rfind(prefix, 0) == 0) {
            return line;
        }
    }
}

bool Child::send(const std::string& line) {
    if (in_fd_ < 0) {
        return false;
    }
    const std::string data = line + "\n";
    return ::write(in_fd_, data.data(), data.size()) == static_cast<ssize_t>(data.size());
}

bool Child::kill(int sig) { return running() && ::kill(pid_, sig) == 0; }

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
    if (status_ || pid_ <= 0) {
        return status_;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t rc = waitpid(pid_, &status, WNOHANG);
        if (rc == pid_) {
            status_ = status;
            return status_;
        }
        if (rc < 0 && errno != EINTR) {
            return std::nullopt;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(2ms);
    }
}

bool Child::wait_success(std::chrono::milliseconds timeout) {
    auto status = wait(timeout);
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

std::string source_path(const std::string& relative) { return std::string(GAZELLE_SOURCE_DIR) + "/" + relative; }

long long resident_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) { // "VmRSS:    1234 kB"
            return std::atoll(line.c_str() + 6);
        }
    }
    return -1;
}

std::optional<long long> field(const std::string& line, const std::string& key) {
    std::istringstream in(line);
    std::string word;
    const std::string want = key + "=";
    while (in >> word) {
        if (word.rfind(want, 0) == 0) {
            char* end = nullptr;
            const long long v = std::strtoll(word.c_str() + want.size(), &end, 0);
            if (end != word.c_str() + want.size()) {
                return v;
            }
        }
    }
    return std::nullopt;
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/gz-test-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) {
        path_ = tmpl;
    }
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!path_.empty()) {
        fs::remove_all(path_, ec);
    }
}

std::string TempDir::write(const std::string& name, const std::string& contents) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << contents;
    return file;
}

} // namespace gazelle::test
