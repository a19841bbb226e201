// AcquireLock waits alone (server/core/lock_waiters.h) over a real flight
// table, breaker registry and embedded store, stepped by hand: grants,
// turns in the FIFO, timeouts, try-once, cancellation and shutdown, and a
// grant over the namespace's compute budget (issue 18).
#include "server/core/lock_waiters.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/store/embedded_store.h"
#include "tests/server/core/recording_observer.h"
#include "tests/support/manual_executor.h"

namespace corral {
namespace {

using ::corral::testing::ManualExecutor;
using ::corral::testing::RecordingObserver;

class LockWaitersTest : public ::testing::Test,
                        public FlightTable::Owner,
                        public StoreListener {
 protected:
  LockWaitersTest()
      : executor_(clock_),
        store_(executor_, clock_),
        breakers_(executor_, store_, clock_, observer_),
        flights_(executor_, store_, clock_, limits_, *this),
        budget_(store_, executor_, clock_, observer_),
        waiters_(executor_, store_, clock_, observer_, breakers_, budget_,
                 flights_, limits_) {
    store_.SetListener(this);
  }
  ~LockWaitersTest() override { store_.SetListener(nullptr); }

  // Starts a wait; its answer lands in the returned slot.
  std::optional<absl::StatusOr<LockGrant>>& Acquire(
      CallId id, std::optional<absl::Duration> wait,
      std::string owner = "worker") {
    AcquireLockRequest request;
    request.key = key_;
    request.wait_timeout = wait;
    request.ttl = absl::Seconds(30);
    request.owner = std::move(owner);
    auto& slot = answers_[id];
    waiters_.Start(id, std::move(request), settings_,
                   [&slot](absl::StatusOr<LockGrant> g) { slot = g; });
    executor_.RunUntilIdle();
    return slot;
  }
  void Release(const std::string& token) {
    store_.ReleaseLock(key_, token, ReleaseNotice::kReleased,
                       [](absl::StatusOr<bool>) {});
    executor_.RunUntilIdle();
  }

  // A budget of one compute in flight whose slot someone else holds (another
  // replica's compute): what a grant meets over budget.
  void BudgetOfOneTakenElsewhere() {
    settings_.name = key_.ns;
    settings_.compute_budget.max_in_flight = 1;
    BudgetLimits limits;
    limits.max_in_flight = 1;
    bool admitted = false;
    store_.ChargeBudget(key_.ns, "elsewhere", limits, absl::Minutes(5),
                        [&admitted](absl::StatusOr<BudgetCharge> charge) {
                          admitted = charge.ok() && charge->admitted;
                        });
    executor_.RunUntilIdle();
    ASSERT_TRUE(admitted);
  }
  void ReturnTheSlotElsewhere() {
    store_.ReturnBudget(key_.ns, "elsewhere", [](absl::StatusOr<bool>) {});
    executor_.RunUntilIdle();
  }
  // Whether nobody holds the key's lock (asked of the store itself).
  bool LockIsFree() {
    bool free = false;
    store_.TryLock(key_, "probe", absl::Seconds(1),
                   [&free](absl::StatusOr<LockAttempt> attempt) {
                     free = attempt.ok() && attempt->acquired;
                   });
    executor_.RunUntilIdle();
    if (free) Release("probe");
    return free;
  }

  // FlightTable::Owner.
  Waiter* FindWaiter(CallId id) override { return waiters_.Find(id); }
  bool StillHoldsLock(CallId, const CacheKey&) override { return false; }
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> read) override {
    flights_.EndRead(key, read.ok(), false);
  }
  // StoreListener: a release wakes the key, as the Coordinator does.
  void OnKeyEvent(const KeyEvent& event) override {
    if (event.kind == KeyEvent::Kind::kReleased) flights_.Wake(event.key);
  }
  void OnStoreAvailability(bool) override {}
  void OnBreakerChanged(const std::string& ns,
                        const BreakerRecord& record) override {
    breakers_.OnChanged(ns, record);
  }

