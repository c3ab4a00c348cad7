// SPDX-License-Identifier: BSD-3-Clause
// gazelle-check-config: the library function in-process, and the installed binary as a child.
#include "conf/check_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "conf/lstack_config.h"
#include "tests/support/test_support.h"

namespace gazelle::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_guide = gazelle::test::source_path("tests/conf/fixtures/gazelle_guide_lstack.conf");
const std::string k_guide_fixed = gazelle::test::source_path("tests/conf/fixtures/gazelle_guide_lstack_fixed.conf");
const std::string k_mgr_sample = gazelle::test::source_path("conf/gazelle-mgr.conf");

struct Outcome {
    int status = -1;
    std::string out;
    std::string err;
};

Outcome run(const std::vector<std::string>& args) {
    std::ostringstream out;
    std::ostringstream err;
    Outcome r;
    r.status = check_config_main(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

TEST(CheckConfig, ValidFilePrintsEffectiveValuesAndWarnings) {
    const Outcome r = run({"--lstack", k_guide_fixed});
    EXPECT_EQ(r.status, k_check_valid);
    EXPECT_THAT(r.out, HasSubstr("host_addr = \"192.168.1.10\";\n"));
    EXPECT_THAT(r.out, HasSubstr("stack_num = 2;\n"));
    EXPECT_THAT(r.err,
                HasSubstr("warning: " + k_guide_fixed + ":1: dpdk_args: '--socket-mem 2048,0,0,0' has no effect"));
    EXPECT_THAT(r.err, HasSubstr(k_guide_fixed + ": valid, 2 warnings\n"));
}

TEST(CheckConfig, InvalidFilePrintsEveryError) {
    const Outcome r = run({"--lstack", k_guide});
    EXPECT_EQ(r.status, k_check_invalid);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("error: " + k_guide + ":1: dpdk_args: '--proc-type primary'"));
    EXPECT_THAT(r.err, HasSubstr("error: " + k_guide + ":2: use_ltran: ltran does not exist here"));
    EXPECT_THAT(r.err, HasSubstr(k_guide + ": invalid, 4 errors\n"));
}

TEST(CheckConfig, QuietSkipsTheValues) {
    const Outcome r = run({"-q", "--mgr", k_mgr_sample});
    EXPECT_EQ(r.status, k_check_valid);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, k_mgr_sample + ": valid, 0 warnings\n");
}

TEST(CheckConfig, ChecksBothFilesAndFailsIfEitherIsInvalid) {
    const Outcome r = run({"--mgr", k_mgr_sample, "--lstack", k_guide, "--quiet"});
    EXPECT_EQ(r.status, k_check_invalid);
    EXPECT_THAT(r.err, HasSubstr(k_mgr_sample + ": valid"));
    EXPECT_THAT(r.err, HasSubstr(k_guide + ": invalid"));
}

TEST(CheckConfig, UnreadableFileIsInvalid) {
    const Outcome r = run({"--mgr", "/nonexistent/gazelle-mgr.conf"});
    EXPECT_EQ(r.status, k_check_invalid);
    EXPECT_EQ(r.err, "error: cannot open '/nonexistent/gazelle-mgr.conf': No such file or directory\n"
                     "/nonexistent/gazelle-mgr.conf: invalid, 1 error\n");
}

TEST(CheckConfig, LstackWithoutFileUsesLstackConfPath) {
    ::setenv("LSTACK_CONF_PATH", k_guide_fixed.c_str(), 1);
    const Outcome r = run({"--lstack", "-q"});
    ::unsetenv("LSTACK_CONF_PATH");
    EXPECT_EQ(r.status, k_check_valid);
    EXPECT_THAT(r.err, HasSubstr(k_guide_fixed + ": valid"));
}

TEST(CheckConfig, MgrWithoutFileUsesTheDefaultPath) {
    const Outcome r = run({"--mgr"});
    EXPECT_THAT(r.err, HasSubstr("/etc/gazelle/gazelle-mgr.conf"));
}

TEST(CheckConfig, UsageErrors) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {}, {"--frob"}, {"--mgr", "a", "b"}, {"--mgr", "--mgr"}, {"--reference"}, {"--reference", "x"}, {"-q"}}) {
        const Outcome r = run(args);
        EXPECT_EQ(r.status, k_check_usage) << ::testing::PrintToString(args);
        EXPECT_THAT(r.err, HasSubstr("Usage: gazelle-check-config"));
    }
    const Outcome help = run({"--help"});
    EXPECT_EQ(help.status, k_check_valid);
    EXPECT_THAT(help.out, HasSubstr("Exit status: 0 valid, 1 invalid or unreadable, 2 usage error."));
}

TEST(CheckConfig, ReferencePrintsTheGeneratedTables) {
    const Outcome r = run({"--reference", "lstack"});
    EXPECT_EQ(r.status, k_check_valid);
    EXPECT_THAT(r.out, HasSubstr("| `use_ltran` | error | `0` |"));
    EXPECT_THAT(run({"--reference", "mgr"}).out, HasSubstr("| `fabric.ring_size` |"));
}

// --- the binary ---------------------------------------------------------------------------

// Runs the tool through /bin/sh to capture stderr with stdout; returns the exit status and output.
Outcome spawn(const std::string& args) {
    gazelle::test::Child child({"/bin/sh", "-c", std::string(GAZELLE_CHECK_CONFIG_BIN) + " " + args + " 2>&1"});
    Outcome r;
    while (auto line = child.read_line()) {
        r.out += *line + "\n";
    }
    const auto status = child.wait();
    if (status && WIFEXITED(*status)) {
        r.status = WEXITSTATUS(*status);
    }
    return r;
}

TEST(CheckConfigBinary, ExitCodesAndMessages) {
    const Outcome good = spawn("--lstack " + k_guide_fixed);
    EXPECT_EQ(good.status, 0) << good.out;
    EXPECT_THAT(good.out, HasSubstr("num_cpus = \"2,22\";"));
    EXPECT_THAT(good.out, HasSubstr("valid, 2 warnings"));

    gazelle::test::TempDir dir;
    const std::string bad = dir.write("lstack.conf", "stack_num = 1;\nnic_read_num = 32;\nhost_addr = \"10.0.0\";\n"
                                                     "tcp_conn_count = 99999;\n");
    const Outcome invalid = spawn("--lstack " + bad);
    EXPECT_EQ(invalid.status, 1) << invalid.out;
    EXPECT_THAT(invalid.out,
                HasSubstr("error: " + bad + ":2: nic_read_num: unknown key (did you mean 'nic_read_number'?)"));
    EXPECT_THAT(invalid.out, HasSubstr("error: " + bad + ":3: host_addr: '10.0.0' is not a valid IPv4 address"));
    EXPECT_THAT(invalid.out, HasSubstr("error: " + bad + ":4: tcp_conn_count: out of range: 99999 is not in 1..20000"));
    EXPECT_THAT(invalid.out, Not(HasSubstr("stack_num = 1;")));

    const Outcome mgr = spawn("--mgr " + k_mgr_sample);
    EXPECT_EQ(mgr.status, 0) << mgr.out;
    EXPECT_THAT(mgr.out, HasSubstr("name = \"veth0\";"));

    const Outcome usage = spawn("--bogus");
    EXPECT_EQ(usage.status, 2) << usage.out;
    EXPECT_THAT(usage.out, HasSubstr("unexpected argument '--bogus'"));
}

} // namespace
} // namespace gazelle::conf
