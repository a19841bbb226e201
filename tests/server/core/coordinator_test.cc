// Behaviour of the coordination core, the same suite on both stores: the
// embedded store on a ManualExecutor and a fake clock (exact: every timer
// fires when the test moves time), and a real redis-server that the fixture
// starts (Redis keeps its own time, so the clock there is real and waits
// poll with deadlines). See coordinator_fixture.h.
#include "server/core/coordinator.h"

#include <atomic>
#include <future>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/store/redis_scripts.h"
#include "tests/server/core/coordinator_fixture.h"

namespace corral {
namespace {

using namespace ::corral::testing_internal;  // NOLINT: the suite's fixture.
using ::corral::testing::IsOk;
using ::corral::testing::StatusIs;
using ::testing::Eq;

const CacheKey kKey{"plant_id", "image-hash-1"};

TEST_P(CoordinatorTest, GetMissSetGetHit) {
  EXPECT_THAT(Get(kKey), corral::testing::IsOkAndHolds(
                             ::testing::Field(&GetResult::found, false)));
  ASSERT_THAT(Set(kKey, "rose"), corral::testing::IsOkAndHolds(true));
  auto got = Get(kKey);
  ASSERT_OK(got);
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value.bytes(), "rose");
  EXPECT_LE(got->value.ttl_remaining, absl::Seconds(60));
  EXPECT_GT(got->value.ttl_remaining, absl::Seconds(55));
}

TEST_P(CoordinatorTest, ValueExpires) {
  if (GetParam() == StoreKind::kEmbedded) {
    ASSERT_OK(Set(kKey, "rose", absl::Seconds(10)));
    fake_clock_.Advance(absl::Seconds(9));
    EXPECT_TRUE(Get(kKey)->found);
    fake_clock_.Advance(absl::Seconds(2));  // No sleeping: the clock moves.
    EXPECT_FALSE(Get(kKey)->found);
  } else {
    ASSERT_OK(Set(kKey, "rose", absl::Milliseconds(500)));
    EXPECT_TRUE(Get(kKey)->found);
    Advance(absl::Milliseconds(600));  // Redis keeps its own time.
    EXPECT_FALSE(Get(kKey)->found);
  }
}

TEST_P(CoordinatorTest, InvalidInputNamesTheField) {
  auto bad_ns = Get(CacheKey{"no spaces", "k"});
  EXPECT_THAT(bad_ns, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad_ns.status().message()),
              ::testing::HasSubstr("namespace"));
  EXPECT_EQ(ReasonOf(bad_ns.status()), "invalid-argument");
  EXPECT_THAT(Get(CacheKey{"", "k"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Get(CacheKey{std::string(129, 'a'), "k"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Get(CacheKey{"ns", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Get(CacheKey{"ns", std::string(1025, 'k')}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(Get(CacheKey{"ns", std::string(1024, 'k')}));
  EXPECT_THAT(Set(kKey, "v", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Set(kKey, "v", absl::Seconds(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Set(kKey, "v", absl::Hours(24 * 365)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto too_big = Set(CacheKey{"strict", "k"}, std::string(17, 'x'));
  EXPECT_THAT(too_big, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(too_big.status().message()),
              ::testing::HasSubstr("value"));
  EXPECT_THAT(Acquire(kKey, absl::Seconds(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Release(kKey, ""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(CoordinatorTest, LockIsExclusiveAndFencingTokensIncrease) {
  auto first = Acquire(kKey, absl::ZeroDuration());
  ASSERT_OK(first);
  ASSERT_TRUE(first->acquired);
  auto second = Acquire(kKey, absl::ZeroDuration());
  ASSERT_OK(second);
  EXPECT_FALSE(second->acquired);
  EXPECT_THAT(Release(kKey, "not-the-token"),
              corral::testing::IsOkAndHolds(false));
  EXPECT_THAT(Release(kKey, first->token), corral::testing::IsOkAndHolds(true));
  auto third = Acquire(kKey, absl::ZeroDuration());
  ASSERT_TRUE(third->acquired);
  EXPECT_GT(third->fencing_token, first->fencing_token);
}

// The breaker's shared record is not rewritten for every success: a closed
// breaker's successes go out in batches, and a failure carries the ones
// before it along, in order.
TEST_P(CoordinatorTest, BreakerSuccessesAreWrittenInBatchesAndFailuresAtOnce) {
  auto stored = [&] {
    return Sync<BreakerRecord>([&](auto done) {
      executor().Post([&, done = std::move(done)]() mutable {
        store_->LoadBreaker(kKey.ns, std::move(done));
      });
    });
  };
  const BreakerSettings settings = registry_.Find(kKey.ns)->breaker;
  auto totals = [&](const BreakerRecord& record) {
    auto snapshot = BreakerSnapshot::Decode(record.state);
    EXPECT_OK(snapshot.status());
    return snapshot.ok() ? snapshot->InWindow(settings, clock_->Now())
                         : BreakerSnapshot::Totals{};
  };
  for (int i = 0; i < 30; ++i) {
    auto grant = Acquire(kKey, absl::ZeroDuration());
    ASSERT_OK(grant);
    ASSERT_TRUE(grant->acquired);
    ASSERT_THAT(Release(kKey, grant->token, Outcome::kSuccess),
                corral::testing::IsOkAndHolds(true));
  }
  // Written within the batch interval (100 ms), in few writes.
  absl::StatusOr<BreakerRecord> record;
  EXPECT_TRUE(AdvanceUntil(
      [&] {
        record = stored();
        return record.ok() && record->version > 0 &&
               totals(*record).successes == 30;
      },
      absl::Milliseconds(100)));
  ASSERT_OK(record.status());
  EXPECT_EQ(totals(*record).successes, 30u);
  EXPECT_LE(record->version, 10u) << "one write per success";

  // Successes, then a failure: written together, the failure last.
  for (int i = 0; i < 5; ++i) {
    auto grant = Acquire(kKey, absl::ZeroDuration());
    ASSERT_OK(grant);
    ASSERT_THAT(Release(kKey, grant->token, Outcome::kSuccess),
                corral::testing::IsOkAndHolds(true));
  }
  auto grant = Acquire(kKey, absl::ZeroDuration());
  ASSERT_OK(grant);
  ASSERT_THAT(Release(kKey, grant->token, Outcome::kFailure),
              corral::testing::IsOkAndHolds(true));
  // At once: no time passes.
  EXPECT_TRUE(Eventually([&] {
    record = stored();
    return record.ok() && totals(*record).failures == 1;
  }));
  ASSERT_OK(record.status());
  EXPECT_EQ(totals(*record).failures, 1u);
  EXPECT_EQ(totals(*record).successes, 35u);
  auto snapshot = BreakerSnapshot::Decode(record->state);
  ASSERT_OK(snapshot.status());
  EXPECT_EQ(snapshot->consecutive_failures, 1u);
}

// A stop does not wait for the batch timer: pending successes are written
// before Shutdown returns.
TEST_P(CoordinatorTest, ShutdownWritesTheBreakersPendingSuccesses) {
  for (int i = 0; i < 10; ++i) {
    auto grant = Acquire(kKey, absl::ZeroDuration());
    ASSERT_OK(grant);
    ASSERT_THAT(Release(kKey, grant->token, Outcome::kSuccess),
                corral::testing::IsOkAndHolds(true));
  }
  if (embedded()) {
    // No time passes (the batch timer never fires): Shutdown wrote them.
    coordinator_->Shutdown(absl::ZeroDuration());
    manual_->RunUntilIdle();
  } else {
    coordinator_->Shutdown(absl::Seconds(2));
  }
  absl::StatusOr<BreakerRecord> record = Sync<BreakerRecord>([&](auto done) {
    executor().Post([&, done = std::move(done)]() mutable {
      store_->LoadBreaker(kKey.ns, std::move(done));
    });
  });
  ASSERT_OK(record.status());
  auto snapshot = BreakerSnapshot::Decode(record->state);
  ASSERT_OK(snapshot.status());
  EXPECT_EQ(snapshot->InWindow(registry_.Find(kKey.ns)->breaker, clock_->Now())
                .successes,
            10u);
}

TEST_P(CoordinatorTest, LockTokensAre128RandomBitsAndOnlyTheHoldersReleases) {
  std::set<std::string> tokens;
  for (int i = 0; i < 200; ++i) {
    auto lock = Acquire(CacheKey{"plant_id", absl::StrCat("t", i)},
                        absl::ZeroDuration());
    ASSERT_OK(lock);
    ASSERT_TRUE(lock->acquired);
    EXPECT_EQ(lock->token.size(), 32u);
    EXPECT_EQ(lock->token.find_first_not_of("0123456789abcdef"),
              std::string::npos);
    tokens.insert(lock->token);
  }
  EXPECT_EQ(tokens.size(), 200u);
  auto lock = Acquire(kKey, absl::ZeroDuration());
  ASSERT_TRUE(lock->acquired);
  std::string forged = lock->token;
  forged[0] = forged[0] == '0' ? '1' : '0';
  EXPECT_THAT(Release(kKey, forged), corral::testing::IsOkAndHolds(false));
  EXPECT_THAT(Release(kKey, lock->token), corral::testing::IsOkAndHolds(true));
}

TEST_P(CoordinatorTest, ReleaseWakesAWaiterWithoutPolling) {
  auto holder = Acquire(kKey, absl::ZeroDuration());
  ASSERT_TRUE(holder->acquired);
  const absl::Time start = clock_->Now();
  auto waiter = StartAcquire(kKey, absl::Seconds(10));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  EXPECT_FALSE(waiter.Ready());
  ASSERT_THAT(Release(kKey, holder->token),
              corral::testing::IsOkAndHolds(true));
  // Woken by the release, not by the holder's 30 s expiry nor the 10 s wait:
  // on the fake clock no time passed at all; on Redis the answer comes
  // before the wait could have ended.
  auto got = waiter.Get(absl::Seconds(5));
  ASSERT_OK(got);
  EXPECT_TRUE(got->acquired);
  EXPECT_GT(got->fencing_token, holder->fencing_token);
  if (embedded()) {
    EXPECT_EQ(clock_->Now(), start);
  }
}

TEST_P(CoordinatorTest, LockWaitTimesOutAsNotAcquired) {
  ASSERT_TRUE(Acquire(kKey, absl::ZeroDuration())->acquired);
  auto waiter = StartAcquire(kKey, absl::Milliseconds(100));
  if (embedded()) {
    // Exactly at its wait timeout, not a moment before.
    Advance(absl::Milliseconds(100) - absl::Nanoseconds(1));
    EXPECT_FALSE(waiter.Ready());
    EXPECT_EQ(observer_.waiters.load(), 1);
    Advance(absl::Nanoseconds(1));
    EXPECT_TRUE(waiter.Ready());
  }
  auto got = waiter.Get();
  ASSERT_OK(got);
  EXPECT_FALSE(got->acquired);
  EXPECT_EQ(observer_.waiters.load(), 0);
}

TEST_P(CoordinatorTest, CancelledLockWaiterCostsNothingAfterwards) {
  auto holder = Acquire(kKey, absl::ZeroDuration());
  std::atomic<bool> called{false};
  AcquireLockRequest r;
  r.key = kKey;
  r.wait_timeout = absl::Seconds(10);
  auto id = coordinator_->AcquireLock(
      r, [&](absl::StatusOr<LockGrant>) { called = true; });
  EXPECT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  coordinator_->CancelAcquire(id);
  EXPECT_TRUE(Eventually([&] { return observer_.waiters.load() == 0; }));
  ASSERT_OK(Release(kKey, holder->token));
  // Embedded: everything the release led to has run. Redis: the lock is
  // found free below, so nothing took it for the cancelled caller.
  Drain();
  EXPECT_FALSE(called);
  // The lock is free: nobody took it on the cancelled caller's behalf.
  EXPECT_TRUE(Acquire(kKey, absl::ZeroDuration())->acquired);
}

TEST_P(CoordinatorTest, HitIsServedFromCache) {
  ASSERT_OK(Set(kKey, "rose"));
  Call c = Lookup(kKey);
  ASSERT_TRUE(c.sink->WaitDone());
  ASSERT_TRUE(c.sink->value().has_value());
  EXPECT_EQ(c.sink->value()->bytes(), "rose");
  EXPECT_EQ(c.sink->value()->source, Source::kCache);
}

// A hot key's hits come from the read cache, on the caller's own thread,
// and a write on this replica is seen by the very next read.
TEST_P(CoordinatorTest, WarmHitsAreAnsweredOnTheCallersThreadAndSeeOwnWrites) {
  ASSERT_OK(Set(kKey, "rose"));
  // The first reads go to the store (with Redis, tracking may still be
  // starting); then a hit is answered before Get returns.
  // "Inline": answered before Get returned, on this thread (on the manual
  // executor the store's answers also come on this thread, but only when
  // the test runs it).
  auto inline_hit = [&] {
    const std::thread::id caller = std::this_thread::get_id();
    auto in_call = std::make_shared<std::atomic<bool>>(true);
    auto answered_inline = std::make_shared<std::atomic<bool>>(false);
    coordinator_->Get(kKey, [=](absl::StatusOr<GetResult> r) {
      if (*in_call && std::this_thread::get_id() == caller && r.ok() &&
          r->found && r->value.bytes() == "rose") {
        *answered_inline = true;
      }
    });
    *in_call = false;
    return answered_inline->load();
  };
  ASSERT_OK(Get(kKey));  // Warms the read cache.
  ASSERT_TRUE(Eventually(inline_hit))
      << "no hit was answered from the read cache";
  auto sink = std::make_shared<RecordingSink>(Driver());
  LookupRequest lookup;
  lookup.key = kKey;
  absl::Time due = absl::InfinitePast();
  ASSERT_TRUE(coordinator_->ServeFromReadCache(lookup, *sink, &due));
  ASSERT_TRUE(sink->value().has_value());
  EXPECT_EQ(sink->value()->bytes(), "rose");
  EXPECT_EQ(sink->value()->source, Source::kCache);

  // An invalid lookup is not answered from the cache: the session says why.
  LookupRequest bad = lookup;
  bad.ttl = absl::Seconds(-1);
  EXPECT_FALSE(coordinator_->ServeFromReadCache(bad, *sink, &due));

  ASSERT_OK(Set(kKey, "tulip"));
  auto got = Get(kKey);
  ASSERT_OK(got.status());
  EXPECT_EQ(got->value.bytes(), "tulip");
  ASSERT_THAT(Sync<bool>([&](auto done) {
                coordinator_->Invalidate(kKey, std::move(done));
              }),
              corral::testing::IsOkAndHolds(true));
  got = Get(kKey);
  ASSERT_OK(got.status());
  EXPECT_FALSE(got->found);
}

// A namespace with read_cache: false reads the store every time: nothing is
// ever answered on the caller's thread.
TEST_P(CoordinatorTest, ANamespaceWithoutReadCacheAlwaysAsksTheStore) {
  const CacheKey key{"uncached", "k"};
  ASSERT_OK(Set(key, "rose"));
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 0; i < 50; ++i) {
    auto in_call = std::make_shared<std::atomic<bool>>(true);
    auto answer = Start<GetResult>([&](auto done) {
      coordinator_->Get(key, [in_call, caller, done = std::move(done)](
                                 absl::StatusOr<GetResult> r) mutable {
        EXPECT_FALSE(*in_call && std::this_thread::get_id() == caller)
            << "answered inline";
        done(std::move(r));
      });
    });
    *in_call = false;
    auto got = answer.Get();
    ASSERT_OK(got.status());
    EXPECT_TRUE(got->found);
  }
  auto sink = std::make_shared<RecordingSink>(Driver());
  LookupRequest lookup;
  lookup.key = key;
  absl::Time due = absl::InfinitePast();
  EXPECT_FALSE(coordinator_->ServeFromReadCache(lookup, *sink, &due));
}

TEST_P(CoordinatorTest, StampedeGetsExactlyOneLeaseAndEveryoneTheFill) {
  std::vector<Call> calls;
  for (int i = 0; i < 200; ++i) calls.push_back(Lookup(kKey));
  int leader = WaitForOneLease(calls);
  ASSERT_GE(leader, 0);
  const Call& l = calls[leader];
  EXPECT_EQ(l.sink->lease()->mode, LeaseMode::kLocked);
  EXPECT_GT(l.sink->lease()->fencing_token, 0u);
  coordinator_->ComputeFill(l.id, FillRequest{"rose", std::nullopt});
  ASSERT_TRUE(l.sink->WaitDone());
  ASSERT_TRUE(l.sink->filled().has_value());
  EXPECT_TRUE(l.sink->filled()->stored);
  for (size_t i = 0; i < calls.size(); ++i) {
    if (static_cast<int>(i) == leader) continue;
    ASSERT_TRUE(calls[i].sink->WaitDone()) << i;
    ASSERT_TRUE(calls[i].sink->value().has_value()) << calls[i].sink->status();
    EXPECT_EQ(calls[i].sink->value()->bytes(), "rose");
    EXPECT_EQ(calls[i].sink->value()->source, Source::kPeerFill);
  }
  EXPECT_EQ(observer_.waiters.load(), 0);
  EXPECT_EQ(Get(kKey)->value.bytes(), "rose");
}

TEST_P(CoordinatorTest,
       AStampedeOnOneReplicaCostsOneReadOneLockAttemptAndOneFill) {
  // Callers that arrive while the read is under way share it; callers that
  // arrive during the lock attempt or the compute wait without a read; and
  // nobody tries for a lock this replica's leaseholder holds, or subscribes
  // to hear a fill that will happen here.
  std::vector<Call> calls;
  for (int i = 0; i < 50; ++i) calls.push_back(Lookup(kKey));
  int leader = WaitForOneLease(calls);
  ASSERT_GE(leader, 0);
  for (int i = 0; i < 50; ++i)
    calls.push_back(Lookup(kKey));  // During the compute.
  EXPECT_TRUE(Eventually([&] { return observer_.waiters.load() == 99; }))
      << observer_.waiters.load();
  coordinator_->ComputeFill(calls[leader].id,
                            FillRequest{"rose", std::nullopt});
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_TRUE(calls[i].sink->WaitDone()) << i;
    if (static_cast<int>(i) == leader) continue;
    ASSERT_TRUE(calls[i].sink->value().has_value()) << calls[i].sink->status();
    EXPECT_EQ(calls[i].sink->value()->bytes(), "rose");
  }
  EXPECT_EQ(store_->reads.load(), 1);
  EXPECT_EQ(store_->lock_attempts.load(), 1);
  EXPECT_EQ(store_->puts.load(), 1);
  EXPECT_EQ(store_->watches.load(), 0);
  EXPECT_EQ(store_->releases.load(), 0);  // The fill released the lock.
}

TEST_P(CoordinatorTest,
       LeaseholdersThatFillAbandonFailOrVanishAtRandomStrandNobody) {
  // Rounds of callers on three keys; whoever gets a lease does one of the
  // four things a worker can do, at random (a fixed seed: a failure
  // replays). Every call must end (a value, a lease it acted on, or an
  // error) and the waiter count must return to 0.
  std::mt19937 rng(20261204);
  const std::vector<CacheKey> keys{
      {"plant_id", "a"}, {"plant_id", "b"}, {"plant_id", "c"}};
  for (int round = 0; round < 4; ++round) {
    struct Caller {
      Call call;
      bool acted = false;
      bool gone = false;
    };
    std::vector<Caller> callers;
    for (int i = 0; i < 20; ++i) {
      for (const CacheKey& key : keys) callers.push_back(Caller{Lookup(key)});
    }
    // Something to do: every call ended, or a lease nobody acted on yet.
    auto progress = [&] {
      bool all_done = true;
      for (const Caller& c : callers) {
        if (c.gone || c.call.sink->Done()) continue;
        all_done = false;
        if (!c.acted && c.call.sink->HasLease()) return true;
      }
      return all_done;
    };
    for (;;) {
      // Embedded: idle with nothing to do is a stranded caller. Redis: 4 s,
      // below the calls' wait_timeout.
      ASSERT_TRUE(Eventually(progress, absl::Seconds(4)))
          << "round " << round << ": a caller was stranded";
      bool all_done = true;
      for (Caller& c : callers) {
        if (c.gone || c.call.sink->Done()) continue;
        all_done = false;
        if (c.acted || !c.call.sink->HasLease()) continue;
        c.acted = true;
        switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
          case 0:
            coordinator_->ComputeFill(c.call.id,
                                      FillRequest{"v", std::nullopt});
            break;
          case 1:
            coordinator_->ComputeAbandon(c.call.id,
                                         AbandonRequest{"not now", false});
            break;
          case 2:
            coordinator_->ComputeAbandon(c.call.id,
                                         AbandonRequest{"upstream 503", true});
            break;
          default:
            coordinator_->ComputeGone(c.call.id);  // The stream broke.
            c.gone = true;
            break;
        }
      }
      if (all_done) break;
    }
    for (const CacheKey& key : keys) {
      ASSERT_OK(Sync<bool>(
          [&](auto done) { coordinator_->Invalidate(key, std::move(done)); }));
    }
  }
  EXPECT_TRUE(Eventually([&] { return observer_.waiters.load() == 0; }))
      << observer_.waiters.load();
}

TEST_P(CoordinatorTest, AFillThatLandedBeforeTheLockIsFoundWithIt) {
  // The seed's double check: the miss, then someone else's fill, then the
  // lock. The lock attempt reads the key too, so the value is served and
  // nobody computes.
  Call c = Lookup(kKey);
  ASSERT_TRUE(c.sink->WaitLease());
  std::vector<Call> late;
  for (int i = 0; i < 3; ++i) late.push_back(Lookup(kKey));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 3; }));
  // Another replica's unfenced write, straight to the store: no event
  // reaches this replica's waiters (nobody here watches the key).
  auto put = Sync<bool>([&](auto done) {
    executor().Post([&, done = std::move(done)]() mutable {
      PutOptions options;
      options.ttl = absl::Seconds(60);
      store_->inner().Put(kKey, "tulip", options, std::move(done));
    });
  });
  ASSERT_THAT(put, corral::testing::IsOkAndHolds(true));
  const int attempts = store_->lock_attempts.load();
  const int reads = store_->reads.load();
  // Abandon: the next waiter takes the lock and finds the value with it.
  coordinator_->ComputeAbandon(c.id, AbandonRequest{"changed my mind", false});
  for (Call& l : late) {
    ASSERT_TRUE(l.sink->WaitDone());
    ASSERT_TRUE(l.sink->value().has_value()) << l.sink->status();
    EXPECT_EQ(l.sink->value()->bytes(), "tulip");
    EXPECT_FALSE(l.sink->HasLease());
  }
  EXPECT_EQ(store_->lock_attempts.load(), attempts + 1);
  EXPECT_EQ(store_->reads.load(), reads);  // The lock attempt was the read.
}

TEST_P(CoordinatorTest, ASetOnThisReplicaServesItsWaitersAtOnce) {
  Call c = Lookup(kKey);
  ASSERT_TRUE(c.sink->WaitLease());
  std::vector<Call> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(Lookup(kKey));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 3; }));
  ASSERT_THAT(Set(kKey, "tulip"), corral::testing::IsOkAndHolds(true));
  for (Call& w : waiting) {
    ASSERT_TRUE(w.sink->WaitDone(absl::Seconds(2)));
    ASSERT_TRUE(w.sink->value().has_value()) << w.sink->status();
    EXPECT_EQ(w.sink->value()->bytes(), "tulip");
  }
  EXPECT_FALSE(c.sink->Done());  // The leaseholder may still fill.
}

TEST_P(CoordinatorTest, AbandonHandsTheLeaseToTheNextWaiter) {
  std::vector<Call> calls{Lookup(kKey), Lookup(kKey), Lookup(kKey)};
  int first = WaitForOneLease(calls);
  ASSERT_GE(first, 0);
  coordinator_->ComputeAbandon(calls[first].id,
                               AbandonRequest{"changed my mind", false});
  ASSERT_TRUE(calls[first].sink->WaitDone());
  EXPECT_OK(calls[first].sink->status());
  std::vector<Call> rest;
  for (int i = 0; i < 3; ++i)
    if (i != first) rest.push_back(calls[i]);
  int second = WaitForOneLease(rest);
  ASSERT_GE(second, 0);
  EXPECT_GT(rest[second].sink->lease()->fencing_token,
            calls[first].sink->lease()->fencing_token);
}

TEST_P(CoordinatorTest, AbandonIsAnsweredOnceTheLockIsFree) {
  // So that the caller's retry through another replica finds the lock free.
  // Redis' writes are paused, which holds up the release: the answer waits
  // for it.
  if (GetParam() != StoreKind::kRedis)
    GTEST_SKIP() << "needs a store that can be paused";
  Call c = Lookup(kKey);
  ASSERT_TRUE(c.sink->WaitLease());
  ASSERT_OK(redis_->Command({"CLIENT", "PAUSE", "300", "WRITE"}));
  coordinator_->ComputeAbandon(c.id, AbandonRequest{"changed my mind", false});
  // Writes are paused: the release is held up, and so is the answer. (A
  // store answer that overtook the paused write would come at once.)
  EXPECT_FALSE(c.sink->WaitDone(absl::Milliseconds(150)));
  ASSERT_TRUE(c.sink->WaitDone());
  EXPECT_OK(c.sink->status());
  EXPECT_THAT(redis_->Command({"EXISTS", RedisKeysFor(kKey).lock}),
              corral::testing::IsOkAndHolds("0"));
}

TEST_P(CoordinatorTest, BrokenLeaseholderStreamHandsTheLeaseOn) {
  std::vector<Call> calls{Lookup(kKey), Lookup(kKey)};
  int first = WaitForOneLease(calls);
  ASSERT_GE(first, 0);
  coordinator_->ComputeGone(calls[first].id);
  int second = 1 - first;
  ASSERT_TRUE(calls[second].sink->WaitLease());
}

TEST_P(CoordinatorTest, UpstreamFailureIsSharedWithCurrentWaiters) {
  std::vector<Call> calls{Lookup(kKey), Lookup(kKey), Lookup(kKey)};
  int first = WaitForOneLease(calls);
  ASSERT_GE(first, 0);
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 2; }));
  coordinator_->ComputeAbandon(calls[first].id,
                               AbandonRequest{"upstream 503", true});
  for (int i = 0; i < 3; ++i) {
    if (i == first) continue;
    ASSERT_TRUE(calls[i].sink->WaitDone());
    EXPECT_THAT(calls[i].sink->status(),
                StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(ReasonOf(calls[i].sink->status()), "peer-compute-failed");
  }
}

TEST_P(CoordinatorTest, AWaitTimeoutIsAHedgeByDefault) {
  std::vector<Call> calls{Lookup(kKey)};
  ASSERT_EQ(WaitForOneLease(calls), 0);
  Call late = Lookup(kKey, absl::Milliseconds(100));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  EXPECT_FALSE(late.sink->HasLease());
  ASSERT_TRUE(AdvanceUntil([&] { return late.sink->HasLease(); },
                           absl::Milliseconds(100)));
  EXPECT_EQ(late.sink->lease()->mode, LeaseMode::kUnlockedTimeout);
  EXPECT_EQ(observer_.duplicates.load(), 1);
  // The locked fill lands first; the unlocked one must not overwrite it.
  coordinator_->ComputeFill(calls[0].id, FillRequest{"locked", std::nullopt});
  ASSERT_TRUE(calls[0].sink->WaitDone());
  coordinator_->ComputeFill(late.id, FillRequest{"unlocked", std::nullopt});
  ASSERT_TRUE(late.sink->WaitDone());
  EXPECT_FALSE(late.sink->filled()->stored);
  EXPECT_EQ(Get(kKey)->value.bytes(), "locked");
}

// Issue 18: the upstream slows past wait_timeout while its holder is alive.
// One hedge per lease; every other timed-out caller waits on for whichever
// fill lands first.
TEST_P(CoordinatorTest, TimedOutWaitersHedgeOnceAndTheRestWaitOn) {
  const CacheKey key{"plant_id", "slow-upstream"};
  std::vector<Call> holder{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(holder), 0);
  std::vector<Call> late;
  for (int i = 0; i < 8; ++i)
    late.push_back(Lookup(key, absl::Milliseconds(100)));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 8; }));
  // Their wait_timeout passes: one of them hedges.
  ASSERT_TRUE(AdvanceUntil(
      [&] {
        for (const Call& c : late) {
          if (c.sink->HasLease()) return true;
        }
        return false;
      },
      absl::Milliseconds(100)));
  const int hedge = WaitForOneLease(late);
  ASSERT_GE(hedge, 0);
  EXPECT_EQ(late[hedge].sink->lease()->mode, LeaseMode::kUnlockedTimeout);
  // Well past their wait_timeout the others still wait, without a lease.
  Advance(absl::Milliseconds(300));
  for (size_t i = 0; i < late.size(); ++i) {
    if (static_cast<int>(i) == hedge) continue;
    EXPECT_FALSE(late[i].sink->Done()) << i << ": " << late[i].sink->status();
    EXPECT_FALSE(late[i].sink->HasLease()) << i;
  }
  EXPECT_EQ(observer_.duplicates.load(), 1);
  // The hedge lands first and serves everyone.
  coordinator_->ComputeFill(late[hedge].id, FillRequest{"hedge", std::nullopt});
  ASSERT_TRUE(late[hedge].sink->WaitDone());
  EXPECT_TRUE(late[hedge].sink->filled()->stored);
  for (size_t i = 0; i < late.size(); ++i) {
    if (static_cast<int>(i) == hedge) continue;
    ASSERT_TRUE(late[i].sink->WaitDone()) << i;
    ASSERT_TRUE(late[i].sink->value().has_value()) << late[i].sink->status();
    EXPECT_EQ(late[i].sink->value()->bytes(), "hedge");
  }
  // The locked holder's later fill is still stored: it is as valid and
  // newer (documented in ARCHITECTURE, "Wait timeouts").
  coordinator_->ComputeFill(holder[0].id, FillRequest{"locked", std::nullopt});
  ASSERT_TRUE(holder[0].sink->WaitDone());
  EXPECT_TRUE(holder[0].sink->filled()->stored);
  EXPECT_EQ(Get(key)->value.bytes(), "locked");
}

TEST_P(CoordinatorTest, ComputeUnlockedStillTurnsEveryTimeoutIntoACompute) {
  const CacheKey key{"herd", "slow-upstream"};
  std::vector<Call> holder{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(holder), 0);
  std::vector<Call> late;
  for (int i = 0; i < 3; ++i)
    late.push_back(Lookup(key, absl::Milliseconds(50)));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 3; }));
  Advance(absl::Milliseconds(50));
  for (Call& c : late) {
    ASSERT_TRUE(c.sink->WaitLease());
    EXPECT_EQ(c.sink->lease()->mode, LeaseMode::kUnlockedTimeout);
  }
  EXPECT_EQ(observer_.duplicates.load(), 3);
}

TEST_P(CoordinatorTest, AHedgeAfterTheHolderLeftIsTheLockInstead) {
  // The holder abandons while a caller's wait times out: nobody holds the
  // lock, so the timed-out caller takes it (a locked lease, no duplicate).
  const CacheKey key{"plant_id", "no-holder"};
  std::vector<Call> holder{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(holder), 0);
  coordinator_->ComputeAbandon(holder[0].id, AbandonRequest{"gone", false});
  ASSERT_TRUE(holder[0].sink->WaitDone());
  Call late = Lookup(key, absl::ZeroDuration());
  ASSERT_TRUE(late.sink->WaitLease());
  EXPECT_EQ(late.sink->lease()->mode, LeaseMode::kLocked);
  EXPECT_EQ(observer_.duplicates.load(), 0);
}

TEST_P(CoordinatorTest, ALockWonWhileAHedgeIsDecidedIsNoHedge) {
  // The holder abandons while a timed-out waiter's re-read is under way: the
  // waiter wins the lock (and is charged for it) before its hedge claim is
  // answered, and the claim then finds the waiter's own lock held. It
  // computes once, locked: no hedge beside its own lock.
  const CacheKey key{"shadow", "hedge-race"};
  std::vector<Call> holder{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(holder), 0);
  Call late = Lookup(key, absl::Milliseconds(100));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  store_->Hold();
  Advance(absl::Milliseconds(100));  // Its wait runs out: the re-read is held.
  ASSERT_TRUE(store_->WaitHeld(1));
  coordinator_->ComputeAbandon(holder[0].id, AbandonRequest{"gone", false});
  ASSERT_TRUE(store_->WaitHeld(2));  // It won the lock; that answer is held.
  store_->Release();
  ASSERT_TRUE(late.sink->WaitLease());
  EXPECT_EQ(late.sink->lease()->mode, LeaseMode::kLocked);
  EXPECT_EQ(observer_.duplicates.load(), 0);
}

TEST_P(CoordinatorTest, OverBudgetACallerWaitsForASlotThenComputes) {
  const CacheKey a{"budgeted", "a"}, b{"budgeted", "b"};
  std::vector<Call> first{Lookup(a)};
  ASSERT_EQ(WaitForOneLease(first), 0);
  Call second = Lookup(b, absl::Seconds(5));
  // It asks the budget again every few ms, and is refused each time.
  Advance(absl::Milliseconds(100));
  EXPECT_FALSE(second.sink->HasLease()) << "one compute in flight at most";
  EXPECT_GE(observer_.budget_waits.load(), 1);
  // The first fill returns the slot; the next ask takes it.
  coordinator_->ComputeFill(first[0].id, FillRequest{"a", std::nullopt});
  ASSERT_TRUE(first[0].sink->WaitDone());
  ASSERT_TRUE(AdvanceUntil([&] { return second.sink->HasLease(); },
                           absl::Milliseconds(300)));
  EXPECT_EQ(second.sink->lease()->mode, LeaseMode::kLocked);
  // An abandon (or a broken stream) returns it too.
  Call third = Lookup(CacheKey{"budgeted", "c"}, absl::Seconds(5));
  Advance(absl::Milliseconds(50));
  EXPECT_FALSE(third.sink->HasLease());
  coordinator_->ComputeGone(second.id);
  ASSERT_TRUE(AdvanceUntil([&] { return third.sink->HasLease(); },
                           absl::Milliseconds(300)));
  EXPECT_EQ(observer_.budget_rejections.load(), 0);
}

TEST_P(CoordinatorTest, OverBudgetPastItsWaitACallerIsResourceExhausted) {
  const CacheKey a{"budgeted", "a"}, b{"budgeted", "b"};
  std::vector<Call> first{Lookup(a)};
  ASSERT_EQ(WaitForOneLease(first), 0);
  Call second = Lookup(b, absl::Milliseconds(200));
  // Refused until its wait_timeout, and then for good.
  ASSERT_TRUE(AdvanceUntil([&] { return second.sink->Done(); },
                           absl::Milliseconds(200)));
  EXPECT_FALSE(second.sink->HasLease());
  EXPECT_THAT(second.sink->status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(ReasonOf(second.sink->status()), "compute-budget");
  EXPECT_TRUE(RetryAfterOf(second.sink->status()).has_value());
  EXPECT_EQ(observer_.budget_rejections.load(), 1);
  // It let the key's lock go: the next caller of b waits for budget, not
  // for a lock nobody uses.
  coordinator_->ComputeFill(first[0].id, FillRequest{"a", std::nullopt});
  ASSERT_TRUE(first[0].sink->WaitDone());
  Call again = Lookup(b, absl::Seconds(5));
  ASSERT_TRUE(again.sink->WaitLease());
}

TEST_P(CoordinatorTest, OverBudgetAStaleValueIsServedAtOnce) {
  const CacheKey a{"budgeted", "a"}, b{"budgeted", "b"};
  ComputeOnce(b, "old-b", absl::Milliseconds(100));
  Advance(absl::Milliseconds(300));  // b is past its TTL, inside the window.
  std::vector<Call> first{Lookup(a)};
  ASSERT_EQ(WaitForOneLease(first), 0);
  // Its stale-while-revalidate refresh is refused by the budget (one try:
  // it has a value to return), so it gets the old value, not a wait.
  Call stale = Lookup(b, absl::Seconds(5), /*allow_stale=*/true);
  ASSERT_TRUE(stale.sink->WaitDone(absl::Seconds(2)));
  ASSERT_TRUE(stale.sink->value().has_value()) << stale.sink->status();
  EXPECT_EQ(stale.sink->value()->bytes(), "old-b");
  coordinator_->ComputeFill(first[0].id, FillRequest{"a", std::nullopt});
  ASSERT_TRUE(first[0].sink->WaitDone());
}

TEST_P(CoordinatorTest, LockGrantsAreChargedToTheBudgetToo) {
  const CacheKey x{"budgeted", "lock-x"}, y{"budgeted", "lock-y"};
  // Try-once (no wait) and queued grants both take the one slot.
  auto held = Acquire(x, absl::ZeroDuration());
  ASSERT_OK(held.status());
  ASSERT_TRUE(held->acquired);
  auto refused = Acquire(y, absl::ZeroDuration());
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(ReasonOf(refused.status()), "compute-budget");
  // The refused grant gave its lock back: y is free for the next one.
  Call compute = Lookup(y, absl::Seconds(5));
  Advance(absl::Milliseconds(100));
  EXPECT_FALSE(compute.sink->HasLease()) << "the lock holds the only slot";
  ASSERT_THAT(Release(x, held->token), corral::testing::IsOkAndHolds(true));
  ASSERT_TRUE(AdvanceUntil([&] { return compute.sink->HasLease(); },
                           absl::Milliseconds(300)));
  coordinator_->ComputeFill(compute.id, FillRequest{"y", std::nullopt});
  ASSERT_TRUE(compute.sink->WaitDone());
  // A queued lock caller waits for budget like a compute.
  auto again = Acquire(x, absl::Seconds(5));
  ASSERT_OK(again.status());
  EXPECT_TRUE(again->acquired);
  ASSERT_THAT(Release(x, again->token), corral::testing::IsOkAndHolds(true));
}

TEST_P(CoordinatorTest, AShadowBudgetCountsButNeverHoldsBack) {
  const CacheKey a{"shadow", "a"}, b{"shadow", "b"};
  std::vector<Call> first{Lookup(a)};
  ASSERT_EQ(WaitForOneLease(first), 0);
  Call second = Lookup(b, absl::Seconds(5));
  ASSERT_TRUE(second.sink->WaitLease());
  EXPECT_EQ(observer_.budget_shadow_over.load(), 1);
  EXPECT_EQ(observer_.budget_waits.load(), 0);
  coordinator_->ComputeFill(first[0].id, FillRequest{"a", std::nullopt});
  coordinator_->ComputeFill(second.id, FillRequest{"b", std::nullopt});
  ASSERT_TRUE(first[0].sink->WaitDone());
  ASSERT_TRUE(second.sink->WaitDone());
}

TEST_P(CoordinatorTest, WaitTimeoutFailsUnderFailPolicy) {
  const CacheKey key{"strict", "k"};
  std::vector<Call> calls{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(calls), 0);
  Call late = Lookup(key, absl::Milliseconds(100));
  ASSERT_TRUE(
      AdvanceUntil([&] { return late.sink->Done(); }, absl::Milliseconds(100)));
  EXPECT_THAT(late.sink->status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_P(CoordinatorTest, WaitTimeoutRereadsTheCacheFirst) {
  std::vector<Call> calls{Lookup(kKey)};
  ASSERT_EQ(WaitForOneLease(calls), 0);
  Call late = Lookup(kKey, absl::Milliseconds(150));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  // A plain Set by someone else; the waiter hears it as a fill.
  ASSERT_OK(Set(kKey, "from-elsewhere"));
  ASSERT_TRUE(late.sink->WaitDone());
  ASSERT_TRUE(late.sink->value().has_value());
  EXPECT_EQ(late.sink->value()->bytes(), "from-elsewhere");
}

TEST_P(CoordinatorTest, LeaseRevokedAfterMaxComputeTimeAndLateFillRefused) {
  const CacheKey key{"strict", "slow"};
  std::vector<Call> calls{Lookup(key), Lookup(key)};
  int first = WaitForOneLease(calls);
  ASSERT_GE(first, 0);
  // max_compute_time is 300 ms in "strict": the other caller gets the lease
  // then (on the fake clock: exactly then).
  if (embedded()) {
    Advance(absl::Milliseconds(300) - absl::Nanoseconds(1));
    EXPECT_FALSE(calls[1 - first].sink->HasLease());
  }
  ASSERT_TRUE(AdvanceUntil([&] { return calls[1 - first].sink->HasLease(); },
                           absl::Milliseconds(300)));
  coordinator_->ComputeFill(calls[first].id, FillRequest{"late", std::nullopt});
  ASSERT_TRUE(calls[first].sink->WaitDone());
  ASSERT_TRUE(calls[first].sink->filled().has_value());
  EXPECT_FALSE(calls[first].sink->filled()->stored);
  EXPECT_EQ(calls[first].sink->filled()->reason, "lease-revoked");
  coordinator_->ComputeFill(calls[1 - first].id,
                            FillRequest{"fresh", std::nullopt});
  ASSERT_TRUE(calls[1 - first].sink->WaitDone());
  EXPECT_TRUE(calls[1 - first].sink->filled()->stored);
  EXPECT_EQ(Get(key)->value.bytes(), "fresh");
}

TEST_P(CoordinatorTest, LockApiWorkerWakesComputeWaiters) {
  auto lock = Acquire(kKey, absl::ZeroDuration());
  ASSERT_TRUE(lock->acquired);
  std::vector<Call> calls;
  for (int i = 0; i < 20; ++i) calls.push_back(Lookup(kKey));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 20; }));
  for (const Call& c : calls) EXPECT_FALSE(c.sink->HasLease());
  ASSERT_THAT(
      Set(kKey, "from-lock-worker", absl::Seconds(60), lock->token, true),
      corral::testing::IsOkAndHolds(true));
  for (const Call& c : calls) {
    ASSERT_TRUE(c.sink->WaitDone());
    ASSERT_TRUE(c.sink->value().has_value()) << c.sink->status();
    EXPECT_EQ(c.sink->value()->bytes(), "from-lock-worker");
  }
}

TEST_P(CoordinatorTest, ComputeLeaseholderMakesLockCallersWait) {
  std::vector<Call> calls{Lookup(kKey)};
  ASSERT_EQ(WaitForOneLease(calls), 0);
  EXPECT_FALSE(Acquire(kKey, absl::ZeroDuration())->acquired);
  auto waiter = StartAcquire(kKey, absl::Seconds(5));
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  EXPECT_FALSE(waiter.Ready());
  coordinator_->ComputeFill(calls[0].id, FillRequest{"v", std::nullopt});
  auto got = waiter.Get();
  ASSERT_OK(got);
  EXPECT_TRUE(got->acquired);
  EXPECT_GT(got->fencing_token, calls[0].sink->lease()->fencing_token);
}

TEST_P(CoordinatorTest, ProtocolErrorsEndTheCall) {
  {
    auto sink = std::make_shared<RecordingSink>(Driver());
    auto id = coordinator_->StartCompute(sink);
    coordinator_->ComputeFill(id, FillRequest{"v", std::nullopt});
    ASSERT_TRUE(sink->WaitDone());
    EXPECT_THAT(sink->status(), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  {
    std::vector<Call> calls{Lookup(kKey)};
    ASSERT_EQ(WaitForOneLease(calls), 0);
    LookupRequest again;
    again.key = kKey;
    coordinator_->ComputeLookup(calls[0].id, again);
    ASSERT_TRUE(calls[0].sink->WaitDone());
    EXPECT_THAT(calls[0].sink->status(),
                StatusIs(absl::StatusCode::kInvalidArgument));
    // The lease was released as an abandon: the next caller gets one.
    Call next = Lookup(kKey);
    ASSERT_TRUE(next.sink->WaitLease());
  }
}

TEST_P(CoordinatorTest, OversizedFillIsRejected) {
  const CacheKey key{"strict", "big"};
  std::vector<Call> calls{Lookup(key)};
  ASSERT_EQ(WaitForOneLease(calls), 0);
  coordinator_->ComputeFill(calls[0].id,
                            FillRequest{std::string(17, 'x'), std::nullopt});
  ASSERT_TRUE(calls[0].sink->WaitDone());
  EXPECT_THAT(calls[0].sink->status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(Get(key)->found);
}

TEST_P(CoordinatorTest, ManyKeysOneComputeEach) {
  std::vector<std::vector<Call>> per_key(20);
  for (int round = 0; round < 10; ++round) {
    for (int k = 0; k < 20; ++k)
      per_key[k].push_back(Lookup(CacheKey{"ns", absl::StrCat("k", k)}));
  }
  for (int k = 0; k < 20; ++k) {
    int leader = WaitForOneLease(per_key[k]);
    ASSERT_GE(leader, 0);
    coordinator_->ComputeFill(per_key[k][leader].id,
                              FillRequest{absl::StrCat("v", k), std::nullopt});
  }
  for (int k = 0; k < 20; ++k) {
    for (const Call& c : per_key[k]) {
      ASSERT_TRUE(c.sink->WaitDone());
      EXPECT_OK(c.sink->status());
    }
  }
}

// Leases the key to one caller and has it report an upstream failure.
#define FAIL_ONE_COMPUTE(key)                                                 \
  do {                                                                        \
    Call c = Lookup(key);                                                     \
    ASSERT_TRUE(c.sink->WaitLease());                                         \
    coordinator_->ComputeAbandon(c.id, AbandonRequest{"upstream 503", true}); \
    ASSERT_TRUE(c.sink->WaitDone());                                          \
  } while (0)

TEST_P(CoordinatorTest, UpstreamFailuresOpenTheBreakerAndMissesFailFast) {
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "a"}));
  ASSERT_OK(Set(CacheKey{"fragile", "cached"}, "still served"));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "b"}));
  ASSERT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kOpen; }));

  Call miss = Lookup(CacheKey{"fragile", "c"});
  ASSERT_TRUE(miss.sink->WaitDone());
  EXPECT_THAT(miss.sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReasonOf(miss.sink->status()), "breaker-open");
  auto retry = RetryAfterOf(miss.sink->status());
  ASSERT_TRUE(retry.has_value());
  EXPECT_GT(*retry, absl::ZeroDuration());
  EXPECT_LE(*retry, absl::Seconds(1));

  Call hit = Lookup(CacheKey{"fragile", "cached"});  // Hits are served.
  ASSERT_TRUE(hit.sink->WaitDone());
  EXPECT_EQ(hit.sink->value()->bytes(), "still served");

  auto lock = Acquire(CacheKey{"fragile", "d"}, absl::ZeroDuration());
  EXPECT_THAT(lock, StatusIs(absl::StatusCode::kUnavailable));

  auto view = Sync<BreakerView>([&](auto done) {
    coordinator_->DescribeBreaker("fragile", std::move(done));
  });
  ASSERT_OK(view);
  EXPECT_EQ(view->state, BreakerState::kOpen);
  // Another namespace is unaffected.
  Call other = Lookup(CacheKey{"plant_id", "x"});
  EXPECT_TRUE(other.sink->WaitLease());
}

