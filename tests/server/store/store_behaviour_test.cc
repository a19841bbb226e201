// The Store contract, run on both implementations: the embedded store on a
// FakeClock and the Redis store on a real redis-server. Redis time is real,
// so TTLs here are short (100 ms - 1 s) and AdvanceTime sleeps for Redis.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/clock.h"
#include "server/core/event_loop.h"
#include "server/store/embedded_store.h"
#include "server/store/redis_store.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::IsOk;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::RecordingListener;
using ::corral::testing::RedisServer;
using ::corral::testing::StoreRunner;
using ::testing::Eq;
using ::testing::Optional;

enum class Backend { kEmbedded, kRedis };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kEmbedded ? "Embedded" : "Redis";
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

RedisOptions TestRedisOptions(const std::string& uri) {
  absl::StatusOr<RedisOptions> options = ParseRedisUri(uri);
  if (!options.ok()) std::abort();
  options->ping_interval = absl::Milliseconds(200);
  options->reconnect_backoff_min = absl::Milliseconds(20);
  options->reconnect_backoff_max = absl::Milliseconds(300);
  return *options;
}

class StoreBehaviourTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    loop_.Start();
    if (redis()) {
      auto server = RedisServer::Start();
      ASSERT_OK(server.status());
      server_ = *std::move(server);
      store_ = NewRedisStore();
    } else {
      store_ = std::make_unique<EmbeddedStore>(loop_, clock_);
    }
    runner_ = std::make_unique<StoreRunner>(loop_, *store_);
    runner_->SetListener(&listener_);
  }

  void TearDown() override {
    EXPECT_EQ(runner_->inline_answers(), 0) << "a callback ran inline";
    for (auto& store : extra_stores_) store->Shutdown();
    if (auto* redis_store = dynamic_cast<RedisStore*>(store_.get())) {
      redis_store->Shutdown();
    }
    loop_.Stop();
    extra_stores_.clear();
    store_.reset();
  }

  bool redis() const { return GetParam() == Backend::kRedis; }

  std::unique_ptr<RedisStore> NewRedisStore() {
    RedisOptions options = TestRedisOptions(server_->uri());
    // The budget scripts run on the fake clock: GCRA timing is exact.
    options.budget_clock = &clock_;
    auto store = std::make_unique<RedisStore>(loop_, std::move(options));
    store->Start();
    EXPECT_OK(store->WaitUntilConnected(absl::Seconds(5)));
    return store;
  }

  // The store's notion of now: the fake clock, or the wall clock that Redis
  // TIME also reads (same machine).
  absl::Time Now() const { return redis() ? absl::Now() : clock_.Now(); }
  // How far apart two readings of "now" may be: Redis keeps milliseconds,
  // and a round trip passes between our reading and the script's.
  absl::Duration Slack() const {
    return redis() ? absl::Milliseconds(200) : absl::ZeroDuration();
  }
  void AdvanceTime(absl::Duration d) {
    if (redis()) {
      absl::SleepFor(d);
    } else {
      clock_.Advance(d);
    }
  }

  // No event for `key` arrives: proven by a barrier, the kWatching of a
  // fresh key watched afterwards (events of one store arrive in order).
  void ExpectNoEventsFor(const CacheKey& key, const std::string& barrier_name) {
    const CacheKey barrier{"barrier", barrier_name};
    runner_->Watch(barrier);
    ASSERT_TRUE(
        listener_.TakeEvent(barrier, KeyEvent::Kind::kWatching).has_value());
    for (const KeyEvent& e : listener_.events()) {
      EXPECT_FALSE(e.key == key)
          << "unexpected event kind " << static_cast<int>(e.kind);
    }
    runner_->Unwatch(barrier);
  }

  static PutOptions Ttl(absl::Duration ttl,
                        absl::Duration stale = absl::ZeroDuration()) {
    PutOptions options;
    options.ttl = ttl;
    options.stale_window = stale;
    return options;
  }

  const CacheKey key_{"ns", "key"};
  FakeClock clock_;
  EventLoop loop_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Store> store_;
  std::vector<std::unique_ptr<RedisStore>> extra_stores_;
  std::unique_ptr<StoreRunner> runner_;
  RecordingListener listener_;
};