  FakeClock clock_;
  ManualExecutor executor_;
  EmbeddedStore store_;
  RecordingObserver observer_;
  LimitSettings limits_;
  NamespaceSettings settings_;
  BreakerRegistry breakers_;
  FlightTable flights_;
  BudgetGate budget_;
  LockWaiters waiters_;
  std::map<CallId, std::optional<absl::StatusOr<LockGrant>>> answers_;
  const CacheKey key_{"ns", "k"};
};

TEST_F(LockWaitersTest, AFreeLockIsGrantedAtOnce) {
  auto& first = Acquire(1, absl::Seconds(5));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << first->status();
  EXPECT_TRUE((*first)->acquired);
  EXPECT_EQ((*first)->token.size(), 32u);
  EXPECT_GT((*first)->fencing_token, 0u);
  EXPECT_EQ((*first)->waited, absl::ZeroDuration());
  EXPECT_EQ(waiters_.size(), 0u);
  EXPECT_EQ(observer_.waiters, 0);
  EXPECT_EQ(flights_.Find(key_), nullptr);  // Nothing left to coordinate.
}

TEST_F(LockWaitersTest, WaitersTakeTurnsInArrivalOrder) {
  auto& first = Acquire(1, absl::Seconds(5));
  auto& second = Acquire(2, absl::Seconds(5));
  auto& third = Acquire(3, absl::Seconds(5));
  ASSERT_TRUE(first.has_value() && first->ok());
  EXPECT_FALSE(second.has_value());
  EXPECT_FALSE(third.has_value());
  EXPECT_EQ(observer_.waiters, 2);
  clock_.Advance(absl::Seconds(1));
  Release((*first)->token);
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->ok());
  EXPECT_TRUE((*second)->acquired);
  EXPECT_EQ((*second)->waited, absl::Seconds(1));
  EXPECT_GT((*second)->fencing_token, (*first)->fencing_token);
  EXPECT_FALSE(third.has_value());
  Release((*second)->token);
  ASSERT_TRUE(third.has_value() && third->ok());
  EXPECT_TRUE((*third)->acquired);
  EXPECT_EQ(observer_.waiters, 0);
}

TEST_F(LockWaitersTest, AWaitThatRunsOutIsNotAcquiredNotAnError) {
  auto& first = Acquire(1, absl::Seconds(5));
  auto& second = Acquire(2, absl::Seconds(2));
  ASSERT_TRUE(first.has_value() && first->ok());
  executor_.Advance(absl::Seconds(2));
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->ok()) << second->status();
  EXPECT_FALSE((*second)->acquired);
  EXPECT_EQ((*second)->waited, absl::Seconds(2));
  EXPECT_EQ(observer_.lock_outcomes["timeout"], 1);
  EXPECT_EQ(flights_.total_waiting(), 0);
}

TEST_F(LockWaitersTest, AZeroWaitTriesOnceWithoutQueueing) {
  auto& first = Acquire(1, absl::ZeroDuration());
  ASSERT_TRUE(first.has_value() && first->ok());
  EXPECT_TRUE((*first)->acquired);
  auto& second = Acquire(2, absl::ZeroDuration());
  ASSERT_TRUE(second.has_value() && second->ok());
  EXPECT_FALSE((*second)->acquired);
  EXPECT_EQ(observer_.lock_outcomes["contended"], 1);
  EXPECT_EQ(observer_.waiters, 0);
}

TEST_F(LockWaitersTest, ACancelledWaiterIsNeverAnsweredAndLosesItsTurn) {
  auto& first = Acquire(1, absl::Seconds(5));
  auto& second = Acquire(2, absl::Seconds(5));
  auto& third = Acquire(3, absl::Seconds(5));
  waiters_.Cancel(2);
  EXPECT_EQ(observer_.waiters, 1);
  Release((*first)->token);
  EXPECT_FALSE(second.has_value());
  ASSERT_TRUE(third.has_value() && third->ok());
  EXPECT_TRUE((*third)->acquired);
}