TEST_P(CoordinatorTest, OpenBreakerServesStaleToThoseWhoAllowIt) {
  const CacheKey key{"fragile", "old"};
  ASSERT_OK(Set(key, "yesterday", absl::Milliseconds(200)));
  Advance(absl::Milliseconds(300));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "a"}));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "b"}));
  ASSERT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kOpen; }));
  Call stale = Lookup(key, absl::Seconds(5), /*allow_stale=*/true);
  ASSERT_TRUE(stale.sink->WaitDone());
  ASSERT_TRUE(stale.sink->value().has_value()) << stale.sink->status();
  EXPECT_EQ(stale.sink->value()->bytes(), "yesterday");
  EXPECT_EQ(stale.sink->value()->source, Source::kStale);
  EXPECT_TRUE(stale.sink->value()->stale);
  Call strict = Lookup(key);
  ASSERT_TRUE(strict.sink->WaitDone());
  EXPECT_EQ(ReasonOf(strict.sink->status()), "breaker-open");
}

TEST_P(CoordinatorTest, HalfOpenAdmitsOneProbeAndItsSuccessCloses) {
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "a"}));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "b"}));
  ASSERT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kOpen; }));
  Advance(absl::Seconds(1));
  std::vector<Call> calls;
  for (int i = 0; i < 5; ++i)
    calls.push_back(Lookup(CacheKey{"fragile", absl::StrCat("p", i)}));
  // Every one is decided: a lease, or an answer.
  EXPECT_TRUE(Eventually([&] {
    for (Call& c : calls) {
      if (!c.sink->HasLease() && !c.sink->Done()) return false;
    }
    return true;
  }));
  int leases = 0, rejected = 0;
  Call* probe = nullptr;
  for (Call& c : calls) {
    if (c.sink->HasLease()) {
      ++leases;
      probe = &c;
    } else if (c.sink->Done() && ReasonOf(c.sink->status()) == "breaker-open") {
      ++rejected;
    }
  }
  EXPECT_EQ(leases, 1);
  EXPECT_EQ(rejected, 4);
  ASSERT_NE(probe, nullptr);
  coordinator_->ComputeFill(probe->id, FillRequest{"recovered", std::nullopt});
  ASSERT_TRUE(probe->sink->WaitDone());
  ASSERT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kClosed; }));
  Call after = Lookup(CacheKey{"fragile", "z"});
  EXPECT_TRUE(after.sink->WaitLease()) << after.sink->status();
}

