// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Helpers shared by the tests of conf/: findings as lines, and readable assertions on them.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "conf/result.h"

namespace gazelle::conf::test {

// An Error's message split into its findings, one per line.
inline std::vector<std::string> lines_of(const std::string& message) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= message.size()) {
        const std::size_t nl = message.find('\n', start);
        out.push_back(message.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) {
            break;
        }
        start = nl + 1;
    }
    return out;
}

template <typename T>
std::vector<std::string> error_lines(const Result<T>& result) {
    if (result.ok()) {
        return {};
    }
    return lines_of(result.error().message);
}

// The result failed, and one of its findings is exactly `line`.
template <typename T>
::testing::AssertionResult fails_with(const Result<T>& result, const std::string& line) {
    if (result.ok()) {
        return ::testing::AssertionFailure() << "loaded fine, expected: " << line;
    }
    for (const auto& l : error_lines(result)) {
        if (l == line) {
            return ::testing::AssertionSuccess();
        }
    }
    return ::testing::AssertionFailure() << "expected the finding\n  " << line << "\ngot\n" << result.error().message;
}

// The result failed, and one of its findings contains every one of `parts`.
template <typename T>
::testing::AssertionResult fails_mentioning(const Result<T>& result, const std::vector<std::string>& parts) {
    if (result.ok()) {
        return ::testing::AssertionFailure() << "loaded fine";
    }
    for (const auto& l : error_lines(result)) {
        bool all = true;
        for (const auto& part : parts) {
            all = all && l.find(part) != std::string::npos;
        }
        if (all) {
            return ::testing::AssertionSuccess();
        }
    }
    std::string wanted;
    for (const auto& part : parts) {
        wanted += " [" + part + "]";
    }
    return ::testing::AssertionFailure() << "no finding contains" << wanted << "; got\n" << result.error().message;
}

} // namespace gazelle::conf::test
