// The coordination core's test fixture: the same suite on both stores.
//
// Embedded: the core and the store run on a ManualExecutor over a FakeClock,
// on the test's own thread. Nothing happens until the test drives it: every
// wait below runs the executor until idle and then looks, so "let them
// queue" is exact, and time (TTLs, wait timeouts, lease renewals and
// revocations, breaker batches) moves only with Advance. No real time, no
// sleeps, the same interleaving on every run.
//
// Redis: a real redis-server that the fixture starts, hiredis on a real
// EventLoop thread, and the real clock (Redis keeps its own time). Waits
// poll an observable condition with a deadline; Advance lets real time pass.
#ifndef CORRAL_TESTS_SERVER_CORE_COORDINATOR_FIXTURE_H_
#define CORRAL_TESTS_SERVER_CORE_COORDINATOR_FIXTURE_H_

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/coordinator.h"
#include "server/core/errors.h"
#include "server/store/embedded_store.h"
#include "server/store/redis_store.h"
#include "tests/server/core/null_observer.h"
#include "tests/support/manual_executor.h"
#include "tests/support/poll.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace testing_internal {

using ::corral::testing::IsOk;
using ::corral::testing::StatusIs;

// Counts what the coordinator reports; checked where a test cares.
class CountingObserver : public ::corral::testing::NullObserver {
 public:
  void OnDuplicateCompute(absl::string_view) override { ++duplicates; }
  void OnBudgetCharge(absl::string_view, uint32_t, absl::string_view over,
                      bool enforced) override {
    if (!over.empty()) ++(enforced ? budget_waits : budget_shadow_over);
  }
  void OnBudgetRejected(absl::string_view) override { ++budget_rejections; }
  std::atomic<int> budget_waits{0};
  std::atomic<int> budget_shadow_over{0};
  std::atomic<int> budget_rejections{0};
  void OnWaitersChanged(absl::string_view, int delta) override {
    waiters += delta;
  }
  void OnRefreshStarted(absl::string_view, absl::string_view trigger) override {
    ++(trigger == "early" ? early_refreshes : stale_refreshes);
  }
  void OnStaleServed(absl::string_view) override { ++stale_served; }
  void OnNegativeHit(absl::string_view) override { ++negative_hits; }
  std::atomic<int> duplicates{0};
  std::atomic<int> waiters{0};
  std::atomic<int> early_refreshes{0};
  std::atomic<int> stale_refreshes{0};
  std::atomic<int> stale_served{0};
  std::atomic<int> negative_hits{0};
};

// The store the coordinator talks to, counting what it is asked: how many
// store round trips a scenario costs. Everything goes to the real store.
class CountingStore final : public Store {
 public:
  // `drive` (embedded) runs the manual executor until idle before a wait
  // looks; empty (Redis), a wait blocks until its deadline.
  CountingStore(Executor& executor, std::function<void()> drive,
                std::unique_ptr<Store> inner)
      : executor_(executor),
        drive_(std::move(drive)),
        inner_(std::move(inner)) {}
  Store& inner() { return *inner_; }

  // While holding, the answers of Get and TryLockAndRead are kept back (in
  // order) until Release: a test decides what happens between a request and
  // its answer.
  void Hold() {
    absl::MutexLock lock(&hold_mu_);
    holding_ = true;
  }
  // Waits (up to 5 s) until `n` answers are held.
  bool WaitHeld(size_t n) {
    if (drive_) drive_();
    absl::MutexLock lock(&hold_mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hold_mu_) {
      return held_.size() >= n;
    };
    return hold_mu_.AwaitWithTimeout(
        absl::Condition(&enough),
        drive_ ? absl::ZeroDuration() : absl::Seconds(5));
  }
  // Hands the held answers over on the executor; `keep_holding` keeps
  // back the answers that come after.
  void Release(bool keep_holding = false) {
    std::vector<absl::AnyInvocable<void()>> held;
    {
      absl::MutexLock lock(&hold_mu_);
      held.swap(held_);
      holding_ = keep_holding;
    }
    for (auto& answer : held) executor_.Post(std::move(answer));
  }

