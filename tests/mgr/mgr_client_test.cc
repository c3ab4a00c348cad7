// SPDX-License-Identifier: BSD-3-Clause
// fabric/mgr_client.h against fake managers in this process: every failure is one clear line
// with the right errno, no call outlives its timeout, and an attachment yields the exact EAL
// arguments. (The real manager is in registration_mp_test.)
#include "fabric/mgr_client.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "tests/support/test_support.h"

namespace gazelle::fabric {
namespace {

namespace proto = mgr_protocol;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int listening_socket(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// One connection, handled by `serve` on a thread (it gets the connection and the request).
class FakeManager {
public:
    using Serve = std::function<void(int fd, const std::vector<std::byte>& request)>;
    FakeManager(const std::string& path, Serve serve) : listener_(listening_socket(path)) {
        thread_ = std::thread([this, serve = std::move(serve)] {
            pollfd pfd{listener_, POLLIN, 0};
            if (poll(&pfd, 1, 5000) != 1) {
                return;
            }
            const int fd = accept(listener_, nullptr, nullptr);
            std::vector<std::byte> request(1024);
            pfd = pollfd{fd, POLLIN, 0};
            const ssize_t n = poll(&pfd, 1, 5000) == 1 ? recv(fd, request.data(), request.size(), 0) : -1;
            request.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
            serve(fd, request);
            // Keep the connection until the client is done (or a bounded while).
            pfd = pollfd{fd, POLLIN, 0};
            while (poll(&pfd, 1, 3000) == 1) {
                char buffer[512];
                const ssize_t got = recv(fd, buffer, sizeof buffer, 0);
                if (got <= 0) {
                    break;
                }
                if (on_more) {
                    on_more(fd, std::vector<std::byte>(reinterpret_cast<std::byte*>(buffer),
                                                       reinterpret_cast<std::byte*>(buffer) + got));
                }
            }
            close(fd);
        });
    }
    ~FakeManager() {
        thread_.join();
        close(listener_);
    }
    FakeManager(const FakeManager&) = delete;
    FakeManager& operator=(const FakeManager&) = delete;

    Serve on_more; // later packets (detach requests); set before the client sends them

private:
    int listener_;
    std::thread thread_;
};

proto::AttachReply good_reply(unsigned queues) {
    proto::AttachReply r;
    r.nb_queues = queues;
    r.port = 1;
    for (unsigned i = 0; i < queues; ++i) {
        r.slots[i] = static_cast<QueueSlot>(4 + i);
        r.epochs[i] = 7;
        r.lcores[i] = static_cast<std::uint16_t>(5 + i);
        r.cpus[i] = static_cast<std::uint16_t>(1 - i % 2);
    }
    std::strcpy(r.file_prefix, "fp");
    std::strcpy(r.huge_dir, "/mnt/huge");
    return r;
}

AttachOptions options_for(const std::string& path, unsigned queues = 2) {
    AttachOptions o;
    o.socket_path = path;
    o.queues = queues;
    o.timeout = 400ms;
    return o;
}

TEST(MgrClient, NoManagerSaysSoInOneLine) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    auto r = attach_to_manager(options_for(path));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ENOENT);
    EXPECT_EQ(r.error().message, "Failed to connect to gazelle-mgr at '" + path +
                                     "': No such file or directory (is gazelle-mgr running?)");
    // A socket file nobody listens on (a dead manager's).
    close(listening_socket(path));
    r = attach_to_manager(options_for(path));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ECONNREFUSED);
    EXPECT_EQ(r.error().message,
              "Failed to connect to gazelle-mgr at '" + path + "': Connection refused (is gazelle-mgr running?)");
}

TEST(MgrClient, SilentManagerTimesOutInTime) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    FakeManager fake(path, [](int, const std::vector<std::byte>&) { std::this_thread::sleep_for(1s); });
    const auto t0 = Clock::now();
    auto r = attach_to_manager(options_for(path));
    const auto took = Clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ETIMEDOUT);
    EXPECT_EQ(r.error().message, "Timed out waiting for gazelle-mgr at '" + path + "' to answer the attach request");
    EXPECT_GE(took, 350ms);
    EXPECT_LT(took, 900ms);
}

TEST(MgrClient, RefusalCarriesTheManagersCodeAndText) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    FakeManager fake(path, [](int fd, const std::vector<std::byte>&) {
        proto::ErrorReply e;
        e.code = EBUSY;
        std::strcpy(e.message, "port veth0 has 0 free queues, app asked 2");
        (void)send(fd, &e, sizeof e, MSG_NOSIGNAL);
        shutdown(fd, SHUT_RDWR);
    });
    auto r = attach_to_manager(options_for(path));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EBUSY);
    EXPECT_EQ(r.error().message, "gazelle-mgr refused the attach: port veth0 has 0 free queues, app asked 2");
}

TEST(MgrClient, ClosedOrGarbledAnswers) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    {
        FakeManager fake(path, [](int fd, const std::vector<std::byte>&) { shutdown(fd, SHUT_RDWR); });
        auto r = attach_to_manager(options_for(path));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code, ECONNRESET);
        EXPECT_NE(r.error().message.find("closed the connection without answering the attach request"),
                  std::string::npos);
    }
    for (const auto& [what, reply] : std::vector<std::pair<std::string, std::vector<std::uint32_t>>>{
             {"shorter than a header", {1}},
             {"speaks protocol version 9", {9, 2, 0, 0}},
             {"attach reply of 16 bytes, expected 288", {1, 2, 0, 0}},
             {"answered an attach request with message type 4", {1, 4}}}) {
        SCOPED_TRACE(what);
        unlink(path.c_str());
        FakeManager fake(path, [reply = reply](int fd, const std::vector<std::byte>&) {
            const std::size_t size = reply.size() == 1 ? 3 : reply.size() * 4;
            (void)send(fd, reply.data(), size, MSG_NOSIGNAL);
            shutdown(fd, SHUT_RDWR);
        });
        auto r = attach_to_manager(options_for(path));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code, EPROTO);
        EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
    }
}