TEST_F(LockWaitersTest, ShutdownEndsEveryWaitAndRefusesNewOnes) {
  Acquire(1, absl::Seconds(5));
  auto& second = Acquire(2, absl::Seconds(5));
  waiters_.ShutDown();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(ReasonOf(second->status()), kReasonShuttingDown);
  auto& late = Acquire(3, absl::Seconds(5));
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(ReasonOf(late->status()), kReasonShuttingDown);
  EXPECT_EQ(flights_.total_waiting(), 0);
}

TEST_F(LockWaitersTest, ABadOwnerLabelIsRefused) {
  auto& bad = Acquire(1, absl::Seconds(5), std::string("a\nb"));
  ASSERT_TRUE(bad.has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(bad->status())) << bad->status();
  EXPECT_EQ(waiters_.size(), 0u);
}

TEST_F(LockWaitersTest, OverBudgetAGrantWaitsHoldingTheLock) {
  BudgetOfOneTakenElsewhere();
  auto& first = Acquire(1, absl::Minutes(1));
  auto& second = Acquire(2, absl::Minutes(1));
  // The first won the lock; the budget keeps it waiting, asking again every
  // few ms, and it renews the lock meanwhile (ttl 30 s).
  executor_.Advance(absl::Seconds(40));
  EXPECT_FALSE(first.has_value());
  EXPECT_FALSE(second.has_value());  // Behind it in the key's queue.
  EXPECT_EQ(observer_.lock_outcomes["acquired"], 1);
  EXPECT_FALSE(LockIsFree());
  // The slot comes back: the next ask takes it.
  ReturnTheSlotElsewhere();
  executor_.Advance(absl::Milliseconds(250));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << first->status();
  EXPECT_TRUE((*first)->acquired);
  EXPECT_GE((*first)->waited, absl::Seconds(40));
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(waiters_.size(), 1u);
}

TEST_F(LockWaitersTest,
       OverBudgetPastItsWaitAGrantIsRefusedAndTheLockGoesBack) {
  BudgetOfOneTakenElsewhere();
  auto& first = Acquire(1, absl::Seconds(2));
  auto& second = Acquire(2, absl::Seconds(10));
  executor_.Advance(absl::Seconds(2));
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(absl::IsResourceExhausted(first->status())) << first->status();
  EXPECT_EQ(ReasonOf(first->status()), kReasonComputeBudget);
  EXPECT_TRUE(RetryAfterOf(first->status()).has_value());
  // The lock went back: the next waiter won it, and waits for budget in
  // turn.
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(observer_.lock_outcomes["acquired"], 2);
  ReturnTheSlotElsewhere();
  executor_.Advance(absl::Milliseconds(250));
  ASSERT_TRUE(second.has_value() && second->ok()) << second->status();
  EXPECT_TRUE((*second)->acquired);
}

TEST_F(LockWaitersTest, OverBudgetATryOnceIsRefusedAtOnce) {
  BudgetOfOneTakenElsewhere();
  auto& once = Acquire(1, absl::ZeroDuration());
  ASSERT_TRUE(once.has_value());
  EXPECT_EQ(ReasonOf(once->status()), kReasonComputeBudget);
  EXPECT_TRUE(LockIsFree());
  EXPECT_EQ(waiters_.size(), 0u);
}

TEST_F(LockWaitersTest, ACancelWhileWaitingForBudgetGivesTheLockBack) {
  BudgetOfOneTakenElsewhere();
  auto& first = Acquire(1, absl::Minutes(1));
  EXPECT_FALSE(LockIsFree());
  waiters_.Cancel(1);
  EXPECT_EQ(waiters_.size(), 0u);
  // The budget's next ask finds nobody wants the grant.
  executor_.Advance(absl::Milliseconds(250));
  EXPECT_FALSE(first.has_value());
  EXPECT_TRUE(LockIsFree());
  // Nor does the slot stay taken once it is free.
  ReturnTheSlotElsewhere();
  auto& next = Acquire(2, absl::ZeroDuration());
  ASSERT_TRUE(next.has_value() && next->ok()) << next->status();
  EXPECT_TRUE((*next)->acquired);
}

}  // namespace
}  // namespace corral
