// SPDX-License-Identifier: BSD-3-Clause
// The lock-free MPSC request list (stack/internal/mpsc_list.h): push order per producer, no loss
// with several producers and a consumer taking the list concurrently.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "stack/internal/mpsc_list.h"

namespace {

struct Node {
    Node* next = nullptr;
    unsigned producer = 0;
    unsigned seq = 0;
};
using List = gazelle::stack::detail::MpscList<Node, &Node::next>;

TEST(MpscList, TakeAllReturnsPushOrder) {
    List list;
    EXPECT_TRUE(list.empty());
    Node a{nullptr, 0, 1};
    Node b{nullptr, 0, 2};
    Node c{nullptr, 0, 3};
    EXPECT_TRUE(list.push(&a)); // was empty
    EXPECT_FALSE(list.push(&b));
    EXPECT_FALSE(list.push(&c));
    Node* n = list.take_all();
    EXPECT_TRUE(list.empty());
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->seq, 1u);
    EXPECT_EQ(n->next->seq, 2u);
    EXPECT_EQ(n->next->next->seq, 3u);
    EXPECT_EQ(n->next->next->next, nullptr);
    EXPECT_EQ(list.take_all(), nullptr);
}

TEST(MpscList, ConcurrentProducersLoseNothingAndKeepTheirOrder) {
    constexpr unsigned producers = 4;
    constexpr unsigned per_producer = 50000;
    std::vector<std::vector<Node>> nodes(producers, std::vector<Node>(per_producer));
    List list;
    std::atomic<unsigned> running{producers};
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            for (unsigned i = 0; i < per_producer; ++i) {
                nodes[p][i].producer = p;
                nodes[p][i].seq = i;
                list.push(&nodes[p][i]);
            }
            running.fetch_sub(1);
        });
    }
    std::vector<unsigned> next(producers, 0);
    unsigned total = 0;
    unsigned out_of_order = 0;
    while (running.load() != 0 || !list.empty()) {
        for (Node* n = list.take_all(); n != nullptr; n = n->next) {
            out_of_order += n->seq != next[n->producer] ? 1u : 0u;
            next[n->producer] = n->seq + 1;
            ++total;
        }
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(total, producers * per_producer);
    EXPECT_EQ(out_of_order, 0u);
}

} // namespace
