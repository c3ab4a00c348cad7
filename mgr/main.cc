// SPDX-License-Identifier: BSD-3-Clause
// gazelle-mgr: the fabric's manager daemon (mgr/manager.h). Usage: gazelle-mgr --help.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "conf/check_config.h"
#include "conf/manager_config.h"
#include "mgr/log.h"
#include "mgr/manager.h"

#ifndef GAZELLE_VERSION
#define GAZELLE_VERSION "unknown"
#endif

namespace {

using namespace gazelle;

constexpr int k_usage_error = 2;

constexpr char k_usage[] =
    "Usage: gazelle-mgr [OPTIONS]\n"
    "\n"
    "The manager of the Gazelle fabric: the DPDK primary that owns the ports and the shared\n"
    "objects, registers applications and reclaims what they held when they go.\n"
    "\n"
    "  --config FILE         configuration (default /etc/gazelle/gazelle-mgr.conf; when that file\n"
    "                        does not exist, the built-in defaults)\n"
    "  --bus system|session|ADDRESS\n"
    "                        D-Bus to serve the API on (default: manager.bus of the configuration)\n"
    "  --no-bus              do not connect to D-Bus\n"
    "  --check-config [FILE] check the configuration (FILE, else --config's, else the default) as\n"
    "                        gazelle-check-config --mgr does, and exit: 0 valid, 1 invalid\n"
    "  --version             print the version and exit\n"
    "  -h, --help            print this help and exit\n";

struct Arguments {
    std::string config_path;
    bool config_given = false;
    std::string bus;
    bool no_bus = false;
    bool check = false;
    std::string check_path;
    bool version = false;
    bool help = false;
};

// Returns false (after printing why) on a usage error.
bool parse_arguments(int argc, char** argv, Arguments& out) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const auto value = [&](const std::string& option) -> const std::string* {
            if (i + 1 >= args.size()) {
                std::fprintf(stderr, "gazelle-mgr: %s needs a value (see --help)\n", option.c_str());
                return nullptr;
            }
            return &args[++i];
        };
        if (a == "--config") {
            const std::string* v = value(a);
            if (v == nullptr) {
                return false;
            }
            out.config_path = *v;
            out.config_given = true;
        } else if (a.rfind("--config=", 0) == 0) {
            out.config_path = a.substr(9);
            out.config_given = true;
        } else if (a == "--bus") {
            const std::string* v = value(a);
            if (v == nullptr) {
                return false;
            }
            out.bus = *v;
        } else if (a.rfind("--bus=", 0) == 0) {
            out.bus = a.substr(6);
        } else if (a == "--no-bus") {
            out.no_bus = true;
        } else if (a == "--check-config") {
            out.check = true;
            if (i + 1 < args.size() && args[i + 1].rfind("-", 0) != 0) {
                out.check_path = args[++i];
            }
        } else if (a.rfind("--check-config=", 0) == 0) {
            out.check = true;
            out.check_path = a.substr(15);
        } else if (a == "--version") {
            out.version = true;
        } else if (a == "-h" || a == "--help") {
            out.help = true;
        } else {
            std::fprintf(stderr, "gazelle-mgr: unknown argument '%s' (see --help)\n", a.c_str());
            return false;
        }
    }
    if (out.no_bus && !out.bus.empty()) {
        std::fprintf(stderr, "gazelle-mgr: --bus and --no-bus contradict each other\n");
        return false;
    }
    return true;
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

} // namespace

int main(int argc, char** argv) {
    Arguments args;
    if (!parse_arguments(argc, argv, args)) {
        return k_usage_error;
    }
    if (args.help) {
        std::fputs(k_usage, stdout);
        return EXIT_SUCCESS;
    }
    if (args.version) {
        std::printf("gazelle-mgr %s\n", GAZELLE_VERSION);
        return EXIT_SUCCESS;
    }
    if (args.check) {
        const std::string path = !args.check_path.empty() ? args.check_path
                                 : args.config_given      ? args.config_path
                                                          : conf::k_default_manager_config_path;
        return conf::check_manager_config_file(path, std::cout, std::cerr);
    }

    conf::ManagerConfig config;
    if (args.config_given || file_exists(conf::k_default_manager_config_path)) {
        const std::string path = args.config_given ? args.config_path : conf::k_default_manager_config_path;
        auto loaded = conf::load_manager_config(path);
        if (!loaded) {
            mgr::log_error("Failed to load configuration '%s': %s", path.c_str(), loaded.error().message.c_str());
            return EXIT_FAILURE;
        }
        config = std::move(*loaded);
        mgr::set_log_level(config.manager.log_level);
        mgr::log_info("gazelle-mgr %s: configuration '%s'", GAZELLE_VERSION, path.c_str());
    } else {
        config = conf::default_manager_config();
        mgr::set_log_level(config.manager.log_level);
        mgr::log_notice("gazelle-mgr %s: %s does not exist, using the built-in configuration (gazelle-mgr "
                        "--check-config shows it)",
                        GAZELLE_VERSION, conf::k_default_manager_config_path);
    }

    mgr::ManagerOptions options;
    options.bus = args.bus.empty() ? config.manager.bus : args.bus;
    options.use_bus = !args.no_bus;
    auto manager = mgr::Manager::create(config, options);
    if (!manager) {
        return EXIT_FAILURE; // create() logged why
    }
    const int code = (*manager)->run();
    manager->reset();
    mgr::log_info("gazelle-mgr stopped");
    return code;
}