TEST_P(StoreBehaviourTest, GetMissThenHit) {
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
  const absl::Time before = Now();
  ASSERT_THAT(runner_->Put(key_, "v1", absl::Seconds(10)), IsOkAndHolds(true));
  const absl::Time after = Now();

  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "v1");
  EXPECT_GE((*got)->stored_at, before - Slack());
  EXPECT_LE((*got)->stored_at, after + Slack());
  EXPECT_EQ((*got)->expires_at, (*got)->stored_at + absl::Seconds(10));
}

TEST_P(StoreBehaviourTest, PutOverwrites) {
  ASSERT_THAT(runner_->Put(key_, "v1", absl::Seconds(10)), IsOkAndHolds(true));
  ASSERT_THAT(runner_->Put(key_, "v2", absl::Seconds(10)), IsOkAndHolds(true));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "v2");
}

TEST_P(StoreBehaviourTest, ValueExpiresAfterTtl) {
  ASSERT_THAT(runner_->Put(key_, "v", Ttl(absl::Milliseconds(100))),
              IsOkAndHolds(true));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Optional(::testing::_)));
  AdvanceTime(absl::Milliseconds(250));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreBehaviourTest, StaleValueKeptThroughStaleWindowThenGone) {
  // Generous windows: only lower bounds are exact with real time, and the
  // stale read must land before 100 + 1000 ms even on a loaded machine.
  ASSERT_THAT(
      runner_->Put(key_, "v",
                   Ttl(absl::Milliseconds(100), absl::Milliseconds(1000))),
      IsOkAndHolds(true));
  AdvanceTime(absl::Milliseconds(250));
  auto stale = runner_->Get(key_);
  ASSERT_OK(stale);
  ASSERT_TRUE(stale->has_value()) << "dropped inside the stale window";
  EXPECT_EQ((*stale)->value, "v");
  EXPECT_LT((*stale)->expires_at, Now());

  AdvanceTime(absl::Milliseconds(1000));  // 1250 ms > 100 + 1000
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreBehaviourTest, FencedPutNeedsTheHoldersToken) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Seconds(10)), IsOk());
  PutOptions wrong = Ttl(absl::Seconds(10));
  wrong.lock_token = "tok-b";
  EXPECT_THAT(runner_->Put(key_, "from-b", wrong), IsOkAndHolds(false));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));

  PutOptions right = Ttl(absl::Seconds(10));
  right.lock_token = "tok-a";
  EXPECT_THAT(runner_->Put(key_, "from-a", right), IsOkAndHolds(true));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "from-a");
  // Not released: the holder still holds it.
  EXPECT_THAT(runner_->TryLock(key_, "tok-c", absl::Seconds(1)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, false)));
}

TEST_P(StoreBehaviourTest, FencedPutWithExpiredLockIsRefused) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Milliseconds(100)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  AdvanceTime(absl::Milliseconds(250));
  PutOptions fenced = Ttl(absl::Seconds(10));
  fenced.lock_token = "tok-a";
  EXPECT_THAT(runner_->Put(key_, "late", fenced), IsOkAndHolds(false));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreBehaviourTest, PutWithReleaseLockFreesTheLock) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  PutOptions fill = Ttl(absl::Seconds(10));
  fill.lock_token = "tok-a";
  fill.release_lock = true;
  EXPECT_THAT(runner_->Put(key_, "v", fill), IsOkAndHolds(true));
  EXPECT_THAT(runner_->TryLock(key_, "tok-b", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  // The released token no longer renews.
  EXPECT_THAT(runner_->Renew(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreBehaviourTest, OnlyIfAbsentRespectsAFreshValue) {
  PutOptions absent = Ttl(absl::Seconds(10));
  absent.only_if_absent = true;
  // None there: stored.
  EXPECT_THAT(runner_->Put(key_, "first", absent), IsOkAndHolds(true));
  // A fresh one there: refused, and the first one stays.
  EXPECT_THAT(runner_->Put(key_, "second", absent), IsOkAndHolds(false));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "first");
}

TEST_P(StoreBehaviourTest, OnlyIfAbsentReplacesAnExpiredValue) {
  ASSERT_THAT(runner_->Put(key_, "old",
                           Ttl(absl::Milliseconds(100), absl::Seconds(10))),
              IsOkAndHolds(true));
  AdvanceTime(absl::Milliseconds(250));  // Expired, still in its stale window.
  PutOptions absent = Ttl(absl::Seconds(10));
  absent.only_if_absent = true;
  EXPECT_THAT(runner_->Put(key_, "new", absent), IsOkAndHolds(true));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "new");
}

TEST_P(StoreBehaviourTest, ComputeTimeIsKeptWithTheValueAndInTheFillEvent) {
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  PutOptions fill = Ttl(absl::Seconds(10));
  fill.compute_time = absl::Milliseconds(1234);
  ASSERT_THAT(runner_->Put(key_, "v", fill), IsOkAndHolds(true));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->compute_time, absl::Milliseconds(1234));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->compute_time, absl::Milliseconds(1234));
}

