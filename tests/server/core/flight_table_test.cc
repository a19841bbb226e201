// The flight table alone (server/core/flight_table.h): the queue and its
// limits, who the head is, one lock attempt at a time, shared reads, the
// retry at the holder's expiry, retiring. Waiters are plain test objects;
// the store is the embedded one, driven by hand (no loop, no sleeps;
// tests/support/manual_executor.h).
#include "server/core/flight_table.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/store/embedded_store.h"
#include "tests/support/manual_executor.h"

namespace corral {
namespace {

using ::corral::testing::ManualExecutor;

class TestWaiter final : public Waiter {
 public:
  TestWaiter(FlightTable& table, CallId id, CacheKey key, bool fill)
      : table_(table), id_(id), key_(std::move(key)), fill_(fill) {}

  CallId id() const override { return id_; }
  bool WaitsOn(const CacheKey& key) const override {
    return waiting && key == key_;
  }
  bool MayTakeLock() const override { return may_take_lock; }
  bool ServedByFill() const override { return fill_; }
  LockTry PrepareLockTry() override {
    ++tries;
    return LockTry{"token-" + std::to_string(id_), absl::Seconds(10),
                   /*read_with_lock=*/fill_};
  }
  void OnLockWon(const CacheKey& key, std::string token,
                 const LockAttempt& attempt) override {
    won_token = std::move(token);
    won_with_read = attempt.read.has_value();
    // Like a lock caller: it leaves the queue with the lock.
    waiting = false;
    table_.Leave(key);
    table_.FinishAttempt(key, /*pump=*/true);
  }
  void OnLockUnavailable(const absl::Status& error) override {
    unavailable = error;
  }
  bool OnOwnAttemptFailed(const CacheKey&, const absl::Status&) override {
    ++own_failures;
    return pump_after_failure;
  }

  bool waiting = true;
  bool may_take_lock = true;
  int tries = 0;
  std::string won_token;
  bool won_with_read = false;
  absl::Status unavailable;
  int own_failures = 0;
  bool pump_after_failure = true;

 private:
  FlightTable& table_;
  CallId id_;
  CacheKey key_;
  bool fill_;
};

// The embedded store, except that lock attempts fail while `fail_locks` is
// set (as Redis's do while it is unreachable).
class LockFailingStore final : public Store {
 public:
  explicit LockFailingStore(Store& inner) : inner_(inner) {}
  bool fail_locks = false;

  void SetListener(StoreListener* listener) override {
    inner_.SetListener(listener);
  }
  void Get(const CacheKey& key, Callback<KeyRead> done) override {
    inner_.Get(key, std::move(done));
  }
  void Put(const CacheKey& key, std::string value, const PutOptions& options,
           Callback<bool> done) override {
    inner_.Put(key, std::move(value), options, std::move(done));
  }
  void Delete(const CacheKey& key, Callback<bool> done) override {
    inner_.Delete(key, std::move(done));
  }
  void RememberFailure(const CacheKey& key, absl::Duration ttl,
                       Callback<absl::Time> done) override {
    inner_.RememberFailure(key, ttl, std::move(done));
  }
  void TryLock(const CacheKey& key, const std::string& token,
               absl::Duration ttl, Callback<LockAttempt> done) override {
    if (fail_locks) return Fail(std::move(done));
    inner_.TryLock(key, token, ttl, std::move(done));
  }
  void TryLockAndRead(const CacheKey& key, const std::string& token,
                      absl::Duration ttl, Callback<LockAttempt> done) override {
    if (fail_locks) return Fail(std::move(done));
    inner_.TryLockAndRead(key, token, ttl, std::move(done));
  }
  void RenewLock(const CacheKey& key, const std::string& token,
                 absl::Duration ttl,
                 Callback<std::optional<absl::Time>> done) override {
    inner_.RenewLock(key, token, ttl, std::move(done));
  }
  void ReleaseLock(const CacheKey& key, const std::string& token,
                   ReleaseNotice notice, Callback<bool> done) override {
    inner_.ReleaseLock(key, token, notice, std::move(done));
  }
  void Watch(const CacheKey& key) override { inner_.Watch(key); }
  void Unwatch(const CacheKey& key) override { inner_.Unwatch(key); }
  void LoadBreaker(const std::string& ns,
                   Callback<BreakerRecord> done) override {
    inner_.LoadBreaker(ns, std::move(done));
  }
  void StoreBreaker(const std::string& ns, uint64_t expected_version,
                    std::string state, Callback<BreakerCas> done) override {
    inner_.StoreBreaker(ns, expected_version, std::move(state),
                        std::move(done));
  }
  void ClaimHedge(const CacheKey& key, uint32_t max_hedges, absl::Duration keep,
                  Callback<HedgeClaim> done) override {
    inner_.ClaimHedge(key, max_hedges, keep, std::move(done));
  }
  void ChargeBudget(const std::string& ns, const std::string& slot,
                    const BudgetLimits& limits, absl::Duration hold,
                    Callback<BudgetCharge> done) override {
    inner_.ChargeBudget(ns, slot, limits, hold, std::move(done));
  }
  void RenewBudget(const std::string& ns, const std::string& slot,
                   absl::Duration hold, Callback<bool> done) override {
    inner_.RenewBudget(ns, slot, hold, std::move(done));
  }
  void ReturnBudget(const std::string& ns, const std::string& slot,
                    Callback<bool> done) override {
    inner_.ReturnBudget(ns, slot, std::move(done));
  }
  void Ping(StatusCallback done) override { inner_.Ping(std::move(done)); }
  bool IsUp() const override { return inner_.IsUp(); }

