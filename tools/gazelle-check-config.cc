// SPDX-License-Identifier: BSD-3-Clause
// gazelle-check-config: checks gazelle-mgr.conf or lstack.conf (see conf/check_config.h).
#include <iostream>
#include <string>
#include <vector>

#include "conf/check_config.h"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return gazelle::conf::check_config_main(args, std::cout, std::cerr);
}
