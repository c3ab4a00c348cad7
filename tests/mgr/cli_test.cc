// SPDX-License-Identifier: BSD-3-Clause
// gazelle-mgr's command line: --version, --help, usage errors (exit 2), --check-config (the same
// check and exit codes as gazelle-check-config --mgr: 0 valid, 1 invalid or unreadable) and a
// --config that does not exist (exit 1, before touching DPDK).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include "conf/check_config.h"
#include "tests/mgr/mgr_test_support.h"

namespace gazelle::test {
namespace {

struct CommandResult {
    int code = -1;
    std::string out;
    std::string err;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Runs gazelle-mgr with `args` (already shell-quoted where needed).
CommandResult run_mgr(const TempDir& dir, const std::string& args) {
    const std::string out = dir.path() + "/out";
    const std::string err = dir.path() + "/err";
    const std::string command = "'" + mgr_bin() + "' " + args + " > '" + out + "' 2> '" + err + "' < /dev/null";
    const int status = std::system(command.c_str());
    CommandResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

constexpr char k_valid[] = R"(dpdk: { file_prefix = "cli"; };
manager: { max_apps = 4; log_level = "debug"; };
)";
constexpr char k_invalid[] = R"(dpdk: { file_prefix = "cli"; no_such_key = 1; };
manager: { max_apps = 0; };
)";

TEST(Cli, VersionAndHelp) {
    TempDir dir;
    CommandResult r = run_mgr(dir, "--version");
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out.rfind("gazelle-mgr ", 0), 0u) << r.out;
    r = run_mgr(dir, "--help");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("--check-config [FILE]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--no-bus"), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorsExitWithTwo) {
    TempDir dir;
    CommandResult r = run_mgr(dir, "--frobnicate");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("unknown argument '--frobnicate'"), std::string::npos) << r.err;
    r = run_mgr(dir, "--config");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--config needs a value"), std::string::npos) << r.err;
    r = run_mgr(dir, "--bus session --no-bus");
    EXPECT_EQ(r.code, 2);
}

TEST(Cli, CheckConfigIsGazelleCheckConfigMgr) {
    TempDir dir;
    const std::string valid = dir.write("valid.conf", k_valid);
    const std::string invalid = dir.write("invalid.conf", k_invalid);
    for (const auto& [file, expected] :
         {std::pair{valid, conf::k_check_valid}, std::pair{invalid, conf::k_check_invalid},
          std::pair{dir.path() + "/missing.conf", conf::k_check_invalid}}) {
        SCOPED_TRACE(file);
        const CommandResult r = run_mgr(dir, "--check-config '" + file + "'");
        EXPECT_EQ(r.code, expected) << r.err;
        // Exactly what the shared check (gazelle-check-config --mgr) prints.
        std::ostringstream out;
        std::ostringstream err;
        EXPECT_EQ(conf::check_manager_config_file(file, out, err), expected);
        EXPECT_EQ(r.out, out.str());
        EXPECT_EQ(r.err, err.str());
    }
    // The file of --config is the one checked when --check-config has none.
    CommandResult r = run_mgr(dir, "--config '" + invalid + "' --check-config");
    EXPECT_EQ(r.code, conf::k_check_invalid);
    EXPECT_NE(r.err.find("no_such_key"), std::string::npos) << r.err;
    r = run_mgr(dir, "--check-config '" + valid + "'");
    EXPECT_NE(r.out.find("max_apps = 4;"), std::string::npos) << r.out;
    // The shipped sample is valid.
    r = run_mgr(dir, "--check-config '" + source_path("conf/gazelle-mgr.conf") + "'");
    EXPECT_EQ(r.code, conf::k_check_valid) << r.err;
}

TEST(Cli, MissingExplicitConfigIsAnError) {
    TempDir dir;
    const CommandResult r = run_mgr(dir, "--no-bus --config '" + dir.path() + "/nope.conf'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("Failed to load configuration '" + dir.path() + "/nope.conf': cannot open"), std::string::npos)
        << r.err;
}

TEST(Cli, InvalidConfigIsReportedWithItsLines) {
    TempDir dir;
    const std::string invalid = dir.write("invalid.conf", k_invalid);
    const CommandResult r = run_mgr(dir, "--no-bus --config '" + invalid + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(invalid + ":1"), std::string::npos) << r.err;
    // One line: the findings are joined, a log line never spans lines.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

} // namespace
} // namespace gazelle::test
