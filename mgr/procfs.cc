// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/procfs.h"

#include <cerrno>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "fabric/unique_fd.h"

namespace gazelle::mgr {

std::string read_text_file(const std::string& path, std::size_t max_bytes) {
    fabric::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    std::string text;
    if (!fd) {
        return text;
    }
    char chunk[4096];
    while (text.size() < max_bytes) {
        const ssize_t n = read(fd.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        text.append(chunk, static_cast<std::size_t>(n));
    }
    return text;
}

std::string process_name(pid_t pid) {
    std::string name = read_text_file("/proc/" + std::to_string(pid) + "/comm", 64);
    while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) {
        name.pop_back();
    }
    return name;
}

namespace {

bool readable(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

// The cgroup that holds pid's CPU share: in v1 the cpu hierarchy's path; in v2 the nearest
// ancestor-or-self with the cpu controller enabled (it has a cpu.weight file). "/" for the root.
std::string cpu_cgroup(const std::string& cgroup_file) {
    std::istringstream lines(cgroup_file);
    std::string line;
    std::string unified;
    while (std::getline(lines, line)) {
        const auto first = line.find(':');
        const auto second = first == std::string::npos ? first : line.find(':', first + 1);
        if (second == std::string::npos) {
            continue;
        }
        const std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
        const std::string path = line.substr(second + 1);
        if (controllers.find(",cpu,") != std::string::npos) {
            return path;
        }
        if (controllers == ",,") {
            unified = path;
        }
    }
    for (std::string path = unified; !path.empty() && path != "/";) {
        for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
            if (readable(mount + path + "/cpu.weight")) {
                return path;
            }
        }
        const auto slash = path.rfind('/');
        path = slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
    }
    return "/";
}

} // namespace

std::string cpu_scheduling_group(pid_t pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    const std::string cgroups = read_text_file(proc + "/cgroup", 64 << 10);
    if (cgroups.empty()) {
        return "";
    }
    if (const std::string cgroup = cpu_cgroup(cgroups); cgroup != "/") {
        return "cgroup " + cgroup;
    }
    // Autogroups apply to tasks of the root cgroup only; the file says "/autogroup-52 nice 0".
    if (read_text_file("/proc/sys/kernel/sched_autogroup_enabled", 16).rfind('1', 0) == 0) {
        const std::string autogroup = read_text_file(proc + "/autogroup", 256);
        if (autogroup.size() > 1 && autogroup[0] == '/') {
            return autogroup.substr(1, autogroup.find(' ') - 1);
        }
    }
    return "root";
}

} // namespace gazelle::mgr
