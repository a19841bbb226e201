// The Redis store behind Sentinel: a real master, replica and three
// sentinels (tests/support/sentinel_group.h). The store finds the master
// through the sentinels, and follows a failover to the promoted replica
// with its locks, values and subscriptions.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/core/event_loop.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_store.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/redis_store_fixture.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/free_port.h"
#include "tests/support/sanitizers.h"
#include "tests/support/sentinel_group.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::ClosedPort;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::RecordingListener;
using ::corral::testing::SentinelGroup;
using ::corral::testing::StoreRunner;
using ::testing::Eq;
using ::testing::Field;
using ::testing::Optional;

class RedisSentinelTest
    : public ::corral::testing::RedisStoreFixture<RedisStore> {
 protected:
  void SetUp() override {
    auto group = SentinelGroup::Start();
    ASSERT_TRUE(group.ok()) << group.status();
    group_ = *std::move(group);
    RedisStoreFixture::SetUp();
  }

  void ConnectStore(const std::string& uri) {
    auto options = ParseRedisUri(uri);
    ASSERT_TRUE(options.ok()) << options.status();
    UseFailoverTimeouts(*options);
    options->on_replica_ack = [this](absl::Duration, bool acked) {
      ++(acked ? acks_ : ack_failures_);
    };
    options->command_timeout = absl::Milliseconds(2000);
    options->ping_interval = absl::Milliseconds(100);
    ConnectStoreWith(*std::move(options));
  }

  const CacheKey key_{"ns", "key"};
  const CacheKey lock_key_{"ns", "lock"};
  std::unique_ptr<SentinelGroup> group_;
  std::atomic<int> acks_{0};
  std::atomic<int> ack_failures_{0};
};

TEST_F(RedisSentinelTest, FindsTheMasterAskingTheSentinelsInTurn) {
  // The first sentinel listed is not there: the next ones are asked.
  ClosedPort absent;
  const std::string uri = absl::StrReplaceAll(
      group_->uri(),
      {{"redis-sentinel://",
        absl::StrCat("redis-sentinel://127.0.0.1:", absent.port(), ",")}});
  ConnectStore(uri);
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(30)), IsOkAndHolds(true));
  // Written on the master the sentinels name (node 0).
  EXPECT_THAT(group_->node(0).Command({"EXISTS", RedisKeysFor(key_).value}),
              IsOkAndHolds(Eq("1")));
}

TEST_F(RedisSentinelTest, UnknownMasterNameIsAClearError) {
  auto options = ParseRedisUri(absl::StrCat(group_->uri(), "-nope"));
  ASSERT_TRUE(options.ok());
  options->connect_timeout = absl::Milliseconds(500);
  store_ = std::make_unique<RedisStore>(loop_, *std::move(options));
  store_->Start();
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(1));
  EXPECT_EQ(ReasonOf(status), kReasonStoreUnavailable) << status;
  EXPECT_THAT(
      std::string(status.message()),
      ::testing::HasSubstr("does not monitor a master named corral-nope"));
}

