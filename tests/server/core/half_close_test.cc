// A GetOrCompute caller that half-closes (sends no more messages, as grpcurl
// does right after its Lookup) can never send a Fill: it must never hold the
// key's lock, and it is served as a reader (the value when someone fills; a
// wait-timeout error otherwise). Each case on both stores, with the
// half-close reaching the coordinator while the Lookup's store read is
// still unanswered, while the lock attempt that follows it is, and after
// the caller settled (into a wait, or into a lease). On the embedded store
// the interleavings are exact (ManualExecutor); see coordinator_fixture.h.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "tests/server/core/coordinator_fixture.h"

namespace corral {
namespace {

using namespace ::corral::testing_internal;  // NOLINT: the suite's fixture.

class HalfCloseTest : public CoordinatorTest {
 protected:
  // Takes the key's lock as another replica would (straight in the store).
  void LockElsewhere(const CacheKey& key, const std::string& token) {
    // Stores are driven from the executor only (hiredis is not
    // thread-safe), as the coordinator drives them.
    auto attempt = Sync<LockAttempt>([&](auto done) {
      executor().Post([&, done = std::move(done)]() mutable {
        store_->inner().TryLock(key, token, absl::Seconds(30), std::move(done));
      });
    });
    ASSERT_OK(attempt);
    ASSERT_TRUE(attempt->acquired);
  }
  // That replica's fill: a fenced write that releases the lock, announced
  // by the store (this replica hears it only if it watches the key).
  void FillElsewhere(const CacheKey& key, const std::string& token,
                     const std::string& value) {
    PutOptions options;
    options.ttl = absl::Seconds(60);
    options.lock_token = token;
    options.release_lock = true;
    auto stored = Sync<bool>([&](auto done) {
      executor().Post([&, done = std::move(done)]() mutable {
        store_->inner().Put(key, value, options, std::move(done));
      });
    });
    ASSERT_THAT(stored, corral::testing::IsOkAndHolds(true));
  }
  // Another caller of this replica computes `value` for the key.
  void ComputeHere(const CacheKey& key, const std::string& value) {
    Call computer = Lookup(key);
    ASSERT_TRUE(computer.sink->WaitLease()) << computer.sink->status();
    coordinator_->ComputeFill(computer.id,
                              FillRequest{value, absl::Seconds(60)});
    ASSERT_TRUE(computer.sink->WaitDone());
    ASSERT_TRUE(computer.sink->filled().has_value() &&
                computer.sink->filled()->stored);
  }
  void HalfClose(const Call& c) {
    coordinator_->ComputeHalfClosed(c.id);
    Drain();
  }
  // The value a reader got, which must have come from someone else's fill.
  static void ExpectPeerValue(const Call& c, const std::string& value) {
    ASSERT_TRUE(c.sink->WaitDone(absl::Seconds(3))) << "not woken by the fill";
    ASSERT_TRUE(c.sink->value().has_value()) << c.sink->status();
    EXPECT_EQ(c.sink->value()->bytes(), value);
    EXPECT_EQ(c.sink->value()->source, Source::kPeerFill);
  }
};

// Issue: a waiter on another replica than the leaseholder that half-closed
// early was never woken by the fill (it never tried the lock, so it never
// watched the key) and got the value only at its wait_timeout.
TEST_P(HalfCloseTest, WaiterIsWokenByAnotherReplicasFill) {
  // Before the read is answered.
  {
    const CacheKey key{"plant_id", "held-elsewhere-1"};
    LockElsewhere(key, "other-replica-1");
    store_->Hold();
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(store_->WaitHeld(1));
    HalfClose(c);
    store_->Release();
    FillElsewhere(key, "other-replica-1", "rose");
    ExpectPeerValue(c, "rose");
    EXPECT_FALSE(c.sink->HasLease());
  }
  // As the read is answered (the half-close queued right behind it).
  {
    const CacheKey key{"plant_id", "held-elsewhere-2"};
    LockElsewhere(key, "other-replica-2");
    store_->Hold();
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(store_->WaitHeld(1));
    store_->Release();
    HalfClose(c);  // Queued behind the read's answer.
    FillElsewhere(key, "other-replica-2", "tulip");
    ExpectPeerValue(c, "tulip");
  }
  // After it settled into its wait.
  {
    const CacheKey key{"plant_id", "held-elsewhere-3"};
    LockElsewhere(key, "other-replica-3");
    const int watches = store_->watches.load();
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(Eventually([&] { return store_->watches.load() > watches; }));
    HalfClose(c);
    FillElsewhere(key, "other-replica-3", "iris");
    ExpectPeerValue(c, "iris");
  }
}

// Issue: a caller that half-closed while its lock attempt was in flight was
// handed the lease anyway, and held the lock until its call deadline though
// it could never fill; the next caller waited out its wait_timeout.
TEST_P(HalfCloseTest, NeverHoldsTheLock) {
  // Before its read is answered: it never tries the lock.
  {
    const CacheKey key{"plant_id", "half-closed-1"};
    store_->Hold();
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(store_->WaitHeld(1));
    HalfClose(c);
    store_->Release();
    Drain();
    ComputeHere(key, "rose");  // The lock is free: the next caller gets it.
    ExpectPeerValue(c, "rose");
    EXPECT_FALSE(c.sink->HasLease());
  }
  // While its lock attempt is in flight: the lock goes back.
  {
    const CacheKey key{"plant_id", "half-closed-2"};
    store_->Hold();
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(store_->WaitHeld(1));  // The read.
    store_->Release(/*keep_holding=*/true);
    ASSERT_TRUE(store_->WaitHeld(1));  // The lock attempt, which wins.
    HalfClose(c);
    store_->Release();
    Drain();
    ComputeHere(key, "tulip");
    ExpectPeerValue(c, "tulip");
    EXPECT_FALSE(c.sink->HasLease());
  }
  // After it was handed the lease: the lease goes back at once, and the
  // caller still gets the value someone else computes.
  {
    const CacheKey key{"plant_id", "half-closed-3"};
    Call c = Lookup(key, absl::Seconds(10));
    ASSERT_TRUE(c.sink->WaitLease());
    HalfClose(c);
    ComputeHere(key, "iris");
    ExpectPeerValue(c, "iris");
  }
}

// Alone (nobody else computes), it ends with a wait-timeout error at its
// wait_timeout, holding nothing: half-closed while its read, or its lock
// attempt (which wins), is unanswered.
TEST_P(HalfCloseTest, AloneItGetsAWaitTimeoutAndTheLockStaysFree) {
  for (int answers_before_half_close : {0, 1}) {
    SCOPED_TRACE(answers_before_half_close == 0 ? "during the read"
                                                : "during the lock attempt");
    const CacheKey key{"plant_id", absl::StrCat("half-closed-alone-",
                                                answers_before_half_close)};
    store_->Hold();
    Call c = Lookup(key, absl::Milliseconds(300));
    ASSERT_TRUE(store_->WaitHeld(1));
    if (answers_before_half_close == 1) {
      store_->Release(/*keep_holding=*/true);
      ASSERT_TRUE(store_->WaitHeld(1));
    }
    HalfClose(c);
    store_->Release();
    if (embedded()) {  // Exactly at its wait_timeout, not a moment before.
      Advance(absl::Milliseconds(300) - absl::Nanoseconds(1));
      EXPECT_FALSE(c.sink->Done());
    }
    ASSERT_TRUE(
        AdvanceUntil([&] { return c.sink->Done(); }, absl::Milliseconds(300)))
        << "no answer at its wait_timeout";
    EXPECT_FALSE(c.sink->HasLease());
    EXPECT_THAT(c.sink->status(),
                corral::testing::StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_EQ(ReasonOf(c.sink->status()), "wait-timeout");
    EXPECT_EQ(observer_.duplicates.load(), 0);
    // Nobody kept the lock: the next caller computes at once.
    Call next = Lookup(key);
    EXPECT_TRUE(next.sink->WaitLease(absl::Seconds(1)));
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, HalfCloseTest,
                         ::testing::Values(StoreKind::kEmbedded,
                                           StoreKind::kRedis),
                         [](const auto& info) {
                           return info.param == StoreKind::kEmbedded
                                      ? "Embedded"
                                      : "Redis";
                         });

}  // namespace
}  // namespace corral
