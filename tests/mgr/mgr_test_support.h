// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Support for the tests that run a real gazelle-mgr: a small configuration on a private hugetlbfs
// mount and file prefix, the daemon started with its log (stderr) readable line by line, and the
// app actor (tests/mgr/app_actor.cc). Header-only; every wait is bounded.

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "tests/support/test_support.h"

namespace gazelle::test {

inline std::string mgr_bin() {
#ifdef GAZELLE_MGR_BIN
    return GAZELLE_MGR_BIN;
#else
    return bin_path("../../mgr/gazelle-mgr");
#endif
}

struct MgrConfig {
    std::string huge_dir;
    std::string file_prefix;
    std::string socket;
    unsigned max_apps = 3;
    unsigned heartbeat_timeout_ms = 400;
    // Two user-veth ports on one bridge: veth0 198.18.0.1 with 2 queues (slots 0, 1) and veth1
    // 198.18.0.2 with 1 queue (slot 2).
    std::string ports = R"(ports = (
    { name = "veth0"; type = "user-veth"; mac = "02:00:00:00:00:01"; ipv4 = "198.18.0.1";
      netmask = "255.255.255.0"; queues = 2; bridge = "br0"; rx_ring_size = 256; },
    { name = "veth1"; type = "user-veth"; mac = "02:00:00:00:00:02"; ipv4 = "198.18.0.2";
      netmask = "255.255.255.0"; queues = 1; bridge = "br0"; rx_ring_size = 256; }
);
bridges = ( { name = "br0"; } );
)";

    std::string text() const {
        std::ostringstream out;
        out << "dpdk: { file_prefix = \"" << file_prefix << "\"; huge_dir = \"" << huge_dir
            << "\"; main_lcore = 0; app_lcores = \"1-15\"; app_cpus = \"0-1\";"
            << " extra_args = [\"--no-telemetry\", \"--log-level=lib.eal:error\"]; };\n"
            << "fabric: { max_queues = 8; ring_size = 256; flow_table_size = 4096; listener_table_size = 64;"
            << " mbufs_per_queue = 1023; mbuf_cache_size = 64; l2_pool_mbufs = 1023; };\n"
            << ports << "manager: { socket = \"" << socket << "\"; max_apps = " << max_apps
            << "; heartbeat_timeout_ms = " << heartbeat_timeout_ms << "; reclaim_timeout_ms = 200;"
            << " log_level = \"debug\"; };\n";
        return out.str();
    }
};

// gazelle-mgr with stderr joined to stdout (exec keeps the pid: signals reach the daemon).
inline std::vector<std::string> mgr_command(const std::string& config_path, const std::string& extra = "--no-bus") {
    return {"/bin/sh", "-c", "exec '" + mgr_bin() + "' --config '" + config_path + "' " + extra + " 2>&1"};
}

inline bool is_socket(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// The text after "key=" up to the next space ("" if absent): "slots=0,1" -> "0,1".
inline std::string word(const std::string& line, const std::string& key) {
    const std::string want = " " + key + "=";
    const auto at = (" " + line).find(want);
    if (at == std::string::npos) {
        return "";
    }
    const auto start = at + want.size() - 1;
    return line.substr(start, line.find(' ', start) - start);
}

// "message=..." runs to the end of the line.
inline std::string message_of(const std::string& line) {
    const auto at = line.find("message=");
    return at == std::string::npos ? "" : line.substr(at + 8);
}

inline std::vector<long> numbers(const std::string& list) {
    std::vector<long> out;
    std::istringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        if (!item.empty()) {
            out.push_back(std::stol(item));
        }
    }
    return out;
}

// The number in front of `what` in a describe(ReclaimReport) line: "... 200 mbufs returned" -> 200.
inline long count_before(const std::string& line, const std::string& what) {
    const auto at = line.find(" " + what);
    if (at == std::string::npos) {
        return -1;
    }
    const auto start = line.rfind(' ', at - 1);
    return std::stol(line.substr(start + 1, at - start - 1));
}

inline double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

} // namespace gazelle::test