TEST_F(RedisSentinelTest, FollowsAKilledMasterToThePromotedReplica) {
  ConnectStore(group_->uri());
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, "before", absl::Seconds(60)),
              IsOkAndHolds(true));
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled));
  auto held = runner_->TryLock(lock_key_, "holder", absl::Seconds(60));
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(held->acquired);
  // Read once through the read cache, so that there is something to empty.
  ASSERT_THAT(runner_->Get(key_),
              IsOkAndHolds(Optional(Field(&StoredValue::value, "before"))));
  // Without WAIT (not used here) only replication that finished survives.
  ASSERT_OK(group_->WaitForReplication(1, absl::Seconds(5)));

  const absl::Time killed_at = absl::Now();
  group_->node(0).Kill();
  ASSERT_TRUE(listener_.WaitForAvailability(false));
  ASSERT_TRUE(listener_.WaitForAvailability(true, absl::Seconds(30)));
  const absl::Duration back_after = absl::Now() - killed_at;
  ASSERT_OK(group_->WaitForMaster(1, absl::Seconds(1)));
  std::cout
      << "[ measure ] master SIGKILLed -> store up on the promoted replica: "
      << absl::FormatDuration(back_after) << "\n";
  EXPECT_LT(back_after, absl::Seconds(20));

  // The watched key is subscribed again (and re-read by its owner).
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  EXPECT_THAT(runner_->Get(key_),
              IsOkAndHolds(Optional(Field(&StoredValue::value, "before"))));
  // The lock survived: another holder is refused, ours releases it.
  auto other = runner_->TryLock(lock_key_, "intruder", absl::Seconds(60));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->acquired);
  EXPECT_THAT(runner_->Release(lock_key_, "holder"), IsOkAndHolds(true));
  // Grants wait for a replica (min_replica_acks is 1 for sentinel URIs): the
  // old master comes back as one.
  ASSERT_OK(group_->RestartAsReplica(0, 1, absl::Seconds(10)));
  auto next = runner_->TryLock(lock_key_, "next", absl::Seconds(60));
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->acquired);
  EXPECT_GT(next->fencing_token, held->fencing_token);
  // Writes land on the new master and wake the watchers.
  ASSERT_THAT(runner_->Put(key_, "after", absl::Seconds(60)),
              IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->value, "after");
  EXPECT_THAT(group_->node(1).Command({"GET", RedisKeysFor(lock_key_).lock}),
              IsOkAndHolds(Eq("next")));
}

TEST_F(RedisSentinelTest, GrantsWaitForAReplicaAndAreUndoneWithoutOne) {
  ConnectStore(group_->uri());
  const std::string lock_name = RedisKeysFor(lock_key_).lock;
  auto held = runner_->TryLock(lock_key_, "holder", absl::Seconds(60));
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(held->acquired);
  // Answered only after the replica held it: no polling needed.
  EXPECT_THAT(group_->node(1).Command({"GET", lock_name}),
              IsOkAndHolds(Eq("holder")));
  EXPECT_GE(acks_.load(), 1);
  // A fenced write (by the holder of the value key's lock) is acknowledged
  // the same way.
  auto filler = runner_->TryLock(key_, "filler", absl::Seconds(60));
  ASSERT_TRUE(filler.ok() && filler->acquired) << filler.status();
  PutOptions fenced;
  fenced.ttl = absl::Seconds(60);
  fenced.lock_token = "filler";
  fenced.release_lock = true;
  ASSERT_THAT(runner_->Put(key_, "fenced", fenced), IsOkAndHolds(true));
  EXPECT_THAT(group_->node(1).Command({"EXISTS", RedisKeysFor(key_).value}),
              IsOkAndHolds(Eq("1")));
  EXPECT_EQ(ack_failures_.load(), 0);
  ASSERT_THAT(runner_->Release(lock_key_, "holder"), IsOkAndHolds(true));

  // The replica hangs: a lock can no longer be granted. It is undone on the
  // master and answered store-unavailable after the ack timeout.
  group_->node(1).Pause();
  const absl::Time start = absl::Now();
  auto refused = runner_->TryLock(lock_key_, "lonely", absl::Seconds(60));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(ReasonOf(refused.status()), kReasonStoreUnavailable)
      << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("lock not granted"));
  EXPECT_GE(took, absl::Milliseconds(1000));
  EXPECT_GE(ack_failures_.load(), 1);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline &&
         group_->node(0).Command({"EXISTS", lock_name}).value_or("?") != "0") {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(group_->node(0).Command({"EXISTS", lock_name}),
              IsOkAndHolds(Eq("0")))
      << "the unacknowledged grant was not undone";

  // Hits do not queue behind a WAIT: a Get sent after a grant that waits is
  // answered before it.
  std::atomic<bool> lock_answered{false};
  runner_->OnLoop([&] {
    store_->TryLock(lock_key_, "waiting", absl::Seconds(60),
                    [&](absl::StatusOr<LockAttempt>) { lock_answered = true; });
  });
  // Once the master holds the WAIT (a blocked client), a Get is sent.
  const absl::Time blocked_deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < blocked_deadline &&
         !absl::StrContains(
             group_->node(0).Command({"INFO", "clients"}).value_or(""),
             "blocked_clients:1")) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_FALSE(lock_answered.load())
      << "the grant's WAIT ended too soon for this test";
  const absl::Time get_start = absl::Now();
  ASSERT_TRUE(runner_->Get(key_).ok());
  if (!corral::testing::kSanitized) {
    EXPECT_LT(absl::Now() - get_start, absl::Milliseconds(500));
  }
  EXPECT_FALSE(lock_answered.load())
      << "the grant's WAIT should still be pending";
  const absl::Time wait_deadline = absl::Now() + absl::Seconds(5);
  while (!lock_answered && absl::Now() < wait_deadline)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(lock_answered.load());

  // The replica is back: grants are handed out again.
  group_->node(1).Resume();
  auto again = runner_->TryLock(lock_key_, "again", absl::Seconds(60));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->acquired);
  EXPECT_GT(again->fencing_token, held->fencing_token);
}