TEST_P(CoordinatorTest, LockApiOutcomesFeedTheBreaker) {
  for (const char* k : {"l1", "l2"}) {
    auto lock = Acquire(CacheKey{"fragile", k}, absl::ZeroDuration());
    ASSERT_TRUE(lock->acquired);
    ASSERT_THAT(Release(CacheKey{"fragile", k}, lock->token, Outcome::kFailure),
                corral::testing::IsOkAndHolds(true));
  }
  EXPECT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kOpen; }));
}

// --- Freshness: stale-while-revalidate, early refresh, negative caching ---

TEST_P(CoordinatorTest, StaleValueIsServedAtOnceWhileOneCallerRefreshes) {
  const CacheKey key{"revalidate", "k"};
  ComputeOnce(key, "old", absl::Milliseconds(200));
  Advance(absl::Milliseconds(300));  // Past the TTL, inside the stale window.
  std::vector<Call> calls;
  for (int i = 0; i < 20; ++i)
    calls.push_back(Lookup(key, absl::Seconds(5), true));
  int refresher = WaitForOneLease(calls);
  ASSERT_GE(refresher, 0);
  const Call& r = calls[refresher];
  EXPECT_EQ(r.sink->lease()->mode, LeaseMode::kRefresh);
  EXPECT_EQ(r.sink->lease()->current_value, "old");
  for (size_t i = 0; i < calls.size(); ++i) {
    if (static_cast<int>(i) == refresher) continue;
    ASSERT_TRUE(calls[i].sink->WaitDone()) << i;
    ASSERT_TRUE(calls[i].sink->value().has_value()) << calls[i].sink->status();
    EXPECT_EQ(calls[i].sink->value()->bytes(), "old");
    EXPECT_EQ(calls[i].sink->value()->source, Source::kStale);
    EXPECT_TRUE(calls[i].sink->value()->stale);
  }
  // During the refresh: stale callers still get the old value at once; a
  // caller that does not accept it waits for the refresh like on a miss.
  Call more_stale = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(more_stale.sink->WaitDone());
  EXPECT_EQ(more_stale.sink->value()->source, Source::kStale);
  Call strict = Lookup(key);
  ASSERT_TRUE(Eventually([&] { return observer_.waiters.load() == 1; }));
  EXPECT_FALSE(strict.sink->Done());
  EXPECT_FALSE(strict.sink->HasLease());

  coordinator_->ComputeFill(r.id, FillRequest{"new", absl::Seconds(60)});
  ASSERT_TRUE(r.sink->WaitDone());
  ASSERT_TRUE(r.sink->filled().has_value());
  EXPECT_TRUE(r.sink->filled()->stored);
  ASSERT_TRUE(strict.sink->WaitDone());
  ASSERT_TRUE(strict.sink->value().has_value()) << strict.sink->status();
  EXPECT_EQ(strict.sink->value()->bytes(), "new");
  EXPECT_EQ(strict.sink->value()->source, Source::kPeerFill);
  Call after = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(after.sink->WaitDone());
  EXPECT_EQ(after.sink->value()->bytes(), "new");
  EXPECT_EQ(after.sink->value()->source, Source::kCache);
  EXPECT_EQ(observer_.stale_refreshes.load(), 1);
  EXPECT_EQ(observer_.stale_served.load(), 20);
  EXPECT_EQ(observer_.duplicates.load(), 0);
}

