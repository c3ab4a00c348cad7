// SPDX-License-Identifier: BSD-3-Clause
// The reader shared by both files: what libconfig 1.5 does on its own, and what we add.
#include "conf/parse_internal.h"

#include <gtest/gtest.h>

#include <string>

#include "conf/lstack_config.h"
#include "tests/conf/conf_test_util.h"

namespace gazelle::conf {
namespace {

using test::error_lines;
using test::fails_with;

Result<LstackConfig> parse(const std::string& text) {
    return parse_lstack_config(text, "lstack.conf");
}

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
    EXPECT_EQ(internal::edit_distance("", ""), 0u);
    EXPECT_EQ(internal::edit_distance("abc", ""), 3u);
    EXPECT_EQ(internal::edit_distance("kni_swith", "kni_switch"), 1u);
    EXPECT_EQ(internal::edit_distance("nic_read_num", "nic_read_number"), 3u);
    EXPECT_EQ(internal::edit_distance("ring_sise", "ring_size"), 1u);
}

TEST(Suggest, PicksTheClosestCandidateWithinBudget) {
    const std::string_view candidates[] = {"nic_read_number", "nic_rxqueue_size", "rpc_number"};
    EXPECT_EQ(internal::suggest("nic_read_num", candidates), " (did you mean 'nic_read_number'?)");
    EXPECT_EQ(internal::suggest("rpc_numbr", candidates), " (did you mean 'rpc_number'?)");
    EXPECT_EQ(internal::suggest("completely_different", candidates), "");
    EXPECT_EQ(internal::suggest("x", candidates), "");
}

TEST(Quote, EscapesWhatLibconfigWouldMisread) {
    EXPECT_EQ(internal::quote("plain"), "\"plain\"");
    EXPECT_EQ(internal::quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    EXPECT_EQ(internal::quote(std::string("\x01", 1)), "\"\\x01\"");
    EXPECT_EQ(internal::quote_list({}), "[]");
    EXPECT_EQ(internal::quote_list({"a", "b"}), "[\"a\", \"b\"]");
}

// libconfig 1.5 itself rejects a name set twice in one group; we only add which key it is.
TEST(Reader, DuplicateKeyIsAParseErrorNamingTheKey) {
    auto c = parse("host_addr = \"198.18.0.1\";\nstack_num = 1;\nhost_addr = \"198.18.0.2\";\n");
    EXPECT_TRUE(fails_with(c, "lstack.conf:3: host_addr: duplicate key: it is already set in this group "
                              "(libconfig: duplicate setting name)"));
    auto same_line = parse("stack_num = 1; udp_enable = 1; stack_num = 2;\n");
    EXPECT_TRUE(fails_with(same_line, "lstack.conf:1: stack_num: duplicate key: it is already set in this group "
                                      "(libconfig: duplicate setting name)"));
}

TEST(Reader, SyntaxErrorGivesLibconfigsLineTextAndTheLine) {
    auto c = parse("stack_num = 1;\nnum_cpus = 2,3;\nudp_enable = 1;\n");
    EXPECT_TRUE(fails_with(c, "lstack.conf:2: syntax error (libconfig: syntax error) in 'num_cpus = 2,3;'"));
    auto mixed = parse("dpdk_args = [\"-v\", 1];\n");
    EXPECT_TRUE(fails_with(mixed, "lstack.conf:1: syntax error (libconfig: mismatched element type in array) in "
                                  "'dpdk_args = [\"-v\", 1];'"));
    EXPECT_EQ(parse("stack_num = ;").error().code, EINVAL);
}

// Without the prescan these would load as 1 and -1 (libconfig 1.5 wraps to 32 bits).
TEST(Reader, IntegerLiteralsLibconfigWouldWrapAreOutOfRange) {
    EXPECT_TRUE(fails_with(parse("tcp_conn_count = 4294967297;"),
                           "lstack.conf:1: tcp_conn_count: out of range: 4294967297 is not in 1..20000"));
    EXPECT_TRUE(fails_with(parse("stack_num = 0x100000001;"),
                           "lstack.conf:1: stack_num: out of range: 0x100000001 is not in 0..64"));
    EXPECT_TRUE(fails_with(parse("nic_vlan_mode = 0xffffffff;"),
                           "lstack.conf:1: nic_vlan_mode: out of range: 0xffffffff does not fit in 32 bits"));
    EXPECT_TRUE(fails_with(parse("stack_num = 2147483648;"),
                           "lstack.conf:1: stack_num: out of range: 2147483648 is not in 0..64"));
    EXPECT_TRUE(fails_with(parse("stack_num = 99999999999999999999L;"),
                           "lstack.conf:1: stack_num: out of range: 99999999999999999999L is not in 0..64"));
}

TEST(Reader, LiteralsThatFitAreNotFlagged) {
    // 64-bit literals with L are stored faithfully; the range check then applies as usual.
    EXPECT_TRUE(fails_with(parse("stack_num = 4294967297L;"),
                           "lstack.conf:1: stack_num: out of range: 4294967297 is not in 0..64"));
    EXPECT_TRUE(parse("stack_num = 2L;").ok());
    EXPECT_TRUE(parse("nic_vlan_mode = -1; num_process = 1;").ok());
    // Digits inside strings, names and comments are not integer literals.
    EXPECT_TRUE(test::fails_mentioning(parse("num_cpus = \"4294967297\";\n"),
                                       {"lstack.conf:1: num_cpus: invalid CPU list", "is not a CPU id"}));
    EXPECT_TRUE(parse("# stack_num = 99999999999;\n// 4294967297\n/* 0xfffffffff */ stack_num = 2;").ok());
    // A float is a wrong type, not an overflow.
    EXPECT_TRUE(fails_with(parse("stack_num = 1e12;"),
                           "lstack.conf:1: stack_num: wrong type: expected an integer, got a float"));
}

TEST(Reader, OverflowInsideAKeyThatFailsOtherwiseIsReportedOnce) {
    auto c = parse("nosuch_key = 99999999999;\n");
    EXPECT_EQ(error_lines(c), (std::vector<std::string>{"lstack.conf:1: nosuch_key: unknown key"}));
    auto wrong = parse("host_addr = 99999999999;\n");
    EXPECT_EQ(error_lines(wrong).size(), 1u);
}

TEST(Reader, IncludeIsRefused) {
    auto c = parse("stack_num = 1;\n@include \"/etc/passwd\"\n");
    EXPECT_TRUE(fails_with(c, "lstack.conf:2: @include is not supported: keep the configuration in one file"));
}

TEST(Reader, NulByteIsRefused) {
    auto c = parse(std::string("stack_num = 1;\n\0stack_num = 2;", 30));
    EXPECT_TRUE(fails_with(c, "lstack.conf:2: the file contains a NUL byte (libconfig would stop reading there)"));
}

TEST(Reader, HugeInputIsRefused) {
    const std::string big(internal::k_max_file_bytes + 1, ' ');
    EXPECT_TRUE(fails_with(parse(big), "lstack.conf: the file is larger than 1048576 bytes"));
}

TEST(Reader, LongStringsAndListsAreRefused) {
    EXPECT_TRUE(test::fails_mentioning(parse("unix_prefix = \"" + std::string(5000, 'a') + "\";"),
                                       {"lstack.conf:1: unix_prefix: the string is longer than 4096 bytes"}));
    std::string args = "dpdk_args = [";
    for (int i = 0; i < 65; ++i) {
        args += std::string(i == 0 ? "" : ", ") + "\"-v\"";
    }
    EXPECT_TRUE(fails_with(parse(args + "];"), "lstack.conf:1: dpdk_args: too many entries: 65 (at most 64)"));
}

TEST(Reader, SemicolonsAreOptionalAsInGazellesFiles) {
    auto c = parse("stack_num=2\nudp_enable=0\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->stack_num, 2u);
    EXPECT_FALSE(c->udp_enable);
}

} // namespace
} // namespace gazelle::conf