 private:
  // Answered later, as a store answers (never inline).
  void Fail(Callback<LockAttempt> done) {
    inner_.Ping([done = std::move(done)](absl::Status) mutable {
      done(StoreUnavailable("test: the store is unreachable"));
    });
  }
  Store& inner_;
};

class FlightTableTest : public ::testing::Test, public FlightTable::Owner {
 protected:
  FlightTableTest()
      : executor_(clock_),
        embedded_(executor_, clock_),
        store_(embedded_),
        table_(MakeTable()) {}

  FlightTable MakeTable() {
    limits_.max_waiters = 3;
    limits_.max_waiters_per_key = 2;
    return FlightTable(executor_, store_, clock_, limits_, *this);
  }

  TestWaiter& Add(CallId id, const CacheKey& key, bool fill) {
    auto w = std::make_unique<TestWaiter>(table_, id, key, fill);
    TestWaiter& ref = *w;
    waiters_[id] = std::move(w);
    return ref;
  }
  TestWaiter& Queue(CallId id, const CacheKey& key, bool fill) {
    TestWaiter& w = Add(id, key, fill);
    table_.Enqueue(key, id);
    return w;
  }

  // FlightTable::Owner.
  Waiter* FindWaiter(CallId id) override {
    auto it = waiters_.find(id);
    return it == waiters_.end() ? nullptr : it->second.get();
  }
  bool StillHoldsLock(CallId holder, const CacheKey&) override {
    return holders_.contains(holder);
  }
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> read) override {
    ++reads_;
    const bool hit = read.ok() && read->value.has_value();
    table_.EndRead(key, read.ok(), hit);
  }

  FakeClock clock_;
  ManualExecutor executor_;
  EmbeddedStore embedded_;
  LockFailingStore store_;
  LimitSettings limits_;
  FlightTable table_;
  absl::flat_hash_map<CallId, std::unique_ptr<TestWaiter>> waiters_;
  absl::flat_hash_set<CallId> holders_;
  int reads_ = 0;
  const CacheKey a_{"ns", "a"};
  const CacheKey b_{"ns", "b"};
};

TEST_F(FlightTableTest, AdmitsTheFirstWaiterOfAKeyThenAppliesTheLimits) {
  EXPECT_TRUE(table_.Admit(a_).ok());
  Queue(1, a_, true);
  Queue(2, a_, true);
  absl::Status per_key = table_.Admit(a_);
  EXPECT_TRUE(absl::IsResourceExhausted(per_key)) << per_key;
  EXPECT_EQ(ReasonOf(per_key), kReasonTooManyWaiters);
  Queue(3, b_, true);
  EXPECT_EQ(table_.total_waiting(), 3);
  // The server-wide limit is reached, but a key nobody waits for yet
  // admits its first caller: the limits are about callers piling up.
  EXPECT_TRUE(table_.Admit(CacheKey{"ns", "c"}).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(table_.Admit(b_)));
}

TEST_F(FlightTableTest, TheHeadIsTheFirstWaiterThatMayTakeTheLock) {
  TestWaiter& half_closed = Queue(1, a_, /*fill=*/true);
  half_closed.may_take_lock = false;
  TestWaiter& locker = Queue(2, a_, /*fill=*/false);
  TestWaiter& computer = Queue(3, a_, /*fill=*/true);
  table_.Pump(a_);
  table_.Pump(a_);  // One attempt at a time: this one does nothing.
  executor_.RunUntilIdle();
  EXPECT_EQ(half_closed.tries, 0);
  EXPECT_EQ(locker.won_token, "token-2");
  EXPECT_FALSE(locker.won_with_read);  // A lock caller only wants the lock.
  // The grant pumped the next head, which found the lock held: it listens
  // for the release and does not try again by itself.
  EXPECT_EQ(computer.tries, 1);
  EXPECT_TRUE(computer.won_token.empty());
  Flight* f = table_.Find(a_);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->held_elsewhere);
  EXPECT_TRUE(f->watching);
  table_.Pump(a_);
  executor_.RunUntilIdle();
  EXPECT_EQ(computer.tries, 1);
}

