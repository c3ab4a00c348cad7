// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the frame parser every stack runs on untrusted traffic. ASan catches any read
// past the frame; the checks below catch results that contradict the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fabric/packet_parser.h"

using gazelle::fabric::PacketKind;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exact-size heap copy: ASan reports a read even one byte past the frame.
    std::vector<std::uint8_t> frame(data, data + size);
    const auto len = static_cast<std::uint32_t>(size);
    const auto info = gazelle::fabric::parse_frame(frame.data(), len);
    if (info.kind == PacketKind::ipv4_flow && info.proto != 6 && info.proto != 17) {
        std::abort(); // a flow is TCP or UDP by definition
    }
    if (info.kind != PacketKind::malformed && size < 14) {
        std::abort(); // nothing parses without an Ethernet header
    }
    return 0;
}