TEST_P(StoreBehaviourTest, ARememberedFailureIsReadBesideAStaleValue) {
  // Without a fresh value the failure decides what callers get, so a read
  // must carry it (with a fresh one it may be left out: KeyRead).
  ASSERT_THAT(
      runner_->Put(key_, "v", Ttl(absl::Milliseconds(100), absl::Seconds(5))),
      IsOkAndHolds(true));
  ASSERT_OK(runner_->RememberFailure(key_, absl::Seconds(5)));
  AdvanceTime(absl::Milliseconds(250));
  auto read = runner_->Read(key_);
  ASSERT_OK(read);
  ASSERT_TRUE(read->value.has_value());
  EXPECT_LT(read->value->expires_at, Now());
  EXPECT_GT(read->failed_until, Now());
}

TEST_P(StoreBehaviourTest, RememberedFailureIsReadUntilItExpires) {
  auto until = runner_->RememberFailure(key_, absl::Milliseconds(300));
  ASSERT_OK(until);
  auto read = runner_->Read(key_);
  ASSERT_OK(read);
  EXPECT_EQ(read->failed_until, *until);
  EXPECT_GT(read->failed_until, Now());
  EXPECT_FALSE(read->value.has_value());
  AdvanceTime(absl::Milliseconds(600));
  read = runner_->Read(key_);
  ASSERT_OK(read);
  EXPECT_EQ(read->failed_until, absl::InfinitePast());
}

TEST_P(StoreBehaviourTest, AStoredValueOrADeleteForgetsARememberedFailure) {
  ASSERT_OK(runner_->RememberFailure(key_, absl::Seconds(30)));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  auto read = runner_->Read(key_);
  ASSERT_OK(read);
  EXPECT_EQ(read->failed_until, absl::InfinitePast());

  ASSERT_OK(runner_->RememberFailure(key_, absl::Seconds(30)));
  EXPECT_THAT(runner_->Delete(key_), IsOkAndHolds(true));
  read = runner_->Read(key_);
  ASSERT_OK(read);
  EXPECT_EQ(read->failed_until, absl::InfinitePast());
}

TEST_P(StoreBehaviourTest, AFencedPutRefusedByOnlyIfAbsentKeepsTheLock) {
  ASSERT_THAT(runner_->Put(key_, "fresh", absl::Seconds(10)),
              IsOkAndHolds(true));
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  PutOptions fill = Ttl(absl::Seconds(10));
  fill.lock_token = "tok-a";
  fill.release_lock = true;
  fill.only_if_absent = true;
  EXPECT_THAT(runner_->Put(key_, "late", fill), IsOkAndHolds(false));
  // Refused writes change nothing: the holder still holds the lock.
  EXPECT_THAT(runner_->TryLock(key_, "tok-b", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, false)));
}

TEST_P(StoreBehaviourTest, DeleteAnswersWhetherAValueExisted) {
  EXPECT_THAT(runner_->Delete(key_), IsOkAndHolds(false));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  EXPECT_THAT(runner_->Delete(key_), IsOkAndHolds(true));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
  EXPECT_THAT(runner_->Delete(key_), IsOkAndHolds(false));
}

TEST_P(StoreBehaviourTest, TryLockIsMutuallyExclusive) {
  const absl::Time before = Now();
  auto first = runner_->TryLock(key_, "tok-a", absl::Seconds(10));
  ASSERT_OK(first);
  ASSERT_TRUE(first->acquired);
  EXPECT_GE(first->expires_at, before + absl::Seconds(10) - Slack());
  EXPECT_LE(first->expires_at, Now() + absl::Seconds(10) + Slack());
  EXPECT_GT(first->fencing_token, 0u);

  auto second = runner_->TryLock(key_, "tok-b", absl::Seconds(30));
  ASSERT_OK(second);
  EXPECT_FALSE(second->acquired);
  // When to try again: the holder's expiry (Redis: from PTTL, ms apart).
  EXPECT_GE(second->expires_at, first->expires_at - absl::Milliseconds(5));
  EXPECT_LE(second->expires_at, first->expires_at + absl::Milliseconds(5));

  // Not re-entrant either.
  EXPECT_THAT(runner_->TryLock(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, false)));
}