TEST_P(CoordinatorTest,
       FailedRefreshKeepsServingStaleAndTheNextCallerRefreshes) {
  const CacheKey key{"revalidate", "k"};
  ComputeOnce(key, "old", absl::Milliseconds(200));
  Advance(absl::Milliseconds(300));
  Call first = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(first.sink->WaitLease());
  ASSERT_EQ(first.sink->lease()->mode, LeaseMode::kRefresh);
  coordinator_->ComputeAbandon(first.id, AbandonRequest{"upstream 503", true});
  ASSERT_TRUE(first.sink->WaitDone());
  Drain();
  // No negative caching here: the next stale caller refreshes again.
  Call second = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(second.sink->WaitLease()) << second.sink->status();
  EXPECT_EQ(second.sink->lease()->mode, LeaseMode::kRefresh);
  EXPECT_EQ(second.sink->lease()->current_value, "old");
  Call third = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(third.sink->WaitDone());
  EXPECT_EQ(third.sink->value()->bytes(), "old");
}

TEST_P(CoordinatorTest,
       StaleRefreshIsRefusedByAnOpenBreakerButStaleIsStillServed) {
  const CacheKey key{"fragile", "stale"};
  ComputeOnce(key, "old", absl::Milliseconds(200));
  Advance(absl::Milliseconds(300));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "a"}));
  FAIL_ONE_COMPUTE((CacheKey{"fragile", "b"}));
  ASSERT_TRUE(Eventually(
      [&] { return BreakerStateOf("fragile") == BreakerState::kOpen; }));
  for (int i = 0; i < 3; ++i) {
    Call c = Lookup(key, absl::Seconds(5), true);
    ASSERT_TRUE(c.sink->WaitDone());
    ASSERT_TRUE(c.sink->value().has_value()) << c.sink->status();
    EXPECT_EQ(c.sink->value()->source, Source::kStale);
    EXPECT_FALSE(c.sink->HasLease());
  }
  EXPECT_EQ(observer_.stale_refreshes.load(), 0);
}

