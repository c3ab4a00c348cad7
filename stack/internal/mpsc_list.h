// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// A lock-free multi-producer, single-consumer intrusive list: producers push one node with a CAS
// loop (no lock, no allocation: the node lives in the request or socket it stands for), the
// consumer takes the whole list at once with one exchange and gets it back in push order.
//
// Why this shape: the consumer is a stack thread that must never block, and producers are any
// number of app threads (or several stack threads). A producer preempted in the middle of push()
// holds nothing another thread waits for: it simply retries its CAS later. Taking the whole list
// (never popping one node) makes the CAS free of ABA.

#include <atomic>

namespace gazelle::stack::detail {

// Next is the node's link member (a node may sit in several lists through different members).
template <typename Node, Node* Node::*Next>
class MpscList {
public:
    // Any thread. Returns true if the list was empty before (the consumer may need a wake-up).
    bool push(Node* node) {
        Node* head = head_.load(std::memory_order_relaxed);
        do {
            node->*Next = head;
        } while (!head_.compare_exchange_weak(head, node, std::memory_order_seq_cst, std::memory_order_relaxed));
        return head == nullptr;
    }

    // Consumer only: the nodes pushed so far, oldest first, linked by Next (nullptr: none).
    Node* take_all() {
        Node* list = head_.exchange(nullptr, std::memory_order_acquire);
        Node* ordered = nullptr;
        while (list != nullptr) {
            Node* next = list->*Next;
            list->*Next = ordered;
            ordered = list;
            list = next;
        }
        return ordered;
    }

    bool empty() const { return head_.load(std::memory_order_seq_cst) == nullptr; }

private:
    std::atomic<Node*> head_{nullptr};
};

} // namespace gazelle::stack::detail