TEST_P(StoreBehaviourTest, TryLockAndReadReadsTheKeyOnlyWhenItTakesTheLock) {
  // Free lock, no value, no failure: taken, and the read says so.
  auto empty = runner_->TryLockAndRead(key_, "tok-a", absl::Seconds(10));
  ASSERT_OK(empty);
  ASSERT_TRUE(empty->acquired);
  EXPECT_GT(empty->fencing_token, 0u);
  ASSERT_TRUE(empty->read.has_value());
  EXPECT_FALSE(empty->read->value.has_value());
  EXPECT_EQ(empty->read->failed_until, absl::InfinitePast());

  // Held: not taken, no read.
  auto held = runner_->TryLockAndRead(key_, "tok-b", absl::Seconds(10));
  ASSERT_OK(held);
  EXPECT_FALSE(held->acquired);
  EXPECT_FALSE(held->read.has_value());
  ASSERT_THAT(runner_->Release(key_, "tok-a"), IsOkAndHolds(true));

  // A value and a remembered failure are both in the read, byte for byte.
  PutOptions options;
  options.ttl = absl::Seconds(60);
  options.compute_time = absl::Milliseconds(250);
  const std::string bytes("a\0b\xff", 4);
  ASSERT_THAT(runner_->Put(key_, bytes, options), IsOkAndHolds(true));
  ASSERT_OK(runner_->RememberFailure(key_, absl::Seconds(5)));
  auto full = runner_->TryLockAndRead(key_, "tok-c", absl::Seconds(10));
  ASSERT_OK(full);
  ASSERT_TRUE(full->acquired);
  ASSERT_TRUE(full->read.has_value());
  ASSERT_TRUE(full->read->value.has_value());
  EXPECT_EQ(full->read->value->value, bytes);
  EXPECT_EQ(full->read->value->compute_time, absl::Milliseconds(250));
  EXPECT_GT(full->read->value->expires_at, Now() + absl::Seconds(50));
  EXPECT_GT(full->read->failed_until, Now() + absl::Seconds(3));
  // The lock is ours like any other.
  EXPECT_GT(full->fencing_token, empty->fencing_token);
  EXPECT_THAT(runner_->TryLock(key_, "tok-d", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, false)));
  EXPECT_THAT(runner_->Release(key_, "tok-c"), IsOkAndHolds(true));
}

TEST_P(StoreBehaviourTest, FencingTokensStrictlyIncrease) {
  auto a = runner_->TryLock(key_, "a", absl::Seconds(10));
  ASSERT_OK(a);
  ASSERT_TRUE(a->acquired);
  ASSERT_THAT(runner_->Release(key_, "a"), IsOkAndHolds(true));

  auto b = runner_->TryLock(key_, "b", absl::Milliseconds(100));
  ASSERT_OK(b);
  ASSERT_TRUE(b->acquired);
  EXPECT_GT(b->fencing_token, a->fencing_token);

  AdvanceTime(absl::Milliseconds(250));  // b's lock expires unreleased.
  auto c = runner_->TryLock(key_, "c", absl::Seconds(10));
  ASSERT_OK(c);
  ASSERT_TRUE(c->acquired);
  EXPECT_GT(c->fencing_token, b->fencing_token);

  // Tokens are per key but still never reused on another key's account.
  auto other = runner_->TryLock(CacheKey{"ns", "other"}, "d", absl::Seconds(1));
  ASSERT_OK(other);
  EXPECT_TRUE(other->acquired);
}

TEST_P(StoreBehaviourTest, FencingTokensIncreaseAcrossANewStoreInstance) {
  if (!redis()) GTEST_SKIP() << "the embedded store's state is the instance";
  auto a = runner_->TryLock(key_, "a", absl::Seconds(10));
  ASSERT_OK(a);
  ASSERT_TRUE(a->acquired);
  ASSERT_THAT(runner_->Release(key_, "a"), IsOkAndHolds(true));

  extra_stores_.push_back(NewRedisStore());
  StoreRunner other(loop_, *extra_stores_.back());
  auto b = other.TryLock(key_, "b", absl::Seconds(10));
  ASSERT_OK(b);
  ASSERT_TRUE(b->acquired);
  EXPECT_GT(b->fencing_token, a->fencing_token);
}

