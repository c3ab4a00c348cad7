// SPDX-License-Identifier: BSD-3-Clause
// conf/gazelle-mgr.service and conf/gazelle-hugepages.service pass `systemd-analyze verify`, run
// against a private root (--root) that has the system's unit files, the two units and the
// programs their Exec lines name (gazelle-mgr is the one just built). Skipped when
// systemd-analyze is not installed. Also checks the settings the daemon relies on.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "tests/mgr/mgr_test_support.h"

namespace gazelle::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string find_in_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const fs::path candidate = fs::path(dir) / program;
        if (access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return "";
}

// Program paths of the Exec*= lines ("-", "@", ":", "+", "!" prefixes stripped).
std::vector<std::string> exec_paths(const std::string& unit) {
    std::vector<std::string> paths;
    std::istringstream lines(unit);
    std::string line;
    const std::regex exec(R"(^Exec[A-Za-z]*=\s*[-@:+!]*(/[^\s]+))");
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_search(line, m, exec)) {
            paths.push_back(m[1]);
        }
    }
    return paths;
}

struct Verify {
    int code = -1;
    std::string output;
};

class SystemdUnit : public ::testing::Test {
protected:
    void SetUp() override {
        analyze_ = find_in_path("systemd-analyze");
        if (analyze_.empty()) {
            GTEST_SKIP() << "systemd-analyze is not installed";
        }
        std::error_code ec;
        fs::create_directories(root_.path() + "/usr/lib/systemd", ec);
        fs::copy("/usr/lib/systemd/system", root_.path() + "/usr/lib/systemd/system",
                 fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        ASSERT_FALSE(ec) << "copying the system's units: " << ec.message();
        fs::create_directories(root_.path() + "/etc/systemd/system", ec);
    }

    // Installs `text` as unit `name`, and every program its Exec lines name.
    void install(const std::string& name, const std::string& text) {
        std::ofstream(root_.path() + "/etc/systemd/system/" + name) << text;
        for (const std::string& program : exec_paths(text)) {
            const fs::path target = root_.path() + program;
            std::error_code ec;
            fs::create_directories(target.parent_path(), ec);
            const std::string source =
                program == "/usr/bin/gazelle-mgr" ? mgr_bin() : fs::canonical(program, ec).string();
            ASSERT_FALSE(source.empty()) << program << " does not exist on this machine";
            fs::copy_file(source, target, fs::copy_options::overwrite_existing, ec);
            ASSERT_FALSE(ec) << "copying " << source << ": " << ec.message();
        }
    }

    Verify verify(const std::string& units) {
        const std::string out = root_.path() + "/verify.out";
        const std::string command =
            "'" + analyze_ + "' verify --root='" + root_.path() + "' " + units + " > '" + out + "' 2>&1";
        const int status = std::system(command.c_str());
        return Verify{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out)};
    }

    std::string analyze_;
    TempDir root_;
};

TEST_F(SystemdUnit, ShippedUnitsVerify) {
    const std::string mgr = slurp(source_path("conf/gazelle-mgr.service"));
    const std::string huge = slurp(source_path("conf/gazelle-hugepages.service"));
    ASSERT_FALSE(mgr.empty());
    ASSERT_FALSE(huge.empty());
    install("gazelle-mgr.service", mgr);
    install("gazelle-hugepages.service", huge);
    const Verify v = verify("gazelle-mgr.service gazelle-hugepages.service");
    EXPECT_EQ(v.code, 0) << v.output;
    EXPECT_EQ(v.output, "") << "systemd-analyze verify warned";
}

TEST_F(SystemdUnit, VerifyCatchesABrokenUnit) {
    // The same check fails on a mistake, so a pass above means something.
    std::string mgr = slurp(source_path("conf/gazelle-mgr.service"));
    mgr =
        std::regex_replace(mgr, std::regex("ExecStart=/usr/bin/gazelle-mgr"), "ExecStart=/usr/bin/gazelle-mgr-missing");
    std::ofstream(root_.path() + "/etc/systemd/system/gazelle-mgr.service") << mgr;
    install("gazelle-hugepages.service", slurp(source_path("conf/gazelle-hugepages.service")));
    const Verify v = verify("gazelle-mgr.service");
    EXPECT_NE(v.code, 0) << v.output;
    EXPECT_NE(v.output.find("gazelle-mgr-missing"), std::string::npos) << v.output;
}

TEST(SystemdUnitText, HasWhatTheDaemonReliesOn) {
    const std::string mgr = slurp(source_path("conf/gazelle-mgr.service"));
    for (const char* setting :
         {"Type=notify", "NotifyAccess=main", "WatchdogSec=10s", "Restart=on-failure", "RuntimeDirectory=gazelle",
          "LimitMEMLOCK=infinity", "ProtectSystem=full", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
          "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6",
          "Requires=gazelle-hugepages.service"}) {
        EXPECT_NE(mgr.find(std::string("\n") + setting + "\n"), std::string::npos) << setting;
    }
}

} // namespace
} // namespace gazelle::test
