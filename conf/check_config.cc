// SPDX-License-Identifier: BSD-3-Clause
#include "conf/check_config.h"

#include <ostream>
#include <optional>

#include "conf/key_info.h"
#include "conf/lstack_config.h"
#include "conf/manager_config.h"

namespace gazelle::conf {
namespace {

constexpr const char* k_usage =
    "Usage: gazelle-check-config [-q] --mgr [FILE] | --lstack [FILE]\n"
    "       gazelle-check-config --reference mgr|lstack\n"
    "\n"
    "Checks a configuration file and prints its effective values (stdout) and warnings (stderr).\n"
    "Exit status: 0 valid, 1 invalid or unreadable, 2 usage error.\n"
    "\n"
    "  --mgr [FILE]      gazelle-mgr.conf (default /etc/gazelle/gazelle-mgr.conf)\n"
    "  --lstack [FILE]   lstack.conf (default $LSTACK_CONF_PATH, else /etc/gazelle/lstack.conf)\n"
    "  -q, --quiet       do not print the effective values\n"
    "  --reference WHICH print the key reference of mgr or lstack (Markdown, as in doc/config.md)\n"
    "  -h, --help        show this help\n";

template <typename Config>
int report(const Result<Config>& loaded, const std::string& path, std::ostream& out, std::ostream& err,
           CheckOptions options) {
    if (!loaded) {
        std::size_t errors = 0;
        std::string_view rest = loaded.error().message;
        while (!rest.empty()) {
            const std::size_t nl = rest.find('\n');
            err << "error: " << rest.substr(0, nl) << '\n';
            ++errors;
            rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        }
        err << path << ": invalid, " << errors << (errors == 1 ? " error\n" : " errors\n");
        return k_check_invalid;
    }
    if (!options.quiet) {
        out << describe(*loaded);
    }
    for (const auto& warning : loaded->warnings) {
        err << "warning: " << to_string(warning) << '\n';
    }
    const std::size_t warnings = loaded->warnings.size();
    err << path << ": valid, " << warnings << (warnings == 1 ? " warning\n" : " warnings\n");
    return k_check_valid;
}

int usage_error(std::ostream& err, const std::string& why) {
    err << "gazelle-check-config: " << why << "\n" << k_usage;
    return k_check_usage;
}

} // namespace

int check_manager_config_file(const std::string& path, std::ostream& out, std::ostream& err, CheckOptions options) {
    return report(load_manager_config(path), path, out, err, options);
}

int check_lstack_config_file(const std::string& path, std::ostream& out, std::ostream& err, CheckOptions options) {
    return report(load_lstack_config(path), path, out, err, options);
}

int check_config_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    std::optional<std::string> mgr;
    std::optional<std::string> lstack;
    CheckOptions options;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        // An optional FILE is the next argument unless that is an option.
        const auto file_operand = [&](const std::string& fallback) {
            if (i + 1 < args.size() && !args[i + 1].starts_with("-")) {
                return args[++i];
            }
            return fallback;
        };
        if (arg == "-h" || arg == "--help") {
            out << k_usage;
            return k_check_valid;
        }
        if (arg == "-q" || arg == "--quiet") {
            options.quiet = true;
        } else if (arg == "--mgr") {
            if (mgr) {
                return usage_error(err, "--mgr given twice");
            }
            mgr = file_operand(k_default_manager_config_path);
        } else if (arg == "--lstack") {
            if (lstack) {
                return usage_error(err, "--lstack given twice");
            }
            lstack = file_operand(lstack_config_path());
        } else if (arg == "--reference") {
            if (i + 1 >= args.size() || (args[i + 1] != "mgr" && args[i + 1] != "lstack")) {
                return usage_error(err, "--reference needs 'mgr' or 'lstack'");
            }
            out << reference_markdown(args[i + 1] == "mgr" ? ConfigFile::manager : ConfigFile::lstack);
            return k_check_valid;
        } else {
            return usage_error(err, "unexpected argument '" + arg + "'");
        }
    }
    if (!mgr && !lstack) {
        return usage_error(err, "nothing to check: give --mgr or --lstack");
    }
    int status = k_check_valid;
    if (mgr && check_manager_config_file(*mgr, out, err, options) != k_check_valid) {
        status = k_check_invalid;
    }
    if (lstack && check_lstack_config_file(*lstack, out, err, options) != k_check_valid) {
        status = k_check_invalid;
    }
    return status;
}

} // namespace gazelle::conf