TEST_P(StoreBehaviourTest, FencingTokensIncreaseAcrossARedisRestart) {
  if (!redis()) GTEST_SKIP() << "Redis only";
  auto a = runner_->TryLock(key_, "a", absl::Seconds(10));
  ASSERT_OK(a);
  ASSERT_TRUE(a->acquired);

  ASSERT_OK(server_->Restart());  // No persistence: the fence key is gone.
  extra_stores_.push_back(NewRedisStore());
  StoreRunner other(loop_, *extra_stores_.back());
  auto b = other.TryLock(key_, "b", absl::Seconds(10));
  ASSERT_OK(b);
  ASSERT_TRUE(b->acquired) << "the lock did not survive the restart";
  EXPECT_GT(b->fencing_token, a->fencing_token);
}

TEST_P(StoreBehaviourTest, RenewOnlyByTheOwner) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Milliseconds(400)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  EXPECT_THAT(runner_->Renew(key_, "tok-b", absl::Seconds(10)),
              IsOkAndHolds(Eq(std::nullopt)));

  const absl::Time before = Now();
  auto renewed = runner_->Renew(key_, "tok-a", absl::Seconds(10));
  ASSERT_OK(renewed);
  ASSERT_TRUE(renewed->has_value());
  EXPECT_GE(**renewed, before + absl::Seconds(10) - Slack());
  EXPECT_LE(**renewed, Now() + absl::Seconds(10) + Slack());

  AdvanceTime(absl::Milliseconds(500));  // Past the original 400 ms.
  auto refused = runner_->TryLock(key_, "tok-b", absl::Seconds(1));
  ASSERT_OK(refused);
  EXPECT_FALSE(refused->acquired) << "the renewal did not hold";
  EXPECT_GE(refused->expires_at, **renewed - absl::Milliseconds(5));
}

TEST_P(StoreBehaviourTest, RenewAfterExpiryAnswersNullopt) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Milliseconds(100)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  AdvanceTime(absl::Milliseconds(250));
  EXPECT_THAT(runner_->Renew(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreBehaviourTest, ReleaseOnlyByTheOwner) {
  ASSERT_THAT(runner_->TryLock(key_, "tok-a", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  EXPECT_THAT(runner_->Release(key_, "tok-b"), IsOkAndHolds(false));
  EXPECT_THAT(runner_->TryLock(key_, "tok-c", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, false)));
  EXPECT_THAT(runner_->Release(key_, "tok-a"), IsOkAndHolds(true));
  EXPECT_THAT(runner_->Release(key_, "tok-a"), IsOkAndHolds(false));
  EXPECT_THAT(runner_->TryLock(key_, "tok-c", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
}

TEST_P(StoreBehaviourTest, WatchedKeyGetsFillAndReleaseEvents) {
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));

  ASSERT_THAT(runner_->Put(key_, "filled", absl::Seconds(10)),
              IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  ASSERT_TRUE(filled->value.has_value());
  EXPECT_EQ(filled->value->value, "filled");
  auto stored = runner_->Get(key_);
  ASSERT_OK(stored);
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ(filled->value->stored_at, (*stored)->stored_at);
  EXPECT_EQ(filled->value->expires_at, (*stored)->expires_at);

  ASSERT_THAT(runner_->TryLock(key_, "a", absl::Seconds(10)), IsOk());
  ASSERT_THAT(runner_->Release(key_, "a", ReleaseNotice::kReleased),
              IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kReleased));

  ASSERT_THAT(runner_->TryLock(key_, "b", absl::Seconds(10)), IsOk());
  ASSERT_THAT(runner_->Release(key_, "b", ReleaseNotice::kUpstreamFailed),
              IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kUpstreamFailed));

  // A refused release tells nobody.
  ASSERT_THAT(runner_->Release(key_, "b"), IsOkAndHolds(false));
  ExpectNoEventsFor(key_, "after-refused-release");
}

TEST_P(StoreBehaviourTest, FencedFillWithReleaseIsOneFilledEvent) {
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->TryLock(key_, "a", absl::Seconds(10)), IsOk());
  PutOptions fill = Ttl(absl::Seconds(10));
  fill.lock_token = "a";
  fill.release_lock = true;
  ASSERT_THAT(runner_->Put(key_, "v", fill), IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->value, "v");
}

