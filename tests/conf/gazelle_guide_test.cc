// SPDX-License-Identifier: BSD-3-Clause
// The sample lstack.conf of Gazelle's user guide (openEuler src-openeuler/gazelle README, "lstack.conf
// 示例"), kept verbatim in fixtures/gazelle_guide_lstack.conf. It must load up to the points where our
// semantics differ, and fail there with named reasons; the variant with only those points fixed
// (fixtures/gazelle_guide_lstack_fixed.conf) must load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "conf/lstack_config.h"
#include "tests/conf/conf_test_util.h"
#include "tests/support/test_support.h"

namespace gazelle::conf {
namespace {

using ::testing::ElementsAre;

const std::string k_original = gazelle::test::source_path("tests/conf/fixtures/gazelle_guide_lstack.conf");
const std::string k_fixed = gazelle::test::source_path("tests/conf/fixtures/gazelle_guide_lstack_fixed.conf");

std::vector<std::string> file_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

TEST(GazelleGuideSample, FixtureIsTheGuidesText) {
    EXPECT_THAT(file_lines(k_original),
                ElementsAre("dpdk_args=[\"--socket-mem\", \"2048,0,0,0\", \"--huge-dir\", \"/mnt/hugepages-2M\", "
                            "\"--proc-type\", \"primary\", \"--legacy-mem\", \"--map-perfect\"]",
                            "use_ltran=1", "kni_switch=0", "low_power_mode=0", "num_cpus=\"2,22\"",
                            "host_addr=\"192.168.1.10\"", "mask_addr=\"255.255.255.0\"", "gateway_addr=\"192.168.1.1\"",
                            "devices=\"aa:bb:cc:dd:ee:ff\""));
}

// ltran, and three EAL arguments: two the manager assigns, one from openEuler's DPDK patches.
TEST(GazelleGuideSample, FailsExactlyWhereOurSemanticsDiffer) {
    auto c = load_lstack_config(k_original);
    const std::string f = k_original + ":";
    EXPECT_THAT(
        test::error_lines(c),
        ElementsAre(f + "1: dpdk_args: '--huge-dir /mnt/hugepages-2M': gazelle-mgr assigns it (dpdk.huge_dir in "
                        "gazelle-mgr.conf); remove it",
                    f + "1: dpdk_args: '--proc-type primary': gazelle-mgr assigns it: applications always attach "
                        "as DPDK secondaries of gazelle-mgr; remove it",
                    f + "1: dpdk_args: '--map-perfect': an openEuler DPDK patch option for ltran; upstream DPDK "
                        "22.11 has no such option; remove it",
                    f + "2: use_ltran: ltran does not exist here: the decentralized fabric replaces it; remove "
                        "the key or set 0"));
}

TEST(GazelleGuideSample, FixedVariantChangesOnlyTheIncompatibleKeys) {
    const auto original = file_lines(k_original);
    const auto fixed = file_lines(k_fixed);
    ASSERT_EQ(original.size(), fixed.size());
    std::vector<std::size_t> changed;
    for (std::size_t i = 0; i < original.size(); ++i) {
        if (original[i] != fixed[i]) {
            changed.push_back(i + 1);
        }
    }
    EXPECT_EQ(changed, (std::vector<std::size_t>{1, 2})); // dpdk_args and use_ltran
}

TEST(GazelleGuideSample, FixedVariantLoadsWithTheRemainingDifferencesAsWarnings) {
    auto c = load_lstack_config(k_fixed);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(to_string(*c->host_addr), "192.168.1.10");
    EXPECT_EQ(to_string(*c->mask_addr), "255.255.255.0");
    EXPECT_EQ(to_string(*c->gateway_addr), "192.168.1.1");
    EXPECT_EQ(to_string(*c->devices), "aa:bb:cc:dd:ee:ff");
    EXPECT_EQ(c->num_cpus, (std::vector<unsigned>{2, 22}));
    EXPECT_EQ(c->stack_num, 2u); // one stack thread per listed CPU
    EXPECT_FALSE(c->low_power_mode);
    EXPECT_TRUE(c->dpdk_args.empty());
    std::vector<std::string> warnings;
    for (const auto& w : c->warnings) {
        warnings.push_back(to_string(w));
    }
    const std::string f = k_fixed + ":";
    EXPECT_THAT(warnings,
                ElementsAre(f + "1: dpdk_args: '--socket-mem 2048,0,0,0' has no effect: memory belongs to gazelle-mgr, "
                                "the DPDK primary (dpdk in gazelle-mgr.conf)",
                            f + "1: dpdk_args: '--legacy-mem' has no effect: memory belongs to gazelle-mgr, the DPDK "
                                "primary (dpdk in gazelle-mgr.conf)"));
}

// Gazelle read use_ltran as 1 when it was absent; here an absent key means no ltran.
TEST(GazelleGuideSample, AbsentUseLtranIsNotLtran) {
    std::ifstream in(k_fixed);
    std::stringstream text;
    text << in.rdbuf();
    std::string without = text.str();
    without.erase(without.find("use_ltran=0\n"), 12);
    EXPECT_TRUE(parse_lstack_config(without, "no-ltran.conf").ok());
}

} // namespace
} // namespace gazelle::conf
