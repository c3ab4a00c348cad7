// SPDX-License-Identifier: BSD-3-Clause
// conf/gazelle-mgr.conf and conf/lstack.conf state the built-in defaults: as shipped (all keys
// commented out) and uncommented they must load to exactly the defaults, so they cannot drift.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "conf/key_info.h"
#include "conf/lstack_config.h"
#include "conf/manager_config.h"
#include "tests/support/test_support.h"

namespace gazelle::conf {
namespace {

using ::testing::HasSubstr;

const std::string k_mgr_sample = gazelle::test::source_path("conf/gazelle-mgr.conf");
const std::string k_lstack_sample = gazelle::test::source_path("conf/lstack.conf");

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The samples' convention: "#" at the start of a line comments out a setting, "//" starts an
// explanation. Removing the first "#" of every line enables every setting.
std::string uncomment(const std::string& text) {
    std::istringstream in(text);
    std::string out;
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("#")) {
            line.erase(0, 1);
        }
        out += line + "\n";
    }
    return out;
}

// The settings of a text without comments and indentation: what the file states.
std::vector<std::string> settings(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
        const auto start = line.find_first_not_of(' ');
        if (start == std::string::npos || line.compare(start, 2, "//") == 0 || line[start] == '#') {
            continue;
        }
        out.push_back(line.substr(start));
    }
    return out;
}

TEST(ShippedSamples, AsShippedTheyLoadToTheDefaults) {
    auto mgr = load_manager_config(k_mgr_sample);
    ASSERT_TRUE(mgr.ok()) << mgr.error().message;
    EXPECT_EQ(*mgr, default_manager_config());
    auto lstack = load_lstack_config(k_lstack_sample);
    ASSERT_TRUE(lstack.ok()) << lstack.error().message;
    EXPECT_EQ(*lstack, LstackConfig{});
}

TEST(ShippedSamples, UncommentedTheyLoadToTheDefaultsWithoutWarnings) {
    auto mgr = parse_manager_config(uncomment(read(k_mgr_sample)), "gazelle-mgr.conf (uncommented)");
    ASSERT_TRUE(mgr.ok()) << mgr.error().message;
    EXPECT_EQ(*mgr, default_manager_config()); // includes: no warnings
    auto lstack = parse_lstack_config(uncomment(read(k_lstack_sample)), "lstack.conf (uncommented)");
    ASSERT_TRUE(lstack.ok()) << lstack.error().message;
    EXPECT_EQ(*lstack, LstackConfig{});
}

// Stronger than equal values: the uncommented sample states exactly what describe() prints, key by
// key and in the same order, so every honoured key is in the sample with its default spelled the
// way the code spells it.
TEST(ShippedSamples, UncommentedTheyStateEveryKeyAsDescribePrintsIt) {
    EXPECT_EQ(settings(uncomment(read(k_mgr_sample))), settings(describe(default_manager_config())));
    EXPECT_EQ(settings(uncomment(read(k_lstack_sample))), settings(describe(LstackConfig{})));
}

// Keys describe() does not print (other port types' keys, Gazelle keys without a meaning here)
// are still named in the samples' explanations.
TEST(ShippedSamples, NameEveryOtherKeyInTheirExplanations) {
    const std::string mgr = read(k_mgr_sample);
    for (const char* key : {"iface =", "pci ="}) {
        EXPECT_THAT(mgr, HasSubstr(key));
    }
    const std::string lstack = read(k_lstack_sample);
    for (const auto& key : config_keys(ConfigFile::lstack)) {
        if (key.disposition != Disposition::honoured) {
            EXPECT_THAT(lstack, HasSubstr(key.name)) << key.name;
        }
    }
}

TEST(ShippedSamples, SayTheyShowTheDefaults) {
    EXPECT_THAT(read(k_mgr_sample), HasSubstr("Entries in this file show the compile time defaults."));
    EXPECT_THAT(read(k_lstack_sample), HasSubstr("Entries in this file show the compile time defaults."));
}

} // namespace
} // namespace gazelle::conf
