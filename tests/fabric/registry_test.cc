// SPDX-License-Identifier: BSD-3-Clause
// The registry's adoption leases (QueueEntry::adopter) on a private RegistryLayout: no EAL, no
// shared memory. The multi-process behaviour (stacks adopting tap queues, hand-over to a new
// owner, reclaim of a dead adopter) is tests/stack/tap_adopt_mp_test.cc.
#include "fabric/registry.h"

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

namespace gazelle::fabric {
namespace {

class RegistryAdoptionTest : public testing::Test {
protected:
    void SetUp() override {
        layout_ = std::make_unique<RegistryLayout>();
        layout_->max_queues = 8;
        for (QueueEntry& q : layout_->queues) {
            q.port = 0xffff;
        }
        registry_ = Registry(layout_.get());
        PortSpec tap{};
        std::strcpy(tap.name, "tap0");
        tap.kind = PortKind::ethdev;
        tap.nb_queues = 4;
        ASSERT_TRUE(registry_.add_port(tap));
    }

    std::unique_ptr<RegistryLayout> layout_;
    Registry registry_;
};

TEST_F(RegistryAdoptionTest, OneLeasePerFreeQueueTakenByCas) {
    ASSERT_TRUE(registry_.claim(0, 100, 10));
    ASSERT_TRUE(registry_.claim(1, 101, 11));
    const OwnerTag a = registry_.owner_tag(0);
    const OwnerTag b = registry_.owner_tag(1);
    EXPECT_TRUE(registry_.adopter_of(2).empty());
    EXPECT_TRUE(registry_.try_adopt(2, a));
    EXPECT_FALSE(registry_.try_adopt(2, b)) << "a second stack must never poll the same queue";
    EXPECT_EQ(registry_.adopter_of(2), a);
    registry_.release_adoption(2, b); // not b's lease: no effect
    EXPECT_EQ(registry_.adopter_of(2), a);
    registry_.release_adoption(2, a);
    EXPECT_TRUE(registry_.adopter_of(2).empty());
    EXPECT_TRUE(registry_.try_adopt(2, b));
    EXPECT_FALSE(registry_.try_adopt(2, OwnerTag{})) << "nobody's tag is no lease";
    EXPECT_FALSE(registry_.try_adopt(7, a)) << "no such slot";
}

TEST_F(RegistryAdoptionTest, OwnedQueuesAreNotAdoptedAndClaimKeepsTheLeaseForTheHandOver) {
    ASSERT_TRUE(registry_.claim(0, 100, 10));
    const OwnerTag a = registry_.owner_tag(0);
    EXPECT_FALSE(registry_.try_adopt(0, a)) << "an owned queue is polled by its owner";
    EXPECT_TRUE(registry_.adopter_of(0).empty()) << "a failed adoption leaves no lease behind";

    ASSERT_TRUE(registry_.try_adopt(3, a));
    // A new app claims queue 3: the claim succeeds, and the lease stays until the adopter lets go
    // (its next poll sees the queue owned), which is what the new owner waits for.
    auto epoch = registry_.claim(3, 102, 12);
    ASSERT_TRUE(epoch);
    EXPECT_EQ(registry_.adopter_of(3), a);
    EXPECT_EQ(registry_.queue(3).state.load(), QueueState::owned);
    registry_.release_adoption(3, a);
    EXPECT_TRUE(registry_.adopter_of(3).empty());
    EXPECT_FALSE(registry_.try_adopt(3, a));
}

TEST_F(RegistryAdoptionTest, ReclaimGivesBackEveryLeaseOfTheDeadStackOnly) {
    ASSERT_TRUE(registry_.claim(0, 100, 10));
    ASSERT_TRUE(registry_.claim(1, 101, 11));
    const OwnerTag a = registry_.owner_tag(0);
    const OwnerTag b = registry_.owner_tag(1);
    ASSERT_TRUE(registry_.try_adopt(2, a));
    ASSERT_TRUE(registry_.try_adopt(3, b));
    EXPECT_EQ(registry_.release_adoptions_of(a), 1u);
    EXPECT_TRUE(registry_.adopter_of(2).empty());
    EXPECT_EQ(registry_.adopter_of(3), b);
    EXPECT_EQ(registry_.release_adoptions_of(a), 0u) << "idempotent";
    // The dead stack's successor on slot 0 has a new epoch: a lease of the old epoch is not its.
    registry_.begin_drain(0);
    registry_.release(0);
    ASSERT_TRUE(registry_.claim(0, 103, 13));
    EXPECT_NE(registry_.owner_tag(0), a);
    EXPECT_EQ(registry_.release_adoptions_of(registry_.owner_tag(0)), 0u);
    EXPECT_EQ(registry_.adopter_of(3), b);
}

} // namespace
} // namespace gazelle::fabric
