// SPDX-License-Identifier: BSD-3-Clause
// Stacks attached through the real gazelle-mgr (--no-bus): the app asks for queues over the
// registration socket (fabric/mgr_client.h), its Runtime starts from the plan the manager
// granted (plan_from_manager), and when it is SIGKILLed the manager itself reclaims everything
// its stacks held; a clean exit leaves nothing to reclaim.
#include <gtest/gtest.h>

#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include "tests/mgr/mgr_test_support.h"

namespace gazelle::test {
namespace {

using Clock = std::chrono::steady_clock;

class ManagerStackTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(huge_.ok()) << huge_.error();
        config_.huge_dir = huge_.path();
        config_.file_prefix = eal_.prefix();
        config_.socket = dir_.path() + "/mgr.sock";
        mgr_.emplace(mgr_command(dir_.write("gazelle-mgr.conf", config_.text())));
        ASSERT_TRUE(mgr_->running() && mgr_->expect("Ready:", 30s)) << mgr_->transcript();
    }

    std::unique_ptr<Child> app(const std::string& port, unsigned queues) {
        auto child = std::make_unique<Child>(std::vector<std::string>{
            bin_path("stack_app_actor"), "--mgr", config_.socket, "--queues", std::to_string(queues), "--port", port});
        if (!child->expect("ATTACHED") || !child->expect("STARTED", 30s)) {
            ADD_FAILURE() << child->transcript();
            return nullptr;
        }
        return child;
    }

    std::string ask(Child& child, const std::string& command, const std::string& reply,
                    std::chrono::milliseconds timeout = 20s) {
        EXPECT_TRUE(child.send(command));
        auto line = child.expect(reply, timeout);
        EXPECT_TRUE(line) << command << "\n" << child.transcript();
        return line.value_or("");
    }

    // The manager's next "Reclaimed app ..." line for `pid` and queue `slot`.
    std::optional<std::string> reclaimed(pid_t pid, unsigned slot) {
        const std::string needle = "[" + std::to_string(pid) + "] queue " + std::to_string(slot) + ":";
        const auto deadline = Clock::now() + 15s;
        while (Clock::now() < deadline) {
            auto line = mgr_->expect("Reclaimed app", 15s);
            if (!line) {
                return std::nullopt;
            }
            if (line->find(needle) != std::string::npos) {
                return line;
            }
        }
        return std::nullopt;
    }

    HugeMount huge_;
    TempDir dir_;
    EalInstance eal_{huge_, "smg"};
    MgrConfig config_; // veth0 198.18.0.1: slots 0, 1; veth1 198.18.0.2: slot 2
    std::optional<Child> mgr_;
};

TEST_F(ManagerStackTest, AppsAttachThroughGazelleMgrAndAreReclaimedByIt) {
    auto server = app("veth0", 2);
    auto client = app("veth1", 1);
    ASSERT_TRUE(server && client);
    ASSERT_EQ(field(ask(*server, "echo 7000", "SERVING"), "ok"), 1);
    const auto load = ask(*client, "load 198.18.0.1 7000 200 8 20000", "LOAD", 45s);
    EXPECT_EQ(field(load, "done"), 200) << load;
    EXPECT_EQ(field(load, "failed"), 0) << load;
    EXPECT_EQ(field(load, "mismatches"), 0) << load;

    // Killed: the manager notices (connection EOF, pidfd) and reclaims both queues on its own.
    const pid_t server_pid = server->pid();
    ASSERT_TRUE(server->kill(SIGKILL));
    ASSERT_TRUE(server->wait());
    for (unsigned slot : {0u, 1u}) {
        const auto line = reclaimed(server_pid, slot);
        ASSERT_TRUE(line) << mgr_->transcript();
        std::printf("%s\n", line->c_str());
        EXPECT_EQ(count_before(*line, "memp pools"), 1) << *line; // each stack's lwIP arena
    }
    // Clean exit: the stack released everything itself, the manager finds nothing.
    const pid_t client_pid = client->pid();
    ASSERT_TRUE(client->send("quit"));
    EXPECT_TRUE(client->expect("DETACHED ok=1", 20s)) << client->transcript();
    EXPECT_TRUE(client->wait_success());
    const auto line = reclaimed(client_pid, 2);
    ASSERT_TRUE(line) << mgr_->transcript();
    std::printf("%s\n", line->c_str());
    EXPECT_EQ(count_before(*line, "memp pools"), 0) << *line;
    EXPECT_EQ(count_before(*line, "rules"), 0) << *line;
    EXPECT_EQ(count_before(*line, "mbufs returned"), 0) << *line;
    EXPECT_EQ(count_before(*line, "from lcore caches"), 0) << *line; // flushed by the stack itself
}

} // namespace
} // namespace gazelle::test