TEST_P(CoordinatorTest, EarlyRefreshHandsOneHitARefreshLeaseNearExpiry) {
  const CacheKey key{"eager", "k"};
  // XFetch refreshes a hit early when -delta * beta * ln(draw) reaches past
  // the value's expiry. delta = 200 ms and beta = 100; with the draw fixed
  // at 1e-6 that is 276 s, so every hit of this 10 s value wants a refresh
  // (9.1 s left, 900 ms later), and the test is exact: no draw can make it
  // fail, and on Redis no deadline is near.
  coordinator_->SetEarlyRefreshDraw([] { return 1e-6; });
  ComputeOnce(key, "v1", absl::Seconds(10), absl::Milliseconds(200));
  Advance(absl::Milliseconds(900));
  std::vector<Call> calls;
  for (int i = 0; i < 10; ++i) calls.push_back(Lookup(key));
  int refresher = WaitForOneLease(calls);
  ASSERT_GE(refresher, 0);
  const Call& r = calls[refresher];
  EXPECT_EQ(r.sink->lease()->mode, LeaseMode::kRefresh);
  EXPECT_EQ(r.sink->lease()->current_value, "v1");
  for (size_t i = 0; i < calls.size(); ++i) {
    if (static_cast<int>(i) == refresher) continue;
    ASSERT_TRUE(calls[i].sink->WaitDone()) << i;
    ASSERT_TRUE(calls[i].sink->value().has_value()) << calls[i].sink->status();
    EXPECT_EQ(calls[i].sink->value()->bytes(), "v1");
    EXPECT_EQ(calls[i].sink->value()->source, Source::kCache);
  }
  coordinator_->ComputeFill(r.id, FillRequest{"v2", absl::Seconds(60)});
  ASSERT_TRUE(r.sink->WaitDone());
  ASSERT_TRUE(r.sink->filled().has_value() && r.sink->filled()->stored);
  Call after = Lookup(key);
  ASSERT_TRUE(after.sink->WaitDone());
  EXPECT_EQ(after.sink->value()->bytes(), "v2");
  EXPECT_EQ(observer_.early_refreshes.load(), 1);
}

