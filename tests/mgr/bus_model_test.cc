// SPDX-License-Identifier: BSD-3-Clause
// The D-Bus layer's plain parts: ListRules filters and the names it puts on the wire.
#include "mgr/bus_model.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace gazelle::mgr {
namespace {

using fabric::FlowKey;
using fabric::FlowRule;

std::uint32_t ip(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
    return htonl((a << 24) | (b << 16) | (c << 8) | d);
}

FlowRule connection(std::uint8_t proto, std::uint16_t lport, std::uint16_t rport, fabric::QueueSlot slot) {
    FlowRule r;
    r.key = FlowKey::connection(proto, ip(198, 18, 0, 1), htons(lport), ip(198, 18, 0, 2), htons(rport));
    r.hit.kind = fabric::FlowHitKind::connection;
    r.hit.slot = slot;
    r.hit.epoch = 1;
    return r;
}

FlowRule listener(std::uint32_t local_ip, std::uint16_t port, std::uint64_t mask) {
    FlowRule r;
    r.key = FlowKey::listener(IPPROTO_TCP, local_ip, htons(port));
    r.hit.kind = fabric::FlowHitKind::listener;
    r.hit.mask = mask;
    return r;
}

RuleFilter parse(const std::string& text) {
    auto f = parse_rule_filter(text);
    EXPECT_TRUE(f.ok()) << text << ": " << (f.ok() ? "" : f.error().message);
    return f.ok() ? *f : RuleFilter{};
}

std::string parse_error(const std::string& text) {
    auto f = parse_rule_filter(text);
    EXPECT_FALSE(f.ok()) << "'" << text << "' was accepted";
    if (f.ok()) {
        return "";
    }
    EXPECT_EQ(f.error().code, EINVAL);
    return f.error().message;
}

TEST(RuleFilter, EmptyMatchesEverything) {
    EXPECT_TRUE(parse("").empty());
    EXPECT_TRUE(parse("  , \t ").empty());
    const std::vector<std::int32_t> pids(64, 0);
    EXPECT_TRUE(rule_matches(parse(""), connection(IPPROTO_TCP, 80, 4000, 0), pids));
    EXPECT_TRUE(rule_matches(parse(""), listener(0, 80, 1), pids));
}

TEST(RuleFilter, ParsesEveryKey) {
    const RuleFilter f = parse("pid=123 slot=2,port=80 lport=81 rport=82 ip=198.18.0.1 lip=198.18.0.2 "
                               "rip=198.18.0.3 proto=udp kind=listener");
    EXPECT_EQ(f.pid, 123);
    EXPECT_EQ(f.slot, 2);
    EXPECT_EQ(f.port, 80);
    EXPECT_EQ(f.local_port, 81);
    EXPECT_EQ(f.remote_port, 82);
    EXPECT_EQ(f.ip, 0xc6120001u);
    EXPECT_EQ(f.local_ip, 0xc6120002u);
    EXPECT_EQ(f.remote_ip, 0xc6120003u);
    EXPECT_EQ(f.proto, IPPROTO_UDP);
    EXPECT_EQ(f.kind, fabric::FlowKeyKind::listener);
    EXPECT_EQ(parse("proto=tcp kind=connection").proto, IPPROTO_TCP);
}

TEST(RuleFilter, ErrorsNameTheBadTermAndSayWhatIsExpected) {
    std::string e = parse_error("pid=1 prot=tcp");
    EXPECT_NE(e.find("'prot=tcp'"), std::string::npos) << e;
    EXPECT_NE(e.find("unknown key 'prot'"), std::string::npos) << e;
    EXPECT_NE(e.find("proto"), std::string::npos) << e; // lists the keys
    e = parse_error("slot");
    EXPECT_NE(e.find("'slot'"), std::string::npos) << e;
    EXPECT_NE(e.find("key=value"), std::string::npos) << e;
    EXPECT_NE(parse_error("pid=0").find("process id"), std::string::npos);
    EXPECT_NE(parse_error("pid=12x").find("'pid=12x'"), std::string::npos);
    EXPECT_NE(parse_error("pid=-5").find("process id"), std::string::npos);
    EXPECT_NE(parse_error("pid=99999999999").find("process id"), std::string::npos);
    EXPECT_NE(parse_error("slot=64").find("0..63"), std::string::npos);
    EXPECT_NE(parse_error("port=65536").find("0..65535"), std::string::npos);
    EXPECT_NE(parse_error("port=").find("port number"), std::string::npos);
    EXPECT_NE(parse_error("ip=1.2.3").find("'ip=1.2.3'"), std::string::npos);
    EXPECT_NE(parse_error("proto=icmp").find("tcp or proto=udp"), std::string::npos);
    EXPECT_NE(parse_error("kind=rule").find("connection or kind=listener"), std::string::npos);
}

TEST(RuleFilter, LongInputIsRefusedBeforeParsingAndQuotedShort) {
    const std::string huge(1 << 20, 'x');
    const std::string e = parse_error(huge);
    EXPECT_NE(e.find("1048576 bytes"), std::string::npos) << e;
    EXPECT_LT(e.size(), 200u);
    // A bad term near the limit is quoted, cut to 64 bytes.
    const std::string term = "zz=" + std::string(900, 'y');
    const std::string e2 = parse_error(term);
    EXPECT_LT(e2.size(), 300u) << e2;
    EXPECT_NE(e2.find("..."), std::string::npos) << e2;
    // Control characters never reach the error text.
    EXPECT_EQ(parse_error("a\x01=1").find('\x01'), std::string::npos);
}

TEST(RuleFilter, MatchesConnectionsByOwnerPortAddressProtoAndKind) {
    std::vector<std::int32_t> pids(64, 0);
    pids[0] = 100;
    pids[2] = 200;
    const FlowRule web = connection(IPPROTO_TCP, 80, 40000, 2);
    const FlowRule dns = connection(IPPROTO_UDP, 53, 40001, 0);
    EXPECT_TRUE(rule_matches(parse("pid=200"), web, pids));
    EXPECT_FALSE(rule_matches(parse("pid=100"), web, pids));
    EXPECT_TRUE(rule_matches(parse("slot=2"), web, pids));
    EXPECT_FALSE(rule_matches(parse("slot=0"), web, pids));
    EXPECT_TRUE(rule_matches(parse("port=80"), web, pids));
    EXPECT_TRUE(rule_matches(parse("port=40000"), web, pids)); // remote port too
    EXPECT_FALSE(rule_matches(parse("lport=40000"), web, pids));
    EXPECT_TRUE(rule_matches(parse("rport=40000"), web, pids));
    EXPECT_TRUE(rule_matches(parse("ip=198.18.0.2"), web, pids));
    EXPECT_FALSE(rule_matches(parse("lip=198.18.0.2"), web, pids));
    EXPECT_TRUE(rule_matches(parse("rip=198.18.0.2"), web, pids));
    EXPECT_TRUE(rule_matches(parse("proto=udp"), dns, pids));
    EXPECT_FALSE(rule_matches(parse("proto=udp"), web, pids));
    EXPECT_TRUE(rule_matches(parse("kind=connection"), web, pids));
    EXPECT_FALSE(rule_matches(parse("kind=listener"), web, pids));
    EXPECT_TRUE(rule_matches(parse("pid=200 port=80 proto=tcp"), web, pids));
    EXPECT_FALSE(rule_matches(parse("pid=200 port=81"), web, pids)); // every term must match
}

TEST(RuleFilter, MatchesListenersByTheirSet) {
    std::vector<std::int32_t> pids(64, 0);
    pids[0] = 100;
    pids[1] = 100;
    pids[5] = 300;
    const FlowRule l = listener(0, 80, (1u << 1) | (1u << 5));
    EXPECT_TRUE(rule_matches(parse("slot=5"), l, pids));
    EXPECT_FALSE(rule_matches(parse("slot=0"), l, pids));
    EXPECT_TRUE(rule_matches(parse("pid=100"), l, pids));
    EXPECT_TRUE(rule_matches(parse("pid=300"), l, pids));
    EXPECT_FALSE(rule_matches(parse("pid=200"), l, pids));
    EXPECT_TRUE(rule_matches(parse("port=80 kind=listener"), l, pids));
    EXPECT_FALSE(rule_matches(parse("rport=80"), l, pids)); // a listener has no remote end
    EXPECT_TRUE(rule_matches(parse("lip=0.0.0.0"), l, pids));
}

TEST(WireNames, AreStable) {
    EXPECT_STREQ(queue_state_name(fabric::QueueState::free), "free");
    EXPECT_STREQ(queue_state_name(fabric::QueueState::owned), "owned");
    EXPECT_STREQ(queue_state_name(fabric::QueueState::draining), "draining");
    EXPECT_EQ(proto_name(IPPROTO_TCP), "tcp");
    EXPECT_EQ(proto_name(IPPROTO_UDP), "udp");
    EXPECT_EQ(proto_name(132), "132");
    EXPECT_EQ(ipv4_name(ip(198, 18, 0, 1)), "198.18.0.1");
    EXPECT_STREQ(app_end_name(AppEnd::detached), "detached");
    EXPECT_STREQ(app_end_name(AppEnd::exited), "exited");
    EXPECT_STREQ(app_end_name(AppEnd::hung), "hung");
    EXPECT_STREQ(app_end_name(AppEnd::forced), "forced");
    EXPECT_FALSE(is_crash(AppEnd::detached));
    EXPECT_TRUE(is_crash(AppEnd::exited));
    EXPECT_TRUE(is_crash(AppEnd::hung));
    EXPECT_TRUE(is_crash(AppEnd::forced));
}

} // namespace
} // namespace gazelle::mgr
