// SPDX-License-Identifier: BSD-3-Clause
// doc/config.md embeds the key reference generated from the tables (gazelle-check-config
// --reference mgr|lstack). If a key is added, renamed or re-documented, this fails until the
// document is regenerated.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "conf/key_info.h"
#include "tests/support/test_support.h"

namespace gazelle::conf {
namespace {

using ::testing::HasSubstr;

std::string doc() {
    std::ifstream in(gazelle::test::source_path("doc/config.md"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The text between "<!-- BEGIN name -->\n" and "<!-- END name -->".
std::string section(const std::string& text, const std::string& name) {
    const std::string begin = "<!-- BEGIN " + name + " -->\n";
    const std::string end = "<!-- END " + name + " -->";
    const auto b = text.find(begin);
    const auto e = text.find(end);
    if (b == std::string::npos || e == std::string::npos || e < b) {
        return "(markers for " + name + " not found)";
    }
    return text.substr(b + begin.size(), e - b - begin.size());
}

constexpr const char* k_regenerate = "doc/config.md is out of date: regenerate the section with "
                                     "`build/<dir>/tools/gazelle-check-config --reference mgr|lstack`";

TEST(ConfigDoc, ManagerReferenceIsGeneratedFromTheTable) {
    EXPECT_EQ(section(doc(), "mgr-keys"), reference_markdown(ConfigFile::manager)) << k_regenerate;
}

TEST(ConfigDoc, LstackReferenceIsGeneratedFromTheTable) {
    EXPECT_EQ(section(doc(), "lstack-keys"), reference_markdown(ConfigFile::lstack)) << k_regenerate;
}

TEST(ConfigDoc, EveryKeyOfBothTablesIsInTheDocument) {
    const std::string text = doc();
    for (auto file : {ConfigFile::manager, ConfigFile::lstack}) {
        for (const auto& key : config_keys(file)) {
            EXPECT_THAT(text, HasSubstr("`" + key.name + "`")) << key.name;
        }
    }
}

TEST(ConfigDoc, ExplainsHowToCheckAFile) {
    const std::string text = doc();
    EXPECT_THAT(text, HasSubstr("gazelle-check-config --mgr"));
    EXPECT_THAT(text, HasSubstr("gazelle-check-config --lstack"));
    EXPECT_THAT(text, HasSubstr("nic_read_num: unknown key (did you mean 'nic_read_number'?)"));
}

} // namespace
} // namespace gazelle::conf
