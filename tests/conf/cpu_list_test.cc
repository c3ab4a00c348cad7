// SPDX-License-Identifier: BSD-3-Clause
#include "conf/cpu_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace gazelle::conf {
namespace {

using Ids = std::vector<unsigned>;

TEST(ParseCpuList, IdsAndRangesKeepTheirOrder) {
    EXPECT_EQ(*parse_cpu_list("2,22", 128), (Ids{2, 22}));
    EXPECT_EQ(*parse_cpu_list("0-3,8", 128), (Ids{0, 1, 2, 3, 8}));
    EXPECT_EQ(*parse_cpu_list("9,1-2", 128), (Ids{9, 1, 2}));
    EXPECT_EQ(*parse_cpu_list(" 4 , 5 ", 128), (Ids{4, 5}));
    EXPECT_EQ(*parse_cpu_list("", 128), Ids{});
    EXPECT_EQ(parse_cpu_list("1-63", 128)->size(), 63u);
}

TEST(ParseCpuList, RejectsMalformedEntries) {
    for (const char* bad : {"a", "1,", ",1", "1-", "-1", "1-2-3", "1;2", "0x1", "1 2", "+1"}) {
        auto ids = parse_cpu_list(bad, 128);
        ASSERT_FALSE(ids.ok()) << bad;
        EXPECT_NE(ids.error().message.find("is not a CPU id or range"), std::string::npos) << ids.error().message;
    }
}

TEST(ParseCpuList, RejectsReversedRangesDuplicatesAndIdsOverTheLimit) {
    EXPECT_EQ(parse_cpu_list("5-3", 128).error().message, "range '5-3' is reversed");
    EXPECT_EQ(parse_cpu_list("1,2,1", 128).error().message, "id 1 is listed twice");
    EXPECT_EQ(parse_cpu_list("0-3,2", 128).error().message, "id 2 is listed twice");
    EXPECT_EQ(parse_cpu_list("127,128", 128).error().message, "id 128 is out of range (ids are 0..127)");
    EXPECT_FALSE(parse_cpu_list("99999999999", 128).ok());
}

TEST(FormatCpuList, CompressesAscendingRunsAndRoundTrips) {
    EXPECT_EQ(format_cpu_list({}), "");
    EXPECT_EQ(format_cpu_list({2, 22}), "2,22");
    EXPECT_EQ(format_cpu_list({0, 1}), "0-1");
    EXPECT_EQ(format_cpu_list({3, 2}), "3,2");
    EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
    for (const char* text : {"1-63", "2,22", "7,0-2,5", "0"}) {
        EXPECT_EQ(format_cpu_list(*parse_cpu_list(text, 128)), text);
    }
}

} // namespace
} // namespace gazelle::conf
