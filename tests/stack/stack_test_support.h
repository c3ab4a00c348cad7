// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Fixture of the stack's multi-process tests: a private hugetlbfs mount and EAL prefix, the test
// primary (stack_primary_actor: fabric + claim/reclaim on command) and app processes
// (stack_app_actor: a Runtime with one stack per claimed slot). Everything is killed and cleaned
// up by RAII, also when a test fails half-way.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "tests/support/test_support.h"

namespace gazelle::test {

// Time on CPU of all threads of a process, in nanoseconds (sum of the first field of
// /proc/<pid>/task/*/schedstat): finer than the clock ticks of /proc/<pid>/stat.
inline long long cpu_ns(pid_t pid) {
    long long total = 0;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream in(task.path() / "schedstat");
        long long ns = 0;
        if (in >> ns) {
            total += ns;
        }
    }
    return total;
}

// The scheduler's view of each thread of a process at one moment (/proc/<pid>/task/<tid>/:
// comm, and schedstat's time on CPU and number of times it was switched in).
struct ThreadSched {
    std::string name;
    long long cpu_ns = 0;
    long long runs = 0;
};
inline std::map<long, ThreadSched> sched_snapshot(pid_t pid) {
    std::map<long, ThreadSched> threads;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        ThreadSched t;
        std::ifstream comm(task.path() / "comm");
        std::getline(comm, t.name);
        std::ifstream stat(task.path() / "schedstat");
        long long wait_ns = 0;
        if (stat >> t.cpu_ns >> wait_ns >> t.runs) {
            threads.emplace(std::stol(task.path().filename().string()), std::move(t));
        }
    }
    return threads;
}

// What a process did between two snapshots: its CPU use, and how often its stack threads
// (named gz-stack-<queue> by the runtime) woke up. Idle, both follow the wake-ups: each costs a
// context switch, whose price depends on the machine (70-300 us in these VMs), their number on
// our sleep policy only.
struct IdleUse {
    double cpu_pct = 0;             // all threads, % of one CPU
    double stack_wakeups_max = 0;   // per second, of the stack thread that woke most
    double stack_wakeup_cpu_us = 0; // stack threads' CPU per wake-up
    unsigned stack_threads = 0;
    std::string text; // every thread that ran, for the log
};
inline IdleUse idle_use(const std::map<long, ThreadSched>& before, const std::map<long, ThreadSched>& after,
                        double seconds) {
    IdleUse use;
    long long stack_ns = 0;
    long long stack_runs = 0;
    for (const auto& [tid, end] : after) {
        const auto start = before.find(tid);
        const long long ns = end.cpu_ns - (start == before.end() ? 0 : start->second.cpu_ns);
        const long long runs = end.runs - (start == before.end() ? 0 : start->second.runs);
        use.cpu_pct += 100.0 * static_cast<double>(ns) / (1e9 * seconds);
        if (end.name.starts_with("gz-stack-")) {
            use.stack_threads += 1;
            use.stack_wakeups_max = std::max(use.stack_wakeups_max, static_cast<double>(runs) / seconds);
            stack_ns += ns;
            stack_runs += runs;
        }
        if (runs != 0) {
            char line[160];
            std::snprintf(line, sizeof line, "%s%s %.2f ms %.1f/s", use.text.empty() ? "" : ", ", end.name.c_str(),
                          static_cast<double>(ns) / 1e6, static_cast<double>(runs) / seconds);
            use.text += line;
        }
    }
    use.stack_wakeup_cpu_us = stack_runs == 0 ? 0 : static_cast<double>(stack_ns) / 1e3 / static_cast<double>(stack_runs);
    return use;
}

struct StackSpec {
    unsigned slot;
    unsigned lcore; // unique across all processes of the test
};

class StackFabricTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(mount_.ok()) << mount_.error();
        eal_ = std::make_unique<EalInstance>(mount_, "stk");
    }

    void start_primary(const std::vector<std::string>& mode, const std::vector<std::string>& extra_eal = {}) {
        std::vector<std::string> argv{bin_path("stack_primary_actor")};
        auto eal = eal_->primary_args(0, extra_eal);
        argv.insert(argv.end(), eal.begin(), eal.end());
        argv.emplace_back("--");
        argv.insert(argv.end(), mode.begin(), mode.end());
        primary_ = std::make_unique<Child>(argv);
        const auto ready = primary_->expect("READY", 30s);
        ASSERT_TRUE(ready) << primary_->transcript();
    }

    // Spawns an app with one stack per spec, claims its slots for its pid, starts its runtime.
    std::unique_ptr<Child> start_app(const std::vector<StackSpec>& stacks, const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv{bin_path("stack_app_actor"), "--prefix", eal_->prefix(), "--huge", mount_.path()};
        for (const StackSpec& s : stacks) {
            argv.emplace_back("--stack");
            argv.push_back(std::to_string(s.slot) + ":" + std::to_string(s.lcore) + ":" + std::to_string(s.lcore % 2));
        }
        argv.insert(argv.end(), extra.begin(), extra.end());
        auto app = std::make_unique<Child>(argv);
        const auto hello = app->expect("HELLO");
        if (!hello) {
            ADD_FAILURE() << "app did not start: " << app->transcript();
            return nullptr;
        }
        const auto pid = field(*hello, "pid").value_or(0);
        for (const StackSpec& s : stacks) {
            const auto claim = ask_primary("claim " + std::to_string(s.slot) + " " + std::to_string(pid) + " " +
                                               std::to_string(s.lcore),
                                           "CLAIM");
            if (field(claim, "ok") != 1) {
                ADD_FAILURE() << "claim of slot " << s.slot << " failed: " << claim;
                return nullptr;
            }
        }
        if (!app->send("start")) {
            ADD_FAILURE() << "app stdin closed";
            return nullptr;
        }
        const auto started = app->expect("STARTED", 30s);
        if (!started) {
            ADD_FAILURE() << "app runtime did not start: " << app->transcript();
            return nullptr;
        }
        return app;
    }

    std::string ask(Child& child, const std::string& command, const std::string& reply,
                    std::chrono::milliseconds timeout = 20s) {
        EXPECT_TRUE(child.send(command)) << command;
        auto line = child.expect(reply, timeout);
        EXPECT_TRUE(line) << command << " -> no " << reply << "\n" << child.transcript();
        return line.value_or("");
    }

    std::string ask_primary(const std::string& command, const std::string& reply) {
        return ask(*primary_, command, reply);
    }

    void stop_app(Child& app) {
        ASSERT_TRUE(app.send("quit"));
        EXPECT_TRUE(app.expect("BYE", 20s)) << app.transcript();
        EXPECT_TRUE(app.wait_success());
    }

    HugeMount mount_;
    std::unique_ptr<EalInstance> eal_;
    std::unique_ptr<Child> primary_;
};

} // namespace gazelle::test