TEST_P(StoreBehaviourTest, NoEventsForUnwatchedKeys) {
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  ExpectNoEventsFor(key_, "never-watched");

  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  runner_->Unwatch(key_);
  ASSERT_THAT(runner_->Put(key_, "v2", absl::Seconds(10)), IsOkAndHolds(true));
  ASSERT_THAT(runner_->TryLock(key_, "a", absl::Seconds(10)), IsOk());
  ASSERT_THAT(runner_->Release(key_, "a"), IsOkAndHolds(true));
  ExpectNoEventsFor(key_, "after-unwatch");
}

TEST_P(StoreBehaviourTest, WatchAgainAfterUnwatch) {
  runner_->Watch(key_);
  runner_->Unwatch(key_);
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled));
}

TEST_P(StoreBehaviourTest, BinaryKeysAreDistinctAndRoundTrip) {
  const std::vector<CacheKey> keys = {
      {"ns", std::string("a\0b", 3)},
      {"ns", std::string("a\0c", 3)},
      {"ns", "{tag}"},
      {"ns", "}:{"},
      {"ns", ":"},
      {"ns", "key:v"},  // Looks like a layout suffix.
      {"ns", RandomBytes(1024, 7)},
  };
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_THAT(
        runner_->Put(keys[i], absl::StrCat("value-", i), absl::Seconds(10)),
        IsOkAndHolds(true));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto got = runner_->Get(keys[i]);
    ASSERT_OK(got);
    ASSERT_TRUE(got->has_value()) << "key " << i;
    EXPECT_EQ((*got)->value, absl::StrCat("value-", i)) << "key " << i;
  }
  // Locks and events are binary-safe too.
  const CacheKey& binary = keys.back();
  runner_->Watch(binary);
  ASSERT_TRUE(listener_.TakeEvent(binary, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->TryLock(binary, "a", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  ASSERT_THAT(runner_->Release(binary, "a"), IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(binary, KeyEvent::Kind::kReleased));
}

TEST_P(StoreBehaviourTest, NamespacesAreIsolated) {
  const CacheKey a{"alpha", "shared"};
  const CacheKey b{"beta", "shared"};
  ASSERT_THAT(runner_->Put(a, "in-alpha", absl::Seconds(10)),
              IsOkAndHolds(true));
  EXPECT_THAT(runner_->Get(b), IsOkAndHolds(Eq(std::nullopt)));
  ASSERT_THAT(runner_->Put(b, "in-beta", absl::Seconds(10)),
              IsOkAndHolds(true));
  EXPECT_THAT(runner_->TryLock(a, "x", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  EXPECT_THAT(runner_->TryLock(b, "y", absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&LockAttempt::acquired, true)));
  EXPECT_THAT(runner_->Delete(a), IsOkAndHolds(true));
  auto got = runner_->Get(b);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "in-beta");
}

TEST_P(StoreBehaviourTest, OneMebibyteValueRoundTripsExactly) {
  const std::string big = RandomBytes(1 << 20, 42);
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, big, absl::Seconds(10)), IsOkAndHolds(true));
  auto got = runner_->Get(key_);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE((*got)->value == big) << "value differs";
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_TRUE(filled->value->value == big) << "event value differs";
}

// --- HEDGE claims ------------------------------------------------------------

TEST_P(StoreBehaviourTest, AHedgeNeedsALockHolder) {
  auto claim = runner_->ClaimHedge(key_, 1);
  ASSERT_OK(claim.status());
  EXPECT_EQ(claim->result, HedgeClaim::Result::kNoHolder);
  EXPECT_EQ(claim->hedges, 0u);
}

