// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: both config loaders on arbitrary text. Every input must give either a config
// or an error with a message; describe() of an accepted config must load again to the same config.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "conf/lstack_config.h"
#include "conf/manager_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto mgr = gazelle::conf::parse_manager_config(text, "fuzz.conf");
    if (!mgr.ok() && mgr.error().message.empty()) {
        std::abort();
    }
    if (mgr.ok()) {
        auto again = gazelle::conf::parse_manager_config(gazelle::conf::describe(*mgr), "described.conf");
        if (!again.ok()) {
            std::abort();
        }
    }
    auto lstack = gazelle::conf::parse_lstack_config(text, "fuzz-lstack.conf");
    if (!lstack.ok() && lstack.error().message.empty()) {
        std::abort();
    }
    return 0;
}
