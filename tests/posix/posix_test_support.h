// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Fixture of the posix/ tests: a real gazelle-mgr (--no-bus) on a private hugetlbfs mount and
// file prefix with the default two-port layout (veth0 198.18.0.1 for servers, 4 queues; veth1
// 198.18.0.2 for clients, 2 queues, one user-vbridge), lstack.conf files for both sides, and
// helpers to start a program on the kernel or preloaded with liblstack.so, with its stderr
// joined to its stdout. Everything is bounded and cleaned up by RAII.

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include "tests/mgr/mgr_test_support.h"
#include "tests/support/test_support.h"

namespace gazelle::test {

inline std::string lstack_lib() {
#ifdef GAZELLE_LSTACK_LIB
    return GAZELLE_LSTACK_LIB;
#else
    return bin_path("../../posix/liblstack.so");
#endif
}

// Libraries that must precede liblstack.so in LD_PRELOAD (the ASan runtime in sanitizer builds).
inline std::string preload_list() {
#ifdef GAZELLE_PRELOAD_FIRST
    const std::string first = GAZELLE_PRELOAD_FIRST;
#else
    const std::string first;
#endif
    return first.empty() ? lstack_lib() : first + " " + lstack_lib();
}

// True in sanitizer builds (a runtime is preloaded before liblstack.so).
inline bool sanitizer_preload() {
#ifdef GAZELLE_PRELOAD_FIRST
    return !std::string(GAZELLE_PRELOAD_FIRST).empty();
#else
    return false;
#endif
}

inline const char* k_server_ip = "198.18.0.1";
inline const char* k_client_ip = "198.18.0.2";

// Single-quotes a word for /bin/sh.
inline std::string sh_quote(const std::string& word) {
    std::string out = "'";
    for (char c : word) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

inline bool installed(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

#define REQUIRE_PROGRAM(path)                                                   \
    do {                                                                        \
        if (!::gazelle::test::installed(path)) {                                \
            GTEST_SKIP() << path << " is not installed (run tools/setup)";     \
        }                                                                       \
    } while (0)

// Kills a process group when it goes out of scope (nginx workers outlive a killed master).
struct GroupKiller {
    pid_t group = 0;
    ~GroupKiller() {
        if (group > 0) {
            (void)kill(-group, SIGKILL);
        }
    }
};

class PosixFabricTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(huge_.ok()) << huge_.error();
        config_.huge_dir = huge_.path();
        config_.file_prefix = eal_.prefix();
        config_.socket = dir_.path() + "/mgr.sock";
        config_.max_apps = 8;
        config_.heartbeat_timeout_ms = 3000;
        config_.ports = R"(ports = (
    { name = "veth0"; type = "user-veth"; mac = "02:00:00:00:00:01"; ipv4 = "198.18.0.1";
      netmask = "255.255.255.0"; queues = 4; bridge = "br0"; rx_ring_size = 512; },
    { name = "veth1"; type = "user-veth"; mac = "02:00:00:00:00:02"; ipv4 = "198.18.0.2";
      netmask = "255.255.255.0"; queues = 2; bridge = "br0"; rx_ring_size = 512; }
);
bridges = ( { name = "br0"; } );
)";
        std::string text = config_.text();
        // Room for several apps with many connections (each connection holds a few mbufs).
        const std::string from = "mbufs_per_queue = 1023";
        if (const auto at = text.find(from); at != std::string::npos) {
            text.replace(at, from.size(), "mbufs_per_queue = 4095");
        }
        // And an L2 pool in proportion (the shipped default is twice a queue's pool): with 1023 a
        // preloaded iperf3 -u at 200 Mbit/s lost 15-17% of its datagrams (4-10% without an L2
        // pool, 1-6% with 8191).
        const std::string l2_from = "l2_pool_mbufs = 1023";
        if (const auto at = text.find(l2_from); at != std::string::npos) {
            text.replace(at, l2_from.size(), "l2_pool_mbufs = 8191");
        }
        const std::string level = "log_level = \"debug\"";
        if (const auto at = text.find(level); at != std::string::npos) {
            text.replace(at, level.size(), "log_level = \"info\"");
        }
        for (const auto& [from_text, to_text] : mgr_config_edits_) {
            const auto at = text.find(from_text);
            ASSERT_NE(at, std::string::npos) << "gazelle-mgr.conf has no \"" << from_text << "\" to edit:\n" << text;
            text.replace(at, from_text.size(), to_text);
        }
        mgr_config_path_ = dir_.write("gazelle-mgr.conf", text);
        mgr_.emplace(mgr_command(mgr_config_path_, mgr_args_));
        const auto ready = mgr_->expect("Ready:", 30s);
        ASSERT_TRUE(ready) << "gazelle-mgr did not get ready:\n" << mgr_->transcript();
        server_conf_ = lstack_conf("server", k_server_ip);
        client_conf_ = lstack_conf("client", k_client_ip);
    }

    // An lstack.conf for one side. `extra` is appended (more keys).
    std::string lstack_conf(const std::string& name, const std::string& host, const std::string& extra = "",
                            const std::string& log_level = "info") {
        std::string text = "host_addr = \"" + host + "\";\nmgr_socket = \"" + config_.socket +
                           "\";\nstack_interrupt = 1;\nlog_level = \"" + log_level + "\";\n" + extra;
        return dir_.write(name + ".conf", text);
    }

    // argv run with stderr joined to stdout, on the kernel.
    static std::vector<std::string> plain(const std::vector<std::string>& argv) {
        std::string cmd = "exec";
        for (const auto& a : argv) {
            cmd += " " + sh_quote(a);
        }
        return {"/bin/sh", "-c", cmd + " 2>&1"};
    }

    // argv run preloaded with liblstack.so and `conf`. GAZELLE_BIND_PROCNAME names the program,
    // so /bin/sh and env, which inherit LD_PRELOAD on the way, stay inert.
    std::vector<std::string> preloaded(const std::string& conf, const std::vector<std::string>& argv,
                                       const std::string& extra_env = "") const {
        std::string program = argv.front();
        if (const auto slash = program.rfind('/'); slash != std::string::npos) {
            program = program.substr(slash + 1);
        }
        std::string cmd = "exec env LD_PRELOAD=" + sh_quote(preload_list()) + " ASAN_OPTIONS=detect_leaks=0 LSTACK_CONF_PATH=" + sh_quote(conf) +
                          " GAZELLE_BIND_PROCNAME=" + sh_quote(program) + " " + extra_env;
        for (const auto& a : argv) {
            cmd += " " + sh_quote(a);
        }
        return {"/bin/sh", "-c", cmd + " 2>&1"};
    }

    // Reads the manager's output (it must not fill its pipe), keeping it.
    void drain_mgr(std::chrono::milliseconds wait = 0ms) {
        const auto deadline = std::chrono::steady_clock::now() + wait;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto line = mgr_->read_line(std::max(left, 10ms));
            if (!line) {
                if (std::chrono::steady_clock::now() >= deadline) {
                    return;
                }
                continue;
            }
            mgr_log_.push_back(*line);
        }
    }

    // The manager's "Reclaimed app <name>[<pid>] queue" lines seen so far for pid.
    std::vector<std::string> reclaims_of(pid_t pid) {
        drain_mgr();
        std::vector<std::string> out;
        const std::string needle = "[" + std::to_string(pid) + "] queue";
        for (const auto& line : mgr_log_) {
            if (line.rfind("Reclaimed app", 0) == 0 && line.find(needle) != std::string::npos) {
                out.push_back(line);
            }
        }
        return out;
    }

    // Waits (bounded) until pid's reclaim lines appeared; checks that the manager found nothing
    // left behind: 0 rules, 0 listeners, 0 mbufs returned, and that the app had detached.
    void expect_clean_detach(pid_t pid, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::vector<std::string> lines;
        bool detached = false;
        while (std::chrono::steady_clock::now() < deadline) {
            drain_mgr(50ms);
            lines = reclaims_of(pid);
            detached = false;
            for (const auto& line : mgr_log_) {
                if (line.find("[" + std::to_string(pid) + "] detached and is gone") != std::string::npos) {
                    detached = true;
                }
            }
            if (!lines.empty() && detached) {
                break;
            }
        }
        ASSERT_FALSE(lines.empty()) << "no reclaim line for pid " << pid;
        EXPECT_TRUE(detached) << "pid " << pid << " did not detach cleanly";
        for (const auto& line : lines) {
            EXPECT_EQ(count_before(line, "mbufs returned"), 0) << line;
            EXPECT_EQ(count_before(line, "rules,"), 0) << line;
            EXPECT_EQ(count_before(line, "listeners,"), 0) << line;
        }
    }

    // Waits (bounded) until the manager logged that `program` attached: a listener made before
    // its process attached reaches the fabric at its first use, not at listen().
    void wait_attached(const std::string& program, std::size_t count = 1) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (attached_pids(program).size() < count && std::chrono::steady_clock::now() < deadline) {
            drain_mgr(20ms);
        }
        ASSERT_GE(attached_pids(program).size(), count) << program << " did not attach";
        std::this_thread::sleep_for(50ms); // its listener rule follows the attach
    }

    // Pids of the manager's "Attached app <program>[pid]" lines so far.
    std::vector<pid_t> attached_pids(const std::string& program) {
        drain_mgr();
        std::vector<pid_t> pids;
        const std::string prefix = "Attached app " + program + "[";
        for (const auto& line : mgr_log_) {
            if (line.rfind(prefix, 0) == 0) {
                pids.push_back(static_cast<pid_t>(std::stol(line.substr(prefix.size()))));
            }
        }
        return pids;
    }

    // Lines of a child until one starts with `last` (included), EOF or the timeout; `last` empty:
    // until EOF or the timeout.
    static std::vector<std::string> lines_until(Child& child, const std::string& last,
                                                std::chrono::milliseconds timeout = 30s) {
        std::vector<std::string> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto line = child.read_line(
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
            if (!line) {
                break;
            }
            out.push_back(*line);
            if (!last.empty() && line->rfind(last, 0) == 0) {
                break;
            }
        }
        return out;
    }

    // The lines that must match between runs: not '#' notes, not liblstack.so's log.
    static std::vector<std::string> comparable(const std::vector<std::string>& lines) {
        std::vector<std::string> out;
        for (const auto& l : lines) {
            if (l.empty() || l[0] == '#' || l.rfind("gazelle[", 0) == 0 || l.rfind("EAL:", 0) == 0) {
                continue;
            }
            out.push_back(l);
        }
        return out;
    }

    static std::string joined(const std::vector<std::string>& lines) {
        std::string out;
        for (const auto& l : lines) {
            out += l + "\n";
        }
        return out;
    }

    HugeMount huge_;
    TempDir dir_;
    EalInstance eal_{huge_, "px"};
    MgrConfig config_;
    std::string mgr_args_ = "--no-bus"; // a subclass may set "--bus ADDRESS" before SetUp()
    // (from, to) replacements a subclass makes in gazelle-mgr.conf before SetUp() starts it.
    std::vector<std::pair<std::string, std::string>> mgr_config_edits_;
    std::string mgr_config_path_;
    std::optional<Child> mgr_;
    std::vector<std::string> mgr_log_;
    std::string server_conf_;
    std::string client_conf_;
};

} // namespace gazelle::test