  void SetListener(StoreListener* listener) override {
    inner_->SetListener(listener);
  }
  void Get(const CacheKey& key, Callback<KeyRead> done) override {
    ++reads;
    inner_->Get(key, MaybeHold(std::move(done)));
  }
  void Put(const CacheKey& key, std::string value, const PutOptions& options,
           Callback<bool> done) override {
    ++puts;
    inner_->Put(key, std::move(value), options, std::move(done));
  }
  void Delete(const CacheKey& key, Callback<bool> done) override {
    inner_->Delete(key, std::move(done));
  }
  void RememberFailure(const CacheKey& key, absl::Duration ttl,
                       Callback<absl::Time> done) override {
    inner_->RememberFailure(key, ttl, std::move(done));
  }
  void ClaimHedge(const CacheKey& key, uint32_t max_hedges, absl::Duration keep,
                  Callback<HedgeClaim> done) override {
    ++hedge_claims;
    inner_->ClaimHedge(key, max_hedges, keep, std::move(done));
  }
  void ChargeBudget(const std::string& ns, const std::string& slot,
                    const BudgetLimits& limits, absl::Duration hold,
                    Callback<BudgetCharge> done) override {
    ++budget_charges;
    inner_->ChargeBudget(ns, slot, limits, hold, std::move(done));
  }
  void RenewBudget(const std::string& ns, const std::string& slot,
                   absl::Duration hold, Callback<bool> done) override {
    inner_->RenewBudget(ns, slot, hold, std::move(done));
  }
  void ReturnBudget(const std::string& ns, const std::string& slot,
                    Callback<bool> done) override {
    ++budget_returns;
    inner_->ReturnBudget(ns, slot, std::move(done));
  }
  void TryLock(const CacheKey& key, const std::string& token,
               absl::Duration ttl, Callback<LockAttempt> done) override {
    ++lock_attempts;
    inner_->TryLock(key, token, ttl, std::move(done));
  }
  void TryLockAndRead(const CacheKey& key, const std::string& token,
                      absl::Duration ttl, Callback<LockAttempt> done) override {
    ++lock_attempts;
    inner_->TryLockAndRead(key, token, ttl, MaybeHold(std::move(done)));
  }
  void RenewLock(const CacheKey& key, const std::string& token,
                 absl::Duration ttl,
                 Callback<std::optional<absl::Time>> done) override {
    inner_->RenewLock(key, token, ttl, std::move(done));
  }
  void ReleaseLock(const CacheKey& key, const std::string& token,
                   ReleaseNotice notice, Callback<bool> done) override {
    ++releases;
    inner_->ReleaseLock(key, token, notice, std::move(done));
  }
  void Watch(const CacheKey& key) override {
    ++watches;
    inner_->Watch(key);
  }
  void Unwatch(const CacheKey& key) override { inner_->Unwatch(key); }
  void LoadBreaker(const std::string& ns,
                   Callback<BreakerRecord> done) override {
    inner_->LoadBreaker(ns, std::move(done));
  }
  void StoreBreaker(const std::string& ns, uint64_t expected_version,
                    std::string state, Callback<BreakerCas> done) override {
    inner_->StoreBreaker(ns, expected_version, std::move(state),
                         std::move(done));
  }
  void Ping(StatusCallback done) override { inner_->Ping(std::move(done)); }
  bool IsUp() const override { return inner_->IsUp(); }
  const ReadCache* read_cache() const override { return inner_->read_cache(); }

  std::atomic<int> reads{0};
  std::atomic<int> puts{0};
  std::atomic<int> lock_attempts{0};
  std::atomic<int> releases{0};
  std::atomic<int> hedge_claims{0};
  std::atomic<int> budget_charges{0};
  std::atomic<int> budget_returns{0};
  std::atomic<int> watches{0};

 private:
  template <typename T>
  Callback<T> MaybeHold(Callback<T> done) {
    return [this, done = std::move(done)](absl::StatusOr<T> r) mutable {
      {
        absl::MutexLock lock(&hold_mu_);
        if (holding_) {
          held_.push_back([done = std::move(done), r = std::move(r)]() mutable {
            done(std::move(r));
          });
          return;
        }
      }
      done(std::move(r));
    };
  }

