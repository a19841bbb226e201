// The Redis store behind Sentinel: a real master, replica and three
// sentinels (tests/support/sentinel_group.h). The store finds the master
// through the sentinels, and follows a failover to the promoted replica
// with its locks, values and subscriptions.
#include <iostream>
#include <memory>
#include <string>

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
#include "tests/server/store/store_test_harness.h"
#include "tests/support/free_port.h"
#include "tests/support/sentinel_group.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::IsOkAndHolds;
using ::corral::testing::PickFreePort;
using ::corral::testing::RecordingListener;
using ::corral::testing::SentinelGroup;
using ::corral::testing::StoreRunner;
using ::testing::Eq;
using ::testing::Field;
using ::testing::Optional;

class RedisSentinelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto group = SentinelGroup::Start();
    ASSERT_TRUE(group.ok()) << group.status();
    group_ = *std::move(group);
    loop_.Start();
  }

  void TearDown() override {
    if (store_) store_->Shutdown();
    loop_.Stop();
    runner_.reset();
    store_.reset();
  }

  void ConnectStore(const std::string& uri) {
    auto options = ParseRedisUri(uri);
    ASSERT_TRUE(options.ok()) << options.status();
    options->connect_timeout = absl::Milliseconds(500);
    options->command_timeout = absl::Milliseconds(1000);
    options->ping_interval = absl::Milliseconds(100);
    options->reconnect_backoff_min = absl::Milliseconds(20);
    options->reconnect_backoff_max = absl::Milliseconds(500);
    options->read_cache.max_bytes = 1 << 20;
    store_ = std::make_unique<RedisStore>(loop_, *std::move(options));
    runner_ = std::make_unique<StoreRunner>(loop_, *store_);
    runner_->SetListener(&listener_);
    store_->Start();
    ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(10)));
    ASSERT_TRUE(listener_.WaitForAvailability(true));
  }

  const CacheKey key_{"ns", "key"};
  const CacheKey lock_key_{"ns", "lock"};
  EventLoop loop_;
  std::unique_ptr<SentinelGroup> group_;
  std::unique_ptr<RedisStore> store_;
  std::unique_ptr<StoreRunner> runner_;
  RecordingListener listener_;
};

TEST_F(RedisSentinelTest, FindsTheMasterAskingTheSentinelsInTurn) {
  // The first sentinel listed is not there: the next ones are asked.
  const std::string uri = absl::StrReplaceAll(
      group_->uri(), {{"redis-sentinel://", absl::StrCat("redis-sentinel://127.0.0.1:",
                                                         PickFreePort(), ",")}});
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
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("does not monitor a master named corral-nope"));
}

TEST_F(RedisSentinelTest, FollowsAKilledMasterToThePromotedReplica) {
  ConnectStore(group_->uri());
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, "before", absl::Seconds(60)), IsOkAndHolds(true));
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled));
  auto held = runner_->TryLock(lock_key_, "holder", absl::Seconds(60));
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(held->acquired);
  // Read once through the read cache, so that there is something to empty.
  ASSERT_THAT(runner_->Get(key_), IsOkAndHolds(Optional(Field(&StoredValue::value, "before"))));
  // Without WAIT (not used here) only replication that finished survives.
  ASSERT_OK(group_->WaitForReplication(1, absl::Seconds(5)));

  const absl::Time killed_at = absl::Now();
  group_->node(0).Kill();
  ASSERT_TRUE(listener_.WaitForAvailability(false));
  ASSERT_TRUE(listener_.WaitForAvailability(true, absl::Seconds(30)));
  const absl::Duration back_after = absl::Now() - killed_at;
  ASSERT_OK(group_->WaitForMaster(1, absl::Seconds(1)));
  std::cout << "[ measure ] master SIGKILLed -> store up on the promoted replica: "
            << absl::FormatDuration(back_after) << "\n";
  EXPECT_LT(back_after, absl::Seconds(20));

  // The watched key is subscribed again (and re-read by its owner).
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Optional(Field(&StoredValue::value, "before"))));
  // The lock survived: another holder is refused, ours releases it.
  auto other = runner_->TryLock(lock_key_, "intruder", absl::Seconds(60));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->acquired);
  EXPECT_THAT(runner_->Release(lock_key_, "holder"), IsOkAndHolds(true));
  auto next = runner_->TryLock(lock_key_, "next", absl::Seconds(60));
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->acquired);
  EXPECT_GT(next->fencing_token, held->fencing_token);
  // Writes land on the new master and wake the watchers.
  ASSERT_THAT(runner_->Put(key_, "after", absl::Seconds(60)), IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->value, "after");
  EXPECT_THAT(group_->node(1).Command({"GET", RedisKeysFor(lock_key_).lock}),
              IsOkAndHolds(Eq("next")));
}

}  // namespace
}  // namespace corral