TEST_P(StoreBehaviourTest, HedgesAreCountedPerLeaseStart) {
  ASSERT_THAT(runner_->TryLock(key_, "holder-1", absl::Seconds(10)), IsOk());
  auto first = runner_->ClaimHedge(key_, 1);
  ASSERT_OK(first.status());
  EXPECT_EQ(first->result, HedgeClaim::Result::kGranted);
  EXPECT_EQ(first->hedges, 1u);
  EXPECT_GE(first->holder_expires_at, Now() + absl::Seconds(10) - Slack());
  auto second = runner_->ClaimHedge(key_, 1);
  ASSERT_OK(second.status());
  EXPECT_EQ(second->result, HedgeClaim::Result::kRefused);
  EXPECT_EQ(second->hedges, 1u);
  // A new lease (a new holder) starts a new count.
  ASSERT_THAT(runner_->Release(key_, "holder-1"), IsOkAndHolds(true));
  EXPECT_EQ(runner_->ClaimHedge(key_, 1)->result,
            HedgeClaim::Result::kNoHolder);
  ASSERT_THAT(runner_->TryLock(key_, "holder-2", absl::Seconds(10)), IsOk());
  EXPECT_EQ(runner_->ClaimHedge(key_, 1)->result, HedgeClaim::Result::kGranted);
  EXPECT_EQ(runner_->ClaimHedge(key_, 1)->result, HedgeClaim::Result::kRefused);
}

TEST_P(StoreBehaviourTest, MaxHedgesIsAFleetWideCountAndZeroOnlyAsks) {
  ASSERT_THAT(runner_->TryLock(key_, "holder", absl::Seconds(10)), IsOk());
  EXPECT_EQ(runner_->ClaimHedge(key_, 0)->result, HedgeClaim::Result::kRefused);
  EXPECT_EQ(runner_->ClaimHedge(key_, 2)->result, HedgeClaim::Result::kGranted);
  EXPECT_EQ(runner_->ClaimHedge(key_, 2)->result, HedgeClaim::Result::kGranted);
  auto third = runner_->ClaimHedge(key_, 2);
  EXPECT_EQ(third->result, HedgeClaim::Result::kRefused);
  EXPECT_EQ(third->hedges, 2u);
  // Another key has its own count.
  const CacheKey other{"ns", "other"};
  ASSERT_THAT(runner_->TryLock(other, "holder", absl::Seconds(10)), IsOk());
  EXPECT_EQ(runner_->ClaimHedge(other, 1)->result,
            HedgeClaim::Result::kGranted);
}

// --- Compute budget
// ------------------------------------------------------------ The Redis
// store's budget scripts read the fake clock here (RedisOptions::budget_clock),
// so both stores are exact to the microsecond.

BudgetLimits Rate(double per_second, uint32_t burst) {
  BudgetLimits limits;
  limits.rate_per_second = per_second;
  limits.burst = burst;
  return limits;
}

BudgetLimits InFlight(uint32_t n) {
  BudgetLimits limits;
  limits.max_in_flight = n;
  return limits;
}

TEST_P(StoreBehaviourTest, BudgetRateAndBurstAreExact) {
  const BudgetLimits limits = Rate(10, 3);  // One per 100 ms, 3 at once.
  const absl::Duration hold = absl::Seconds(30);
  for (int i = 0; i < 3; ++i) {
    auto c = runner_->ChargeBudget("ns", absl::StrCat("s", i), limits, hold);
    ASSERT_OK(c.status());
    EXPECT_TRUE(c->admitted) << i;
    EXPECT_FALSE(c->over_budget) << i;
  }
  auto refused = runner_->ChargeBudget("ns", "s3", limits, hold);
  ASSERT_OK(refused.status());
  EXPECT_FALSE(refused->admitted);
  EXPECT_TRUE(refused->over_budget);
  EXPECT_EQ(refused->limit, "rate");
  EXPECT_EQ(refused->retry_after, absl::Milliseconds(100));
  clock_.Advance(absl::Milliseconds(100) - absl::Microseconds(1));
  auto early = runner_->ChargeBudget("ns", "s3", limits, hold);
  EXPECT_FALSE(early->admitted);
  EXPECT_EQ(early->retry_after, absl::Microseconds(1));
  clock_.Advance(absl::Microseconds(1));
  EXPECT_TRUE(runner_->ChargeBudget("ns", "s3", limits, hold)->admitted);
  // One per period from here on: the burst is spent.
  EXPECT_EQ(runner_->ChargeBudget("ns", "s4", limits, hold)->retry_after,
            absl::Milliseconds(100));
  // Idle for a while: the burst is back, and no more.
  clock_.Advance(absl::Seconds(10));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(runner_->ChargeBudget("ns", absl::StrCat("t", i), limits, hold)
                    ->admitted)
        << i;
  }
  EXPECT_FALSE(runner_->ChargeBudget("ns", "t3", limits, hold)->admitted);
}