TEST_P(CoordinatorTest, EarlyRefreshWaitsOutARememberedFailure) {
  // A read of a fresh value does not carry the remembered failure; the
  // lock attempt of an early refresh does, and gives up on the refresh.
  const CacheKey key{"eager", "k"};
  coordinator_->SetEarlyRefreshDraw(
      [] { return 1e-6; });  // Every hit wants a refresh (see above).
  ComputeOnce(key, "v1", absl::Seconds(10), absl::Milliseconds(200));
  Advance(absl::Milliseconds(900));
  Call first = Lookup(key);
  ASSERT_TRUE(first.sink->WaitLease());
  EXPECT_EQ(first.sink->lease()->mode, LeaseMode::kRefresh);
  coordinator_->ComputeAbandon(first.id, AbandonRequest{"upstream 503", true});
  ASSERT_TRUE(first.sink->WaitDone());
  for (int i = 0; i < 5; ++i) {
    Call c = Lookup(key);
    ASSERT_TRUE(c.sink->WaitDone());
    EXPECT_FALSE(c.sink->HasLease()) << i;
    ASSERT_TRUE(c.sink->value().has_value()) << c.sink->status();
    EXPECT_EQ(c.sink->value()->bytes(), "v1");
  }
  EXPECT_EQ(observer_.early_refreshes.load(), 1);
}