// The replica lags when the master dies: what the master granted while the
// replica could not acknowledge was never handed out, what was handed out
// is still held, and tokens after the failover exceed every token before.
TEST_F(RedisSentinelTest, ALaggingReplicaLosesNoGrantAndNoToken) {
  ConnectStore(group_->uri());
  const CacheKey held_key{"ns", "held"};
  const CacheKey late_key{"ns", "late"};
  auto held = runner_->TryLock(held_key, "holder", absl::Seconds(60));
  ASSERT_TRUE(held.ok() && held->acquired) << held.status();
  // Tokens handed out before the failover, the largest last.
  uint64_t largest_before = held->fencing_token;
  for (int i = 0; i < 5; ++i) {
    const CacheKey key{"ns", absl::StrCat("cycle-", i)};
    auto cycle = runner_->TryLock(key, "c", absl::Seconds(60));
    ASSERT_TRUE(cycle.ok() && cycle->acquired) << cycle.status();
    largest_before = std::max(largest_before, cycle->fencing_token);
    ASSERT_THAT(runner_->Release(key, "c"), IsOkAndHolds(true));
  }

  // The replica stops reading; the master runs the script, but WAIT cannot
  // be satisfied: the caller is told no.
  group_->node(1).Pause();
  auto late = runner_->TryLock(late_key, "late", absl::Seconds(60));
  EXPECT_EQ(ReasonOf(late.status()), kReasonStoreUnavailable) << late.status();
  const bool late_granted = late.ok() && late->acquired;
  EXPECT_FALSE(late_granted);

  group_->node(0).Kill();
  group_->node(1).Resume();
  ASSERT_OK(group_->WaitForMaster(1, absl::Seconds(30)));
  ASSERT_TRUE(listener_.WaitForAvailability(true, absl::Seconds(30)));
  ASSERT_OK(group_->RestartAsReplica(0, 1, absl::Seconds(10)));

  // What was handed out is still held.
  auto intruder = runner_->TryLock(held_key, "intruder", absl::Seconds(60));
  ASSERT_TRUE(intruder.ok()) << intruder.status();
  EXPECT_FALSE(intruder->acquired) << "a granted lock was lost in the failover";
  // Every new token exceeds every token handed out before.
  for (const CacheKey& key :
       {late_key, CacheKey{"ns", "cycle-4"}, CacheKey{"ns", "fresh"}}) {
    SCOPED_TRACE(key.key);
    // The late lock may have reached the replica (it was in its socket):
    // then it is held by nobody who was told so, and expires with its lease.
    auto after = runner_->TryLock(key, "after", absl::Seconds(60));
    ASSERT_TRUE(after.ok()) << after.status();
    if (!after->acquired) {
      EXPECT_EQ(key, late_key) << "only the refused late lock may linger";
      continue;
    }
    EXPECT_GT(after->fencing_token, largest_before);
    ASSERT_THAT(runner_->Release(key, "after"), IsOkAndHolds(true));
  }
  EXPECT_THAT(runner_->Release(held_key, "holder"), IsOkAndHolds(true));
}

}  // namespace
}  // namespace corral
