// SPDX-License-Identifier: BSD-3-Clause
// mgr/registration.h without DPDK: the wire checks and the listening socket (directories, mode,
// stale sockets, a socket someone listens on).
#include "mgr/registration.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/support/test_support.h"

namespace gazelle::mgr {
namespace {

template <typename T> std::vector<std::byte> bytes(const T& value, std::size_t size = sizeof(T)) {
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), &value, std::min(size, sizeof value));
    return out;
}

TEST(DecodeAppMessage, AcceptsTheTwoRequests) {
    proto::AttachRequest attach;
    attach.queues = 3;
    std::strcpy(attach.program, "nginx");
    const auto a = bytes(attach);
    auto m = decode_app_message(a, a.size());
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->type, proto::MessageType::attach_request);
    EXPECT_EQ(m->attach.queues, 3u);
    EXPECT_STREQ(m->attach.program, "nginx");
    const auto d = bytes(proto::DetachRequest{});
    m = decode_app_message(d, d.size());
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, proto::MessageType::detach_request);
}

TEST(DecodeAppMessage, RefusesWithEprotoSayingWhatWasWrong) {
    struct Case {
        std::vector<std::byte> data;
        std::size_t size;
        const char* message;
    };
    proto::AttachRequest v2;
    v2.header.version = 2;
    const auto attach = bytes(proto::AttachRequest{});
    const std::vector<Case> cases = {
        {{std::byte{1}}, 1, "message of 1 bytes is shorter than a header (8 bytes)"},
        {bytes(v2), sizeof v2, "protocol version 2, this gazelle-mgr speaks version 1"},
        {attach, attach.size() + 100, "attach request of 176 bytes, expected 76 (another protocol build?)"},
        {bytes(proto::AttachRequest{}, 40), 40, "attach request of 40 bytes, expected 76 (another protocol build?)"},
        {bytes(proto::Header{1, proto::MessageType::error_reply}), 8,
         "message type 5 is not a request (expected attach_request = 1 or detach_request = 3)"},
        {bytes(proto::Header{1, static_cast<proto::MessageType>(0)}), 8, "message type 0 is not a request"},
        {bytes(proto::DetachRequest{}, 12), 12, "detach request of 12 bytes, expected 8"},
    };
    for (const Case& c : cases) {
        auto m = decode_app_message(c.data, c.size);
        ASSERT_FALSE(m) << c.message;
        EXPECT_EQ(m.error().code, EPROTO);
        EXPECT_NE(m.error().message.find(c.message), std::string::npos) << m.error().message;
    }
}

TEST(Replies, ErrorReplyIsCutToFitAndNulTerminated) {
    const auto reply = make_error_reply(make_error(EBUSY, std::string(1000, 'x')));
    EXPECT_EQ(reply.header.type, proto::MessageType::error_reply);
    EXPECT_EQ(reply.code, EBUSY);
    EXPECT_EQ(std::strlen(reply.message), sizeof reply.message - 1);
}

TEST(Replies, RequestTextIsSafeForLogs) {
    const char raw[8] = {'a', ' ', 'b', '\n', '\x7f', 'c', 'd', 'e'}; // no NUL
    EXPECT_EQ(request_text(raw, sizeof raw), "a?b??cde");
    const char short_text[8] = "ok";
    EXPECT_EQ(request_text(short_text, sizeof short_text), "ok");
}

TEST(Replies, DescribeSelector) {
    proto::AttachRequest r;
    EXPECT_EQ(describe_selector(r), "any port");
    r.selector = proto::PortSelector::by_ipv4;
    r.ipv4 = htonl(0xc6120009u);
    EXPECT_EQ(describe_selector(r), "the port with IPv4 198.18.0.9");
    r.selector = proto::PortSelector::by_mac;
    const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
    std::memcpy(r.mac, mac, 6);
    EXPECT_EQ(describe_selector(r), "the port with MAC 02:00:00:00:00:09");
    r.selector = proto::PortSelector::by_name;
    std::strcpy(r.port_name, "veth7");
    EXPECT_EQ(describe_selector(r), "port 'veth7'");
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// A socket file nobody listens on (as a killed manager leaves it).
void make_stale_socket(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    close(fd);
}

TEST(RegistrationSocket, CreatesDirectoriesAndA0660Socket) {
    test::TempDir dir;
    const std::string path = dir.path() + "/a/b/mgr.sock";
    const mode_t old = umask(0077); // a strict umask must not change the modes
    auto s = RegistrationSocket::listen(path);
    umask(old);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(mode_of(dir.path() + "/a"), 0755u);
    EXPECT_EQ(mode_of(dir.path() + "/a/b"), 0755u);
    EXPECT_EQ(mode_of(path), 0660u);
    auto connection = s->accept();
    ASSERT_FALSE(connection);
    EXPECT_EQ(connection.error().code, EAGAIN);
    // Someone listens now: a second manager is refused, before and at bind time.
    auto again = RegistrationSocket::listen(path);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, EADDRINUSE);
    EXPECT_NE(again.error().message.find("another gazelle-mgr is listening on '" + path + "'"), std::string::npos);
    EXPECT_EQ(RegistrationSocket::check_unused(path).error().code, EADDRINUSE);
    s->close();
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(RegistrationSocket, RemovesAStaleSocketOnly) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    make_stale_socket(path);
    EXPECT_TRUE(RegistrationSocket::check_unused(path));
    auto s = RegistrationSocket::listen(path);
    ASSERT_TRUE(s) << s.error().message;
    s->close();
    const std::string file = dir.write("not-a-socket", "x");
    auto e = RegistrationSocket::listen(file);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, EEXIST);
    EXPECT_TRUE(std::filesystem::exists(file));
    e = RegistrationSocket::listen("relative.sock");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, ENAMETOOLONG);
    e = RegistrationSocket::listen("/" + std::string(200, 'x'));
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, ENAMETOOLONG);
}

TEST(RegistrationSocket, CloseLeavesAReplacedFileAlone) {
    test::TempDir dir;
    const std::string path = dir.path() + "/mgr.sock";
    auto s = RegistrationSocket::listen(path);
    ASSERT_TRUE(s);
    // Another manager replaced the file (after removing ours): ours must not remove its socket.
    std::filesystem::remove(path);
    make_stale_socket(path);
    s->close();
    EXPECT_TRUE(std::filesystem::exists(path));
}

} // namespace
} // namespace gazelle::mgr