TEST_P(CoordinatorTest, AbandonedEarlyRefreshLeavesTheValueAsItWas) {
  const CacheKey key{"eager", "k"};
  coordinator_->SetEarlyRefreshDraw(
      [] { return 1e-6; });  // Every hit wants a refresh.
  ComputeOnce(key, "v1", absl::Seconds(10), absl::Milliseconds(200));
  Advance(absl::Milliseconds(900));
  Call refresher = Lookup(key);
  ASSERT_TRUE(refresher.sink->WaitLease()) << refresher.sink->status();
  ASSERT_EQ(refresher.sink->lease()->mode, LeaseMode::kRefresh);
  coordinator_->ComputeAbandon(refresher.id, AbandonRequest{"not now", false});
  ASSERT_TRUE(refresher.sink->WaitDone());
  auto got = Get(key);
  ASSERT_OK(got);
  ASSERT_TRUE(got->found);
  EXPECT_EQ(got->value.bytes(), "v1");
}

TEST_P(CoordinatorTest, NoEarlyRefreshWithBetaZeroOrUnknownComputeTime) {
  // With the draw that makes every eligible hit refresh (see above): none
  // of these is eligible.
  coordinator_->SetEarlyRefreshDraw([] { return 1e-6; });
  const CacheKey zero{"revalidate", "k"};  // beta 0
  ComputeOnce(zero, "v", absl::Seconds(10), absl::Milliseconds(200));
  const CacheKey unknown{"eager", "set"};  // Set: no compute time
  ASSERT_OK(Set(unknown, "v", absl::Seconds(10)));
  Advance(absl::Milliseconds(900));
  for (const CacheKey& key : {zero, unknown}) {
    for (int i = 0; i < 10; ++i) {
      Call c = Lookup(key);
      ASSERT_TRUE(c.sink->WaitDone());
      EXPECT_FALSE(c.sink->HasLease());
      EXPECT_EQ(c.sink->value()->source, Source::kCache);
    }
  }
  EXPECT_EQ(observer_.early_refreshes.load(), 0);
}