  Executor& executor_;
  std::function<void()> drive_;
  std::unique_ptr<Store> inner_;
  absl::Mutex hold_mu_;
  bool holding_ ABSL_GUARDED_BY(hold_mu_) = false;
  std::vector<absl::AnyInvocable<void()>> held_ ABSL_GUARDED_BY(hold_mu_);
};

// Records what one GetOrCompute stream received. `drive` as CountingStore's.
class RecordingSink : public ComputeSink {
 public:
  explicit RecordingSink(std::function<void()> drive = {})
      : drive_(std::move(drive)) {}
  void SendValue(ValueView value) override {
    absl::MutexLock lock(&mu_);
    value_ = std::move(value);
    done_ = true;
    status_ = absl::OkStatus();
  }
  void SendLease(LeaseView lease) override {
    absl::MutexLock lock(&mu_);
    lease_ = std::move(lease);
  }
  void SendFilled(FilledView filled) override {
    absl::MutexLock lock(&mu_);
    filled_ = std::move(filled);
    done_ = true;
    status_ = absl::OkStatus();
  }
  void Finish(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
    status_ = std::move(status);
  }

  // Embedded: whether the lease (or the end) came once the executor is
  // idle. Redis: waits up to `timeout` for it.
  bool WaitLease(absl::Duration timeout = absl::Seconds(5)) {
    if (drive_) {
      drive_();
      timeout = absl::ZeroDuration();
    }
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](RecordingSink* s) {
                                      return s->lease_.has_value() || s->done_;
                                    },
                                    this),
                                timeout) &&
           lease_.has_value();
  }
  bool WaitDone(absl::Duration timeout = absl::Seconds(5)) {
    if (drive_) {
      drive_();
      timeout = absl::ZeroDuration();
    }
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
  }
  bool HasLease() {
    absl::MutexLock lock(&mu_);
    return lease_.has_value();
  }
  bool Done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  std::optional<ValueView> value() {
    absl::MutexLock lock(&mu_);
    return value_;
  }
  std::optional<LeaseView> lease() {
    absl::MutexLock lock(&mu_);
    return lease_;
  }
  std::optional<FilledView> filled() {
    absl::MutexLock lock(&mu_);
    return filled_;
  }
  absl::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  const std::function<void()> drive_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::optional<ValueView> value_ ABSL_GUARDED_BY(mu_);
  std::optional<LeaseView> lease_ ABSL_GUARDED_BY(mu_);
  std::optional<FilledView> filled_ ABSL_GUARDED_BY(mu_);
};

corral::v1::ServerConfig DefaultConfig() {
  corral::v1::ServerConfig config;
  auto* ns = config.add_namespaces();
  ns->set_name("strict");
  ns->set_on_wait_timeout(corral::v1::OnWaitTimeout::FAIL);
  ns->mutable_max_compute_time()->set_nanos(300'000'000);  // 300 ms
  ns->set_max_value_bytes(16);
  auto* fragile = config.add_namespaces();
  fragile->set_name("fragile");
  fragile->mutable_breaker()->set_consecutive_failures(2);
  fragile->mutable_breaker()->mutable_open_duration()->set_seconds(1);
  fragile->mutable_stale_window()->set_seconds(60);
  // Stale-while-revalidate, no early refresh.
  auto* revalidate = config.add_namespaces();
  revalidate->set_name("revalidate");
  revalidate->mutable_stale_window()->set_seconds(60);
  revalidate->set_early_refresh_beta(0);
  // Early refresh as eager as allowed.
  auto* eager = config.add_namespaces();
  eager->set_name("eager");
  eager->set_early_refresh_beta(100);
  eager->mutable_negative_ttl()->set_seconds(1);
  // Negative caching for 1 s.
  auto* uncached = config.add_namespaces();
  uncached->set_name("uncached");
  uncached->set_read_cache(false);
  auto* negative = config.add_namespaces();
  negative->set_name("negative");
  negative->mutable_negative_ttl()->set_seconds(1);
  negative->mutable_stale_window()->set_seconds(60);
  negative->set_early_refresh_beta(0);
  // The seed's wait-timeout policy.
  auto* herd = config.add_namespaces();
  herd->set_name("herd");
  herd->set_on_wait_timeout(corral::v1::OnWaitTimeout::COMPUTE_UNLOCKED);
  // One compute in flight at a time, fleet-wide.
  auto* budgeted = config.add_namespaces();
  budgeted->set_name("budgeted");
  budgeted->mutable_compute_budget()->set_max_in_flight(1);
  budgeted->mutable_stale_window()->set_seconds(60);
  budgeted->set_early_refresh_beta(0);
  auto* shadow = config.add_namespaces();
  shadow->set_name("shadow");
  shadow->mutable_compute_budget()->set_max_in_flight(1);
  shadow->mutable_compute_budget()->set_enforce(false);
  return config;
}

