// SPDX-License-Identifier: BSD-3-Clause
#include "mgr/procfs.h"

#include <cerrno>

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

} // namespace gazelle::mgr