TEST_P(CoordinatorTest, RememberedFailureAnswersWithoutACompute) {
  const CacheKey key{"negative", "k"};
  Call first = Lookup(key);
  ASSERT_TRUE(first.sink->WaitLease());
  coordinator_->ComputeAbandon(first.id, AbandonRequest{"upstream 503", true});
  ASSERT_TRUE(first.sink->WaitDone());
  ASSERT_TRUE(Eventually([&] {
    auto read = ReadStore(key);
    return read.ok() && read->failed_until > clock_->Now();
  })) << "the failure was not remembered";
  for (int i = 0; i < 5; ++i) {
    Call c = Lookup(key);
    ASSERT_TRUE(c.sink->WaitDone());
    EXPECT_FALSE(c.sink->HasLease());
    EXPECT_THAT(c.sink->status(), StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(ReasonOf(c.sink->status()), "peer-compute-failed");
    EXPECT_GT(RetryAfterOf(c.sink->status()).value_or(absl::ZeroDuration()),
              absl::ZeroDuration());
  }
  EXPECT_EQ(observer_.negative_hits.load(), 5);
  // It expires: the next caller computes.
  Advance(absl::Milliseconds(1100));
  Call later = Lookup(key);
  EXPECT_TRUE(later.sink->WaitLease()) << later.sink->status();
}

TEST_P(CoordinatorTest, RememberedFailureStillServesStaleAndStartsNoRefresh) {
  const CacheKey key{"negative", "k"};
  ComputeOnce(key, "old", absl::Milliseconds(200));
  Advance(absl::Milliseconds(300));
  Call refresher = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(refresher.sink->WaitLease());
  coordinator_->ComputeAbandon(refresher.id,
                               AbandonRequest{"upstream 503", true});
  ASSERT_TRUE(refresher.sink->WaitDone());
  ASSERT_TRUE(Eventually([&] {
    auto read = ReadStore(key);
    return read.ok() && read->failed_until > clock_->Now();
  })) << "the failure was not remembered";
  Call stale = Lookup(key, absl::Seconds(5), true);
  ASSERT_TRUE(stale.sink->WaitDone());
  EXPECT_FALSE(stale.sink->HasLease());
  ASSERT_TRUE(stale.sink->value().has_value()) << stale.sink->status();
  EXPECT_EQ(stale.sink->value()->bytes(), "old");
  Call strict = Lookup(key);
  ASSERT_TRUE(strict.sink->WaitDone());
  EXPECT_EQ(ReasonOf(strict.sink->status()), "peer-compute-failed");
  // A value stored by other means ends the remembered failure.
  ASSERT_OK(Set(key, "fixed", absl::Seconds(60)));
  Call fixed = Lookup(key);
  ASSERT_TRUE(fixed.sink->WaitDone());
  EXPECT_EQ(fixed.sink->value()->bytes(), "fixed");
}

INSTANTIATE_TEST_SUITE_P(Stores, CoordinatorTest,
                         ::testing::Values(StoreKind::kEmbedded,
                                           StoreKind::kRedis),
                         [](const auto& info) {
                           return info.param == StoreKind::kEmbedded
                                      ? "Embedded"
                                      : "Redis";
                         });

}  // namespace
}  // namespace corral