enum class StoreKind { kEmbedded, kRedis };

class CoordinatorTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  // Both stores keep a read cache, as corrald's do by default, and leave
  // out namespaces configured with read_cache: false.
  static ReadCacheOptions ReadCacheOptionsFor(
      const NamespaceRegistry& registry) {
    ReadCacheOptions options;
    options.max_bytes = 1 << 20;
    options.cacheable = [&registry](absl::string_view ns) {
      return registry.UsesReadCache(ns);
    };
    return options;
  }

  CoordinatorTest() : CoordinatorTest(DefaultConfig()) {}
  explicit CoordinatorTest(const corral::v1::ServerConfig& config)
      : registry_(*NamespaceRegistry::Create(config)) {
    if (embedded()) {
      clock_ = &fake_clock_;
      manual_ = std::make_unique<corral::testing::ManualExecutor>(fake_clock_);
      store_ = std::make_unique<CountingStore>(
          *manual_, Driver(),
          std::make_unique<EmbeddedStore>(*manual_, fake_clock_,
                                          ReadCacheOptionsFor(registry_)));
    } else {
      auto redis = corral::testing::RedisServer::Start();
      EXPECT_TRUE(redis.ok()) << redis.status();
      redis_ = *std::move(redis);
      RedisOptions options;
      options.port = redis_->port();
      options.read_cache = ReadCacheOptionsFor(registry_);
      auto store = std::make_unique<RedisStore>(loop_, options);
      redis_store_ = store.get();
      store_ =
          std::make_unique<CountingStore>(loop_, Driver(), std::move(store));
      clock_ = &real_clock_;
    }
    coordinator_ = std::make_unique<Coordinator>(executor(), *store_, registry_,
                                                 *clock_, observer_);
    if (embedded()) {
      manual_->RunUntilIdle();
    } else {
      loop_.Start();
      redis_store_->Start();
      EXPECT_OK(redis_store_->WaitUntilConnected(absl::Seconds(5)));
    }
  }
  ~CoordinatorTest() override {
    if (embedded()) {
      // Shutdown waits for the loop it posted to; here the loop is this
      // thread, so post it without waiting and run it.
      coordinator_->Shutdown(absl::ZeroDuration());
      manual_->RunUntilIdle();
    } else {
      coordinator_->Shutdown(absl::Seconds(1));
      redis_store_->Shutdown();
      loop_.Stop();
    }
  }

  bool embedded() const { return GetParam() == StoreKind::kEmbedded; }
  Executor& executor() {
    return embedded() ? static_cast<Executor&>(*manual_) : loop_;
  }
  // What the fixture's sinks and store run before a wait looks (embedded).
  std::function<void()> Driver() {
    if (!embedded()) return {};
    return [this] { manual_->RunUntilIdle(); };
  }

  // Whether `condition` holds once the core has done all it can without
  // time moving: at once when the manual executor is idle (embedded), or
  // polled up to `timeout` (Redis).
  bool Eventually(const std::function<bool()>& condition,
                  absl::Duration timeout = absl::Seconds(5)) {
    if (embedded()) {
      manual_->RunUntilIdle();
      return condition();
    }
    return corral::testing::PollUntil(condition, timeout);
  }
  // Lets `d` pass: on the fake clock, firing every timer due on the way
  // (embedded); real time on Redis, which keeps its own clock.
  void Advance(absl::Duration d) {
    if (embedded()) {
      manual_->Advance(d);
    } else {
      const absl::Time until = absl::Now() + d;
      corral::testing::PollUntil([until] { return absl::Now() >= until; },
                                 d + absl::Seconds(1));
    }
  }
  // Lets time pass until `condition` holds, for at most `within`: timer by
  // timer on the fake clock, so it holds exactly when the core makes it
  // (embedded); polled in real time, with a 5 s floor for slow runs, on
  // Redis.
  bool AdvanceUntil(const std::function<bool()>& condition,
                    absl::Duration within) {
    if (!embedded()) {
      return corral::testing::PollUntil(condition,
                                        std::max(within, absl::Seconds(5)));
    }
    const absl::Time end = fake_clock_.Now() + within;
    for (;;) {
      manual_->RunUntilIdle();
      if (condition()) return true;
      const absl::Time now = fake_clock_.Now();
      const std::optional<absl::Duration> next = manual_->NextTimerIn();
      if (!next.has_value() || now + *next > end) {
        manual_->Advance(end - now);
        return condition();
      }
      manual_->Advance(*next);
    }
  }

  // The answer of one async call, once it comes.
  template <typename T>
  class Pending {
   public:
    Pending(CoordinatorTest* test,
            std::shared_ptr<std::promise<absl::StatusOr<T>>> promise)
        : test_(test), future_(promise->get_future()) {}
    // Whether the answer is in (embedded: once idle; Redis: at once).
    bool Ready() {
      if (test_->embedded()) test_->manual_->RunUntilIdle();
      return future_.wait_for(std::chrono::seconds(0)) ==
             std::future_status::ready;
    }
    // The answer; an error if none came once idle (embedded) or within
    // `timeout` (Redis).
    absl::StatusOr<T> Get(absl::Duration timeout = absl::Seconds(10)) {
      if (test_->embedded()) test_->manual_->RunUntilIdle();
      const auto wait = test_->embedded() ? absl::ZeroDuration() : timeout;
      if (future_.wait_for(absl::ToChronoNanoseconds(wait)) !=
          std::future_status::ready) {
        return absl::DeadlineExceededError(
            test_->embedded() ? "no answer once idle" : "no answer in time");
      }
      return future_.get();
    }

   private:
    CoordinatorTest* test_;
    std::future<absl::StatusOr<T>> future_;
  };
  // Starts an async coordinator call.
  template <typename T, typename Call>
  Pending<T> Start(Call call) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
    call([promise](absl::StatusOr<T> r) { promise->set_value(std::move(r)); });
    return Pending<T>(this, promise);
  }
  // Runs an async coordinator call and waits for its answer.
  template <typename T, typename Call>
  absl::StatusOr<T> Sync(Call call) {
    return Start<T>(std::move(call)).Get();
  }

  absl::StatusOr<bool> Set(
      const CacheKey& key, std::string value,
      std::optional<absl::Duration> ttl = absl::Seconds(60),
      std::string token = "", bool release = false) {
    return Sync<bool>([&](auto done) {
      coordinator_->Set(SetRequest{key, std::move(value), ttl, token, release},
                        std::move(done));
    });
  }
  absl::StatusOr<GetResult> Get(const CacheKey& key) {
    return Sync<GetResult>(
        [&](auto done) { coordinator_->Get(key, std::move(done)); });
  }
  Pending<LockGrant> StartAcquire(const CacheKey& key, absl::Duration wait,
                                  absl::Duration ttl = absl::Seconds(30)) {
    return Start<LockGrant>([&](auto done) {
      AcquireLockRequest r;
      r.key = key;
      r.ttl = ttl;
      r.wait_timeout = wait;
      coordinator_->AcquireLock(std::move(r), std::move(done));
    });
  }
  absl::StatusOr<LockGrant> Acquire(const CacheKey& key, absl::Duration wait,
                                    absl::Duration ttl = absl::Seconds(30)) {
    return StartAcquire(key, wait, ttl).Get();
  }
  absl::StatusOr<bool> Release(const CacheKey& key, const std::string& token,
                               Outcome outcome = Outcome::kSuccess) {
    return Sync<bool>([&](auto done) {
      coordinator_->ReleaseLock(ReleaseLockRequest{key, token, outcome},
                                std::move(done));
    });
  }
  // The namespace's breaker as this replica sees it (kClosed on error).
  BreakerState BreakerStateOf(const std::string& ns) {
    auto view = Sync<BreakerView>(
        [&](auto done) { coordinator_->DescribeBreaker(ns, std::move(done)); });
    EXPECT_OK(view.status());
    return view.ok() ? view->state : BreakerState::kClosed;
  }
  // What the store itself holds for `key`, asked on the executor (the Redis
  // store is driven from its loop thread only).
  absl::StatusOr<KeyRead> ReadStore(const CacheKey& key) {
    return Sync<KeyRead>([&](auto done) {
      executor().Post([this, key, done = std::move(done)]() mutable {
        store_->inner().Get(key, std::move(done));
      });
    });
  }

  struct Call {
    std::shared_ptr<RecordingSink> sink;
    Coordinator::CallId id;
  };
  Call Lookup(const CacheKey& key,
              std::optional<absl::Duration> wait = absl::Seconds(5),
              bool allow_stale = false) {
    auto sink = std::make_shared<RecordingSink>(Driver());
    LookupRequest r;
    r.key = key;
    r.wait_timeout = wait;
    r.allow_stale = allow_stale;
    // As the gRPC layer does: the read cache first, then a session.
    Coordinator::CallId id = coordinator_->Lookup(0, sink, std::move(r));
    return Call{sink, id};
  }
  // Returns once every task posted to the executor before the call has run
  // (embedded: and everything they led to).
  void Drain() {
    if (embedded()) {
      manual_->RunUntilIdle();
      return;
    }
    absl::Notification ran;
    loop_.Post([&ran] { ran.Notify(); });
    ran.WaitForNotification();
  }
  // One caller computes `value` for `key`, taking `compute_time` for it.
  void ComputeOnce(const CacheKey& key, const std::string& value,
                   absl::Duration ttl,
                   absl::Duration compute_time = absl::ZeroDuration()) {
    Call c = Lookup(key);
    ASSERT_TRUE(c.sink->WaitLease()) << c.sink->status();
    Advance(compute_time);
    coordinator_->ComputeFill(c.id, FillRequest{value, ttl});
    ASSERT_TRUE(c.sink->WaitDone());
    ASSERT_TRUE(c.sink->filled().has_value() && c.sink->filled()->stored);
  }
  // Waits until `calls` settle, and returns the one that holds a lease:
  // each of the others has ended or waits in the queue (counted by the
  // observer), so no second lease can come. -1 (and a failure) otherwise.
  int WaitForOneLease(const std::vector<Call>& calls) {
    auto leased = [&calls] {
      int index = -1;
      for (size_t i = 0; i < calls.size(); ++i) {
        if (calls[i].sink->HasLease() && !calls[i].sink->Done()) {
          if (index >= 0) return -2;  // More than one.
          index = static_cast<int>(i);
        }
      }
      return index;
    };
    auto settled = [&] {
      int undecided = 0;
      for (const Call& c : calls) {
        if (!c.sink->HasLease() && !c.sink->Done()) ++undecided;
      }
      return leased() >= 0 && observer_.waiters.load() >= undecided;
    };
    const bool ok = Eventually(settled);
    const int index = leased();
    EXPECT_NE(index, -2) << "more than one lease was handed out";
    if (!ok || index < 0) {
      ADD_FAILURE() << "the calls did not settle with one lease";
      return -1;
    }
    return index;
  }

  FakeClock fake_clock_;
  RealClock real_clock_;
  const Clock* clock_ = nullptr;
  EventLoop loop_;                                           // Redis only.
  std::unique_ptr<corral::testing::ManualExecutor> manual_;  // Embedded only.
  NamespaceRegistry registry_;
  std::unique_ptr<corral::testing::RedisServer> redis_;
  RedisStore* redis_store_ = nullptr;
  std::unique_ptr<CountingStore> store_;
  CountingObserver observer_;
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace testing_internal
}  // namespace corral

#endif  // CORRAL_TESTS_SERVER_CORE_COORDINATOR_FIXTURE_H_
