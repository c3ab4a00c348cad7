// SPDX-License-Identifier: BSD-3-Clause
// Reclaim time over many kills: a victim stack holding mbufs (in hand, in flight, in its lcore
// cache), 20 rules, a listener and a memp pool is SIGKILLed again and again; each time the
// primary reclaims it. Prints p50/p99/max of the reclaim itself and of kill -> everything back
// (death detection by waitpid here; the manager uses a pidfd, measured at 2-9 ms).
//   reclaim_bench [--smoke] [--kills N]
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/support/test_support.h"

using namespace gazelle::test;

namespace {

double percentile(std::vector<double> v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(idx, v.size() - 1)];
}

std::unique_ptr<Child> spawn(std::vector<std::string> args, std::vector<std::string> role) {
    std::vector<std::string> argv{bin_path("fabric_actor")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), role.begin(), role.end());
    return std::make_unique<Child>(argv);
}

} // namespace

int main(int argc, char** argv) {
    int kills = 100;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--smoke") {
            kills = 5;
        } else if (a == "--kills" && i + 1 < argc) {
            kills = std::atoi(argv[++i]);
        }
    }
    HugeMount mount;
    if (!mount.ok()) {
        std::fprintf(stderr, "reclaim_bench: %s\n", mount.error().c_str());
        return 1;
    }
    EalInstance eal(mount, "rcb");
    auto primary = spawn(eal.primary_args(0), {"primary"});
    if (!primary->expect("READY")) {
        std::fprintf(stderr, "reclaim_bench: primary did not start\n%s", primary->transcript().c_str());
        return 1;
    }
    auto ask = [&](const std::string& cmd, const std::string& reply) {
        primary->send(cmd);
        return primary->expect(reply).value_or("");
    };
    ask("claim 2 " + std::to_string(getpid()) + " 12", "CLAIM");
    std::vector<double> reclaim_us;
    std::vector<double> total_us;
    int leaks = 0;
    for (int k = 0; k < kills; ++k) {
        auto victim = spawn(eal.secondary_args(11), {"victim", "1", "2"});
        ask("claim 1 " + std::to_string(victim->pid()) + " 11", "CLAIM");
        if (!victim->expect("READY")) {
            std::fprintf(stderr, "reclaim_bench: victim %d did not start\n", k);
            return 1;
        }
        const auto t0 = std::chrono::steady_clock::now();
        victim->kill(SIGKILL);
        (void)victim->wait();
        const std::string r = ask("reclaim 1", "RECLAIM");
        const auto t1 = std::chrono::steady_clock::now();
        reclaim_us.push_back(static_cast<double>(field(r, "usec").value_or(-1)));
        total_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        // What the victim forwarded into queue 2's inbox belongs to queue 2: give it back too.
        ask("reclaim 2", "RECLAIM");
        ask("claim 2 " + std::to_string(getpid()) + " 12", "CLAIM");
        const std::string usage = ask("usage", "USAGE");
        if (field(usage, "in_use") != 0 || field(usage, "rules") != 0 || field(usage, "memps") != 0) {
            ++leaks;
            std::fprintf(stderr, "reclaim_bench: after kill %d: %s\n", k, usage.c_str());
        }
    }
    primary->send("quit");
    (void)primary->wait_success();
    std::printf("figure                                    p50        p99        max   (%d kills, %d with leftovers)\n",
                kills, leaks);
    std::printf("reclaim (ms)                         %8.2f   %8.2f   %8.2f\n", percentile(reclaim_us, 0.5) / 1000,
                percentile(reclaim_us, 0.99) / 1000, percentile(reclaim_us, 1.0) / 1000);
    std::printf("kill -> all back, incl. exit (ms)    %8.2f   %8.2f   %8.2f\n", percentile(total_us, 0.5) / 1000,
                percentile(total_us, 0.99) / 1000, percentile(total_us, 1.0) / 1000);
    return leaks == 0 ? 0 : 1;
}