TEST(MgrClient, AttachmentGivesTheExactEalArgumentsAndDetaches) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    proto::AttachRequest seen{};
    FakeManager fake(path, [&seen](int fd, const std::vector<std::byte>& request) {
        std::memcpy(&seen, request.data(), std::min(request.size(), sizeof seen));
        const auto reply = good_reply(2);
        (void)send(fd, &reply, sizeof reply, MSG_NOSIGNAL);
    });
    fake.on_more = [](int fd, const std::vector<std::byte>& more) {
        proto::Header h{};
        std::memcpy(&h, more.data(), std::min(more.size(), sizeof h));
        if (h.type == proto::MessageType::detach_request) {
            const proto::DetachReply reply;
            (void)send(fd, &reply, sizeof reply, MSG_NOSIGNAL);
        }
    };
    AttachOptions o = options_for(path);
    o.selector = proto::PortSelector::by_name;
    o.port_name = "veth1";
    o.program = "redis-server";
    o.extra_eal_args = {"--log-level=lib.eal:debug"};
    auto r = attach_to_manager(o);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(seen.header.version, proto::k_version);
    EXPECT_EQ(seen.header.type, proto::MessageType::attach_request);
    EXPECT_EQ(seen.queues, 2u);
    EXPECT_EQ(seen.selector, proto::PortSelector::by_name);
    EXPECT_STREQ(seen.port_name, "veth1");
    EXPECT_STREQ(seen.program, "redis-server");
    Attachment& a = *r;
    EXPECT_TRUE(a.attached());
    EXPECT_EQ(a.port(), 1u);
    EXPECT_EQ(std::vector<QueueSlot>(a.slots().begin(), a.slots().end()), (std::vector<QueueSlot>{4, 5}));
    EXPECT_EQ(a.file_prefix(), "fp");
    EXPECT_EQ(a.huge_dir(), "/mnt/huge");
    EXPECT_EQ(a.eal_args(), (std::vector<std::string>{"--proc-type=secondary", "--file-prefix=fp",
                                                      "--huge-dir=/mnt/huge", "--lcores=5@1,6@0", "--no-pci",
                                                      "--no-telemetry", "--log-level=lib.eal:debug"}));
    auto detached = a.detach();
    EXPECT_TRUE(detached) << detached.error().message;
    EXPECT_FALSE(a.attached());
    auto twice = a.detach();
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().code, EINVAL);
}

TEST(MgrClient, CpusFromLstackConfOverrideTheManagers) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    FakeManager fake(path, [](int fd, const std::vector<std::byte>&) {
        const auto reply = good_reply(2);
        (void)send(fd, &reply, sizeof reply, MSG_NOSIGNAL);
    });
    AttachOptions o = options_for(path);
    o.cpus = {3};
    auto r = attach_to_manager(o);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->eal_args().at(3), "--lcores=5@3,6@3");
    EXPECT_EQ(r->reply().cpus[0], 1); // the manager's choice stays visible
}

TEST(MgrClient, DetachTimesOutWhenTheManagerIsSilent) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    FakeManager fake(path, [](int fd, const std::vector<std::byte>&) {
        const auto reply = good_reply(1);
        (void)send(fd, &reply, sizeof reply, MSG_NOSIGNAL);
    });
    auto r = attach_to_manager(options_for(path, 1));
    ASSERT_TRUE(r) << r.error().message;
    const auto t0 = Clock::now();
    auto d = r->detach();
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().code, ETIMEDOUT);
    EXPECT_LT(Clock::now() - t0, 900ms);
    EXPECT_FALSE(r->attached());
}

TEST(MgrClient, BadOptionsAreRefusedBeforeConnecting) {
    AttachOptions o = options_for("/nonexistent/mgr.sock", 0);
    EXPECT_EQ(attach_to_manager(o).error().code, EINVAL);
    o.queues = proto::k_max_app_queues + 1;
    auto r = attach_to_manager(o);
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_EQ(r.error().message, "attach: 9 queues asked, an application may have 1..8");
    o.queues = 1;
    o.selector = proto::PortSelector::by_name;
    o.port_name = "a-port-name-too-long";
    EXPECT_EQ(attach_to_manager(o).error().code, EINVAL);
}

TEST(MgrClient, OptionsFromLstackConf) {
    auto config = conf::parse_lstack_config("host_addr=\"198.18.0.5\"\nnum_cpus=\"2,3\"\nunix_prefix=\"blue-\"\ndpdk_"
                                            "args=[\"--log-level=lib.eal:debug\"]\n",
                                            "lstack.conf");
    ASSERT_TRUE(config) << config.error().message;
    const AttachOptions o = attach_options_from(*config);
    EXPECT_EQ(o.selector, proto::PortSelector::by_ipv4);
    EXPECT_EQ(o.ipv4, htonl(0xc6120005u));
    EXPECT_EQ(o.queues, 2u); // stack_num follows num_cpus
    EXPECT_EQ(o.cpus, (std::vector<unsigned>{2, 3}));
    EXPECT_EQ(o.socket_path, "/run/gazelle/blue-mgr.sock");
    EXPECT_EQ(o.extra_eal_args, (std::vector<std::string>{"--log-level=lib.eal:debug"}));
}

} // namespace
} // namespace gazelle::fabric
