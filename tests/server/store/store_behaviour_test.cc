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
    auto store =
        std::make_unique<RedisStore>(loop_, TestRedisOptions(server_->uri()));
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

TEST_P(StoreBehaviourTest, PingAndIsUp) {
  EXPECT_OK(runner_->Ping());
  EXPECT_TRUE(store_->IsUp());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreBehaviourTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kRedis),
                         BackendName);

}  // namespace
}  // namespace corral