TEST_F(FlightTableTest, AContendedHeadTriesAgainWhenTheHoldersLockExpires) {
  TestWaiter& locker = Queue(1, a_, /*fill=*/false);
  TestWaiter& computer = Queue(2, a_, /*fill=*/true);
  table_.Pump(a_);
  executor_.RunUntilIdle();
  ASSERT_FALSE(locker.won_token.empty());
  ASSERT_EQ(computer.tries, 1);
  // Nobody releases (the holder died): the retry timer fires just after its
  // lock would expire, and the head takes the lock with a read of the key.
  executor_.Advance(absl::Seconds(9));
  EXPECT_EQ(computer.tries, 1);
  executor_.Advance(absl::Seconds(1) + absl::Milliseconds(10));
  EXPECT_EQ(computer.tries, 2);
  EXPECT_EQ(computer.won_token, "token-2");
  EXPECT_TRUE(computer.won_with_read);
}

TEST_F(FlightTableTest, AWakeUpDuringAnAttemptMakesTheNextHeadTryAgain) {
  Queue(1, a_, /*fill=*/false);
  TestWaiter& computer = Queue(2, a_, /*fill=*/true);
  table_.Pump(a_);
  executor_.RunUntilIdle();
  ASSERT_EQ(computer.tries, 1);
  ASSERT_TRUE(table_.Find(a_)->held_elsewhere);
  // A release message: the head tries at once (and finds it still held).
  table_.Wake(a_);
  EXPECT_EQ(computer.tries, 2);
  executor_.RunUntilIdle();
  EXPECT_TRUE(table_.Find(a_)->held_elsewhere);
}

TEST_F(FlightTableTest, AWaiterThatLeftIsSkippedAndItsLockGivenBack) {
  TestWaiter& gone = Queue(1, a_, /*fill=*/true);
  TestWaiter& next = Queue(2, a_, /*fill=*/true);
  table_.Pump(a_);
  // It leaves while its attempt is under way: the lock it wins goes back
  // and the next waiter takes it.
  gone.waiting = false;
  table_.Leave(a_);
  executor_.RunUntilIdle();
  EXPECT_TRUE(gone.won_token.empty());
  EXPECT_EQ(next.won_token, "token-2");
  EXPECT_EQ(table_.total_waiting(), 0);
}

TEST_F(FlightTableTest, FillWaitersAreTakenOnceAndLockCallersStay) {
  Queue(1, a_, /*fill=*/false);
  TestWaiter& back = Queue(2, a_, /*fill=*/true);
  Queue(3, a_, /*fill=*/true);
  // Caller 2 leaves (its entry stays, behind the lock caller) and comes
  // back: the queue names it twice.
  back.waiting = false;
  table_.Leave(a_);
  back.waiting = true;
  table_.Enqueue(a_, 2);
  EXPECT_EQ(table_.Find(a_)->queue.size(), 4u);
  EXPECT_EQ(table_.TakeFillWaiters(a_), (std::vector<CallId>{2, 3}));
  EXPECT_EQ(table_.Find(a_)->waiting, 1);
  EXPECT_EQ(table_.total_waiting(), 1);
  EXPECT_EQ(table_.Find(a_)->queue.size(), 1u);
}

TEST_F(FlightTableTest, AFailedAttemptIsToldToEveryWaiterThenToTheHead) {
  TestWaiter& head = Queue(1, a_, /*fill=*/true);
  head.pump_after_failure = false;  // As under COORDINATE_LOCALLY.
  TestWaiter& locker = Queue(2, a_, /*fill=*/false);
  store_.fail_locks = true;
  table_.Pump(a_);
  executor_.RunUntilIdle();
  EXPECT_EQ(ReasonOf(head.unavailable), kReasonStoreUnavailable);
  EXPECT_EQ(ReasonOf(locker.unavailable), kReasonStoreUnavailable);
  EXPECT_EQ(head.own_failures, 1);
  EXPECT_EQ(locker.own_failures, 0);
  EXPECT_EQ(head.tries, 1);
  EXPECT_FALSE(table_.Find(a_)->attempt_in_flight);
  // The store is back: a wake-up lets the head try again.
  store_.fail_locks = false;
  table_.Wake(a_);
  executor_.RunUntilIdle();
  EXPECT_EQ(head.won_token, "token-1");
}

TEST_F(FlightTableTest, ReadersShareOneReadAndALaterAskGetsANewOne) {
  table_.For(a_).readers.push_back(1);
  table_.Read(a_);
  table_.Read(a_);
  table_.ReadAgain(a_);  // The store may have changed since the first ask.
  executor_.RunUntilIdle();
  EXPECT_EQ(reads_, 2);
  // Nobody is left: the flight is gone once the readers are handled.
  table_.For(a_).readers.clear();
  table_.MaybeRetire(a_);
  EXPECT_EQ(table_.Find(a_), nullptr);
}

TEST_F(FlightTableTest, AFlightStaysWhileItsLeaseHolderHoldsTheLock) {
  table_.For(a_).lease_holder = 7;
  holders_.insert(7);
  table_.EnsureWatching(a_);
  table_.MaybeRetire(a_);
  ASSERT_NE(table_.Find(a_), nullptr);
  EXPECT_TRUE(table_.HoldsLockHere(*table_.Find(a_), a_));
  // Its lease ended: the flight forgets it and retires.
  holders_.clear();
  table_.MaybeRetire(a_);
  EXPECT_EQ(table_.Find(a_), nullptr);
}

}  // namespace
}  // namespace corral
