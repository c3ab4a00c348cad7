// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Sleeping on several doorbells at once. A stack is fed by two inboxes (its forwarding inbox,
// and on a user-veth port its rx inbox), each with its own doorbell word, but a futex wait takes
// one word only. FUTEX_WAITV (Linux >= 5.16) waits on all of them; without it we wait on the first
// one with a short timeout (DoorbellSet::vectored() says which). Both words are process-shared
// futexes (the producers are other processes).
//
// Protocol, per inbox (fabric/inbox.h): prepare_sleep() -> re-check everything -> wait -> finish_sleep().

#include <array>
#include <cstdint>

#include "fabric/inbox.h"

namespace gazelle::stack::detail {

class DoorbellSet {
public:
    static constexpr unsigned k_max = 2;

    // Adds an inbox (valid, at most k_max). Returns false if its doorbell word could not be located.
    bool add(fabric::Inbox& inbox);
    // Announces the sleep on every inbox (the caller must re-check its work afterwards).
    void prepare();
    // Sleeps until a doorbell rings or timeout_usec passes; then withdraws the announcements.
    void wait(unsigned timeout_usec);
    void finish();
    bool vectored() const { return vectored_; }
    unsigned size() const { return count_; }

private:
    std::array<fabric::Inbox*, k_max> inboxes_{};
    std::array<std::atomic<std::uint32_t>*, k_max> words_{};
    std::array<std::uint32_t, k_max> seen_{};
    unsigned count_ = 0;
    bool vectored_ = true;
};

// Where an inbox's doorbell word lives (nullptr if the view is invalid).
std::atomic<std::uint32_t>* doorbell_word(const fabric::Inbox& inbox);

} // namespace gazelle::stack::detail
