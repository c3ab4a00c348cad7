// SPDX-License-Identifier: BSD-3-Clause
// The SPSC byte ring between an app thread and a stack thread (stack/internal/byte_ring.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "stack/internal/byte_ring.h"

namespace {

using gazelle::stack::detail::ByteRing;

TEST(ByteRing, WrapsAroundAndCountsConsumption) {
    ByteRing ring(16);
    const char data[] = "0123456789abcdefXYZ";
    EXPECT_EQ(ring.write(data, 10), 10u);
    char out[32] = {};
    EXPECT_EQ(ring.read(out, 6), 6u);
    EXPECT_EQ(std::string(out, 6), "012345");
    EXPECT_EQ(ring.write(data + 10, 9), 9u); // wraps
    EXPECT_EQ(ring.free_space(), 3u);
    EXPECT_EQ(ring.write(data, 10), 3u);     // only what fits
    EXPECT_EQ(ring.available(), 16u);
    EXPECT_EQ(ring.read(out, 32), 16u);
    EXPECT_EQ(std::string(out, 16), "6789abcdefXYZ012");
    EXPECT_EQ(ring.consumed_total(), 22u);
    EXPECT_TRUE(ring.empty());
}

TEST(ByteRing, ContiguousViewAndTwoStepWrite) {
    ByteRing ring(8);
    ring.copy_at(0, "abc", 3);
    ring.copy_at(3, "defgh", 5);
    ring.publish(8);
    EXPECT_EQ(ring.free_space(), 0u);
    auto first = ring.contiguous();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(first.data()), first.size()), "abcdefgh");
    ring.consume(6);
    EXPECT_EQ(ring.write("12345", 5), 5u);
    auto tail = ring.contiguous(); // "gh" up to the end of the buffer, then wraps
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(tail.data()), tail.size()), "gh");
}

TEST(ByteRing, ProducerAndConsumerThreadsSeeEveryByteInOrder) {
    ByteRing ring(4096);
    constexpr std::uint32_t total = 8u << 20;
    std::thread producer([&] {
        std::vector<std::uint8_t> chunk(1500);
        std::uint32_t sent = 0;
        while (sent < total) {
            const std::uint32_t n = std::min<std::uint32_t>(static_cast<std::uint32_t>(chunk.size()), total - sent);
            for (std::uint32_t i = 0; i < n; ++i) {
                chunk[i] = static_cast<std::uint8_t>((sent + i) * 7u);
            }
            std::uint32_t done = 0;
            while (done < n) {
                done += ring.write(chunk.data() + done, n - done);
                if (done < n) {
                    std::this_thread::yield();
                }
            }
            sent += n;
        }
    });
    std::uint32_t received = 0;
    std::uint32_t errors = 0;
    std::vector<std::uint8_t> buf(3000);
    while (received < total) {
        const std::uint32_t n = ring.read(buf.data(), buf.size());
        for (std::uint32_t i = 0; i < n; ++i) {
            errors += buf[i] != static_cast<std::uint8_t>((received + i) * 7u) ? 1u : 0u;
        }
        received += n;
        if (n == 0) {
            std::this_thread::yield();
        }
    }
    producer.join();
    EXPECT_EQ(errors, 0u);
    EXPECT_EQ(ring.consumed_total(), total);
}

} // namespace