TEST_P(StoreBehaviourTest, BudgetInFlightSlotsAreHeldUntilReturned) {
  const absl::Duration hold = absl::Seconds(30);
  auto a = runner_->ChargeBudget("ns", "a", InFlight(2), hold);
  ASSERT_OK(a.status());
  EXPECT_TRUE(a->admitted);
  EXPECT_EQ(a->in_flight, 1u);
  EXPECT_EQ(runner_->ChargeBudget("ns", "b", InFlight(2), hold)->in_flight, 2u);
  auto c = runner_->ChargeBudget("ns", "c", InFlight(2), hold);
  EXPECT_FALSE(c->admitted);
  EXPECT_EQ(c->limit, "in_flight");
  EXPECT_EQ(c->in_flight, 2u);
  // At most a second: a fill usually frees a slot sooner than its expiry.
  EXPECT_EQ(c->retry_after, absl::Seconds(1));
  EXPECT_THAT(runner_->ReturnBudget("ns", "a"), IsOkAndHolds(true));
  EXPECT_THAT(runner_->ReturnBudget("ns", "a"), IsOkAndHolds(false));
  EXPECT_TRUE(runner_->ChargeBudget("ns", "c", InFlight(2), hold)->admitted);
  // Namespaces have budgets of their own.
  EXPECT_TRUE(runner_->ChargeBudget("other", "x", InFlight(2), hold)->admitted);
}

TEST_P(StoreBehaviourTest, BudgetSlotExpiresWithItsHoldUnlessRenewed) {
  // A slot whose holder died (no return) is not leaked.
  ASSERT_TRUE(runner_->ChargeBudget("ns", "dead", InFlight(1), absl::Seconds(3))
                  ->admitted);
  clock_.Advance(absl::Seconds(2));
  auto refused =
      runner_->ChargeBudget("ns", "b", InFlight(1), absl::Seconds(3));
  EXPECT_FALSE(refused->admitted);
  EXPECT_EQ(refused->retry_after, absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(runner_->ChargeBudget("ns", "live", InFlight(1), absl::Seconds(3))
                  ->admitted);
  // A renewed slot is held past its first expiry.
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(runner_->RenewBudget("ns", "live", absl::Seconds(3)),
              IsOkAndHolds(true));
  clock_.Advance(absl::Seconds(2));
  EXPECT_FALSE(runner_->ChargeBudget("ns", "c", InFlight(1), absl::Seconds(3))
                   ->admitted);
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(runner_->RenewBudget("ns", "live", absl::Seconds(3)),
              IsOkAndHolds(false));
  EXPECT_TRUE(runner_->ChargeBudget("ns", "c", InFlight(1), absl::Seconds(3))
                  ->admitted);
}

TEST_P(StoreBehaviourTest, ShadowBudgetAdmitsAndSaysWhatItWouldRefuse) {
  BudgetLimits limits = InFlight(1);
  limits.rate_per_second = 1;
  limits.enforce = false;
  const absl::Duration hold = absl::Seconds(30);
  auto first = runner_->ChargeBudget("ns", "a", limits, hold);
  EXPECT_TRUE(first->admitted);
  EXPECT_FALSE(first->over_budget);
  auto second = runner_->ChargeBudget("ns", "b", limits, hold);
  EXPECT_TRUE(second->admitted);
  EXPECT_TRUE(second->over_budget);
  EXPECT_EQ(second->limit, "in_flight");
  EXPECT_EQ(second->in_flight, 2u);  // The real concurrency.
  ASSERT_THAT(runner_->ReturnBudget("ns", "a"), IsOkAndHolds(true));
  ASSERT_THAT(runner_->ReturnBudget("ns", "b"), IsOkAndHolds(true));
  // Over the rate: admitted, and the rate is not advanced by it.
  auto third = runner_->ChargeBudget("ns", "c", limits, hold);
  EXPECT_TRUE(third->admitted);
  EXPECT_EQ(third->limit, "rate");
  EXPECT_EQ(third->retry_after, absl::Seconds(1));
  ASSERT_THAT(runner_->ReturnBudget("ns", "c"), IsOkAndHolds(true));
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(runner_->ChargeBudget("ns", "d", limits, hold)->over_budget);
}

TEST_P(StoreBehaviourTest, PingAndIsUp) {
  EXPECT_OK(runner_->Ping());
  EXPECT_TRUE(store_->IsUp());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreBehaviourTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kRedis),
                         BackendName);

}  // namespace
}  // namespace corral
