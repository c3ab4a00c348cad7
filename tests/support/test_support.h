// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Test support for tests that start real processes: a private hugetlbfs mount, child processes
// with a line protocol on their stdout, EAL argument lists with a unique --file-prefix, and
// temporary files. Everything is RAII: a failing test still kills its children, unmounts and
// removes DPDK's runtime files.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace gazelle::test {

using namespace std::chrono_literals;

// A hugetlbfs mount of our own under /tmp (a DPDK primary deletes every unlocked page file in its
// --huge-dir, so concurrent tests never share one). Requires root and reserved 2 MiB hugepages.
class HugeMount {
public:
    HugeMount();
    ~HugeMount();
    HugeMount(const HugeMount&) = delete;
    HugeMount& operator=(const HugeMount&) = delete;

    const std::string& path() const { return path_; }
    bool ok() const { return mounted_; }
    const std::string& error() const { return error_; }

private:
    std::string path_;
    std::string error_;
    bool mounted_ = false;
};

// Free 2 MiB hugepages right now (HugePages_Free from /proc/meminfo).
long free_hugepages();

// EAL arguments for one DPDK instance ("fabric" of processes sharing a --file-prefix).
// Removes /var/run/dpdk/<prefix> on destruction.
class EalInstance {
public:
    explicit EalInstance(const HugeMount& mount, const std::string& tag = "t");
    ~EalInstance();
    EalInstance(const EalInstance&) = delete;
    EalInstance& operator=(const EalInstance&) = delete;

    const std::string& prefix() const { return prefix_; }

    // Arguments for a primary / secondary with the given lcore id pinned on cpu (lcore_id % ncpu
    // by default). Extra EAL args (e.g. --vdev) are appended.
    std::vector<std::string> primary_args(unsigned lcore_id = 0, std::vector<std::string> extra = {}) const;
    std::vector<std::string> secondary_args(unsigned lcore_id, std::vector<std::string> extra = {}) const;

private:
    std::vector<std::string> common(unsigned lcore_id) const;
    std::string prefix_;
    std::string huge_dir_;
};

// A child process with stdin/stdout pipes. stdout is read line by line; stderr is inherited so
// its diagnostics land in the ctest log. The destructor SIGKILLs and reaps a child still running.
class Child {
public:
    // own: the child leads a new process group (kill(-pid()) reaches what it forks), in the
    // test's session. Not a session of its own (setsid): a session is an autogroup, a CPU
    // scheduling group, and stacks of different groups sharing a CPU can starve each other
    // (doc/reliability.md, "Stacks in different CPU scheduling groups").
    enum class ProcessGroup { inherit, own };

    // argv[0] is the program path. Returns a child that failed to start as !running().
    explicit Child(std::vector<std::string> argv, ProcessGroup group = ProcessGroup::inherit);
    ~Child();
    Child(Child&& other) noexcept;
    Child& operator=(Child&&) = delete;
    Child(const Child&) = delete;

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0 && !status_; }

    // Next stdout line, or nullopt on timeout / EOF.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout = 20s);
    // Reads lines until one starts with prefix; returns it, or nullopt (timeout / EOF).
    // Skipped lines are kept in transcript().
    std::optional<std::string> expect(const std::string& prefix, std::chrono::milliseconds timeout = 20s);
    // Writes one line to the child's stdin.
    bool send(const std::string& line);

    bool kill(int sig);
    // Waits for exit; returns the wait status, or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout = 20s);
    // Convenience: exited normally with code 0.
    bool wait_success(std::chrono::milliseconds timeout = 20s);

    const std::string& transcript() const { return transcript_; }

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    int in_fd_ = -1;
    std::optional<int> status_;
    std::string buffer_;
    std::string transcript_;
};

// Path of a test helper executable built next to the test binary (GAZELLE_TEST_BIN_DIR is
// defined per test target, so this stays inline).
inline std::string bin_path(const std::string& name) {
#ifdef GAZELLE_TEST_BIN_DIR
    return std::string(GAZELLE_TEST_BIN_DIR) + "/" + name;
#else
    return name;
#endif
}
// Path inside the source tree.
std::string source_path(const std::string& relative);

// Parses "key=value" from a line like "RESULT a=1 b=2"; nullopt if absent.
std::optional<long long> field(const std::string& line, const std::string& key);

// Resident memory of a process (VmRSS of /proc/<pid>/status), KiB; -1 when it is gone.
long long resident_kib(pid_t pid);

// A file in a fresh temporary directory, removed with it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& contents) const;

private:
    std::string path_;
};

} // namespace gazelle::test
