// The Redis store on a real Redis Cluster (tests/support/redis_cluster.h:
// three masters, three replicas on loopback): slots agree with the
// server's, every operation stays in one slot (a CROSSSLOT error fails the
// test), wake-ups go to one shard, lost scripts are reloaded per node, and
// the store follows slot migrations (MOVED/ASK, dropped shard channels) and
// a failover.
#include "tests/support/redis_cluster.h"

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/core/event_loop.h"
#include "server/store/redis_cluster_slots.h"
#include "server/store/redis_cluster_store.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/redis_store_fixture.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::IsOkAndHolds;
using ::corral::testing::RecordingListener;
using ::corral::testing::RedisCluster;
using ::corral::testing::StoreRunner;

// The sum over live nodes of a CLUSTER INFO counter.
int64_t ClusterInfoSum(RedisCluster& cluster, absl::string_view field) {
  int64_t sum = 0;
  for (int i = 0; i < cluster.size(); ++i) {
    if (!cluster.node(i).running()) continue;
    auto info = cluster.node(i).Command({"CLUSTER", "INFO"});
    if (!info.ok()) continue;
    for (absl::string_view line :
         absl::StrSplit(*info, absl::ByAnyChar("\r\n"))) {
      int64_t v = 0;
      if (absl::ConsumePrefix(&line, field) &&
          absl::ConsumePrefix(&line, ":") && absl::SimpleAtoi(line, &v))
        sum += v;
    }
  }
  return sum;
}

class RedisClusterTest
    : public ::corral::testing::RedisStoreFixture<RedisClusterStore> {
 protected:
  void SetUp() override {
    auto cluster = RedisCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    RedisStoreFixture::SetUp();
  }

  void ConnectStore(int min_replica_acks = 1,
                    absl::Duration ping_interval = absl::Milliseconds(200)) {
    auto options = ParseRedisUri(cluster_->uri());
    ASSERT_TRUE(options.ok()) << options.status();
    UseFailoverTimeouts(*options);
    options->min_replica_acks = min_replica_acks;
    options->command_timeout = absl::Milliseconds(3000);
    options->ping_interval = ping_interval;
    ConnectStoreWith(*std::move(options));
  }

  static CacheKey Key(int i) { return CacheKey{"ns", absl::StrCat("key-", i)}; }

  // Every operation on `key`, checked: none may fail (a CROSSSLOT error
  // would).
  void ExerciseKey(const CacheKey& key, const std::string& token) {
    auto lock = runner_->TryLockAndRead(key, token, absl::Seconds(10));
    ASSERT_TRUE(lock.ok()) << lock.status();
    ASSERT_TRUE(lock->acquired);
    ASSERT_THAT(runner_->Renew(key, token, absl::Seconds(10)),
                IsOkAndHolds(::testing::Optional(::testing::_)));
    PutOptions fenced;
    fenced.ttl = absl::Seconds(60);
    fenced.lock_token = token;
    fenced.release_lock = false;
    ASSERT_THAT(runner_->Put(key, "v-" + key.key, fenced), IsOkAndHolds(true));
    ASSERT_THAT(runner_->Release(key, token), IsOkAndHolds(true));
    ASSERT_TRUE(runner_->RememberFailure(key, absl::Seconds(1)).ok());
    auto read = runner_->Read(key);
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_TRUE(read->value.has_value());
    EXPECT_EQ(read->value->value, "v-" + key.key);
  }

  const CacheKey key_{"ns", "key"};
  std::unique_ptr<RedisCluster> cluster_;
};

TEST_F(RedisClusterTest, EveryOperationStaysInOneSlotOnEveryMaster) {
  ConnectStore();
  std::set<int> owners;
  for (int i = 0; i < 100; ++i) {
    SCOPED_TRACE(i);
    const CacheKey key = Key(i);
    const RedisItemKeys keys = RedisKeysFor(key);
    if (i < 10) {
      // Our slot is the server's.
      auto slot = cluster_->node(0).Command({"CLUSTER", "KEYSLOT", keys.value});
      ASSERT_TRUE(slot.ok());
      EXPECT_EQ(*slot, absl::StrCat(RedisHashSlot(keys.value)));
    }
    owners.insert(cluster_->OwnerOfKey(keys.value));
    ExerciseKey(key, absl::StrCat("token-", i));
  }
  // 100 keys spread over all three masters.
  EXPECT_EQ(owners.size(), 3u);
  EXPECT_EQ(owners.count(-1), 0u);
  EXPECT_TRUE(runner_->Ping().ok());
  auto loaded = runner_->Call<BreakerRecord>(
      [](Store& s, auto done) { s.LoadBreaker("ns", std::move(done)); });
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto stored = runner_->Call<BreakerCas>([](Store& s, auto done) {
    s.StoreBreaker("ns", 0, "open", std::move(done));
  });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(stored->stored);
}

// A Redis error reply to a well-formed command (WRONGTYPE: something else
// wrote into corral's key) is INTERNAL on a cluster as on one node, not an
// outage (docs/ARCHITECTURE.md section 6); the store stays up.
TEST_F(RedisClusterTest, AScriptErrorIsInternalNotAnOutage) {
  ConnectStore();
  const RedisItemKeys keys = RedisKeysFor(key_);
  const int owner = cluster_->OwnerOfKey(keys.value);
  ASSERT_GE(owner, 0);
  ASSERT_THAT(cluster_->node(owner).Command({"SET", keys.value, "not a hash"}),
              IsOkAndHolds(::testing::Eq("OK")));

  auto got = runner_->Get(key_);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal) << got.status();
  EXPECT_NE(ReasonOf(got.status()), kReasonStoreUnavailable);
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::HasSubstr("WRONGTYPE"));
  auto put = runner_->Put(key_, "v", absl::Seconds(10));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInternal) << put.status();

  EXPECT_TRUE(store_->IsUp());
  EXPECT_THAT(runner_->Put(Key(1), "v", absl::Seconds(10)), IsOkAndHolds(true));
  ASSERT_THAT(cluster_->node(owner).Command({"DEL", keys.value}),
              IsOkAndHolds(::testing::Eq("1")));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(::testing::Eq(std::nullopt)));
}

// Issue 18's scripts on a cluster: a hedge claim lives under its key's tag,
// a namespace's budget under {ns}; each runs on its one master, no CROSSSLOT.
TEST_F(RedisClusterTest, HedgeClaimsAndBudgetsRunInOneSlot) {
  ConnectStore();
  std::set<int> owners;
  for (int i = 0; i < 30; ++i) {
    SCOPED_TRACE(i);
    const CacheKey key = Key(i);
    owners.insert(cluster_->OwnerOfKey(RedisKeysFor(key).value));
    const std::string token = absl::StrCat("holder-", i);
    auto lock = runner_->TryLock(key, token, absl::Seconds(10));
    ASSERT_TRUE(lock.ok()) << lock.status();
    ASSERT_TRUE(lock->acquired);
    auto claim = runner_->Call<HedgeClaim>([&](Store& s, auto done) {
      s.ClaimHedge(key, 1, absl::Seconds(10), std::move(done));
    });
    ASSERT_TRUE(claim.ok()) << claim.status();
    EXPECT_EQ(claim->result, HedgeClaim::Result::kGranted);
    auto second = runner_->Call<HedgeClaim>([&](Store& s, auto done) {
      s.ClaimHedge(key, 1, absl::Seconds(10), std::move(done));
    });
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->result, HedgeClaim::Result::kRefused);
  }
  EXPECT_EQ(owners.size(), 3u);

  BudgetLimits limits;
  limits.max_in_flight = 2;
  for (int n = 0; n < 10; ++n) {
    const std::string ns = absl::StrCat("budget", n);
    SCOPED_TRACE(ns);
    for (int slot = 0; slot < 3; ++slot) {
      auto charged = runner_->Call<BudgetCharge>([&](Store& s, auto done) {
        s.ChargeBudget(ns, absl::StrCat("slot-", slot), limits,
                       absl::Seconds(10), std::move(done));
      });
      ASSERT_TRUE(charged.ok()) << charged.status();
      EXPECT_EQ(charged->admitted, slot < 2);
    }
    auto renewed = runner_->Call<bool>([&](Store& s, auto done) {
      s.RenewBudget(ns, "slot-0", absl::Seconds(10), std::move(done));
    });
    EXPECT_THAT(renewed, IsOkAndHolds(true));
    auto returned = runner_->Call<bool>([&](Store& s, auto done) {
      s.ReturnBudget(ns, "slot-0", std::move(done));
    });
    EXPECT_THAT(returned, IsOkAndHolds(true));
  }
}

TEST_F(RedisClusterTest, AWakeUpIsPublishedToOneShardOnly) {
  ConnectStore();
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  const int64_t shard_before =
      ClusterInfoSum(*cluster_, "cluster_stats_messages_publishshard_sent");
  const int64_t broadcast_before =
      ClusterInfoSum(*cluster_, "cluster_stats_messages_publish_sent");
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(60)), IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->value, "v");
  // The owner tells its one replica over the bus; no node hears a
  // broadcast.
  EXPECT_EQ(ClusterInfoSum(*cluster_, "cluster_stats_messages_publish_sent"),
            broadcast_before);
  EXPECT_EQ(
      ClusterInfoSum(*cluster_, "cluster_stats_messages_publishshard_sent"),
      shard_before + 1);

  // A release wakes the key's waiters too.
  ASSERT_TRUE(runner_->TryLock(key_, "t", absl::Seconds(5))->acquired);
  ASSERT_THAT(runner_->Release(key_, "t"), IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kReleased));
  runner_->Unwatch(key_);
  ASSERT_THAT(runner_->Put(key_, "w", absl::Seconds(60)), IsOkAndHolds(true));
  EXPECT_FALSE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled,
                                   absl::Milliseconds(300)));
}

TEST_F(RedisClusterTest, ReloadsScriptsPerNodeAfterAFlush) {
  ConnectStore(/*min_replica_acks=*/0);
  for (int i : cluster_->Masters()) {
    ASSERT_TRUE(cluster_->node(i).Command({"SCRIPT", "FLUSH"}).ok());
  }
  for (int i = 0; i < 30; ++i) {
    SCOPED_TRACE(i);
    ExerciseKey(Key(i), "t");
  }
}

TEST_F(RedisClusterTest, FollowsSlotsThatMoveUnderLoad) {
  ConnectStore();
  std::vector<int> masters = cluster_->Masters();
  ASSERT_EQ(masters.size(), 3u);
  // Watched keys on the master that gives slots away.
  std::vector<CacheKey> watched;
  for (int i = 0; watched.size() < 20 && i < 1000; ++i) {
    if (cluster_->OwnerOfKey(RedisKeysFor(Key(i)).value) == masters[0]) {
      watched.push_back(Key(i));
      runner_->Watch(Key(i));
    }
  }
  for (const CacheKey& key : watched)
    ASSERT_TRUE(listener_.TakeEvent(key, KeyEvent::Kind::kWatching));

  auto reshard = cluster_->StartReshard(masters[0], masters[1], 2000);
  ASSERT_TRUE(reshard.ok()) << reshard.status();
  // Load while the slots move: every operation must succeed.
  int rounds = 0;
  while ((*reshard)->Running()) {
    for (int i = 0; i < 40; ++i) {
      SCOPED_TRACE(absl::StrCat("round ", rounds, " key ", i));
      ExerciseKey(Key(i), absl::StrCat("t", rounds));
      if (HasFatalFailure()) return;
    }
    ++rounds;
  }
  auto exit = (*reshard)->Wait(absl::Seconds(5));
  ASSERT_TRUE(exit.ok() && exit->success()) << (*reshard)->DescribeOutput();
  EXPECT_GT(rounds, 0);

  // Channels of moved slots were dropped by the server and subscribed again
  // where the slots went: each such key got kWatching again, and a fill
  // reaches it.
  int moved = 0;
  for (const CacheKey& key : watched) {
    if (cluster_->OwnerOfKey(RedisKeysFor(key).value) == masters[0]) continue;
    ++moved;
    ASSERT_TRUE(
        listener_.TakeEvent(key, KeyEvent::Kind::kWatching, absl::Seconds(10)))
        << key.key;
    ASSERT_THAT(runner_->Put(key, "after", absl::Seconds(60)),
                IsOkAndHolds(true));
    auto filled =
        listener_.TakeEvent(key, KeyEvent::Kind::kFilled, absl::Seconds(5));
    ASSERT_TRUE(filled.has_value()) << key.key;
  }
  EXPECT_GT(moved, 0);
}

// Polls `condition` (on the test thread) until it holds or `timeout`.
bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST_F(RedisClusterTest, TheReadCacheFollowsWritesOnEveryMaster) {
  ConnectStore();
  ASSERT_NE(store_->read_cache(), nullptr);
  std::map<int, CacheKey> per_master;  // One key on each master.
  for (int i = 0; per_master.size() < 3 && i < 100; ++i) {
    per_master.emplace(cluster_->OwnerOfKey(RedisKeysFor(Key(i)).value),
                       Key(i));
  }
  ASSERT_EQ(per_master.size(), 3u);
  for (const auto& [master, key] : per_master) {
    SCOPED_TRACE(key.key);
    ASSERT_THAT(runner_->Put(key, "one", absl::Seconds(60)),
                IsOkAndHolds(true));
    // Cached once every master tracks this store's reads.
    ASSERT_TRUE(Eventually([&] {
      return runner_->Get(key).ok() &&
             store_->read_cache()->Find(key) != nullptr;
    }));
    EXPECT_EQ(*store_->read_cache()->Find(key)->bytes, "one");
    // Another writer, straight to the master: the invalidation reaches us.
    ASSERT_TRUE(cluster_->node(master)
                    .Command({"HSET", RedisKeysFor(key).value, "v", "two"})
                    .ok());
    EXPECT_TRUE(
        Eventually([&] { return store_->read_cache()->Find(key) == nullptr; }));
    auto read = runner_->Get(key);
    ASSERT_TRUE(read.ok() && read->has_value());
    EXPECT_EQ((*read)->value, "two");
  }
  // A master that goes away takes coherence (and every entry) with it.
  const CacheKey& key = per_master.begin()->second;
  ASSERT_TRUE(Eventually([&] {
    return runner_->Get(key).ok() && store_->read_cache()->Find(key) != nullptr;
  }));
  cluster_->node(per_master.begin()->first).Kill();
  EXPECT_TRUE(
      Eventually([&] { return store_->read_cache()->Find(key) == nullptr; }));
}

// A master added to the running cluster and given slots is found: the
// store follows -MOVED to a node it never heard of, dials it, and its keys
// (and their wake-ups) are served there.
TEST_F(RedisClusterTest, FindsAMasterThatJoins) {
  // The new master has no replica to acknowledge grants.
  ConnectStore(/*min_replica_acks=*/0);
  std::vector<int> masters = cluster_->Masters();
  ASSERT_EQ(masters.size(), 3u);
  auto added = cluster_->AddMaster(absl::Seconds(30));
  ASSERT_TRUE(added.ok()) << added.status();
  auto reshard = cluster_->StartReshard(masters[0], *added, 1000);
  ASSERT_TRUE(reshard.ok()) << reshard.status();
  auto exit = (*reshard)->Wait(absl::Seconds(60));
  ASSERT_TRUE(exit.ok() && exit->success()) << (*reshard)->DescribeOutput();
  ASSERT_OK(cluster_->WaitUntilOk(absl::Seconds(30)));

  std::vector<CacheKey> on_new;
  for (int i = 0; on_new.size() < 5 && i < 2000; ++i) {
    if (cluster_->OwnerOfKey(RedisKeysFor(Key(i)).value) == *added)
      on_new.push_back(Key(i));
  }
  ASSERT_EQ(on_new.size(), 5u);
  for (const CacheKey& key : on_new) {
    SCOPED_TRACE(key.key);
    ExerciseKey(key, "t");
    runner_->Watch(key);
    ASSERT_TRUE(listener_.TakeEvent(key, KeyEvent::Kind::kWatching));
    ASSERT_THAT(runner_->Put(key, "there", absl::Seconds(60)),
                IsOkAndHolds(true));
    EXPECT_TRUE(listener_.TakeEvent(key, KeyEvent::Kind::kFilled));
  }
  auto size = cluster_->node(*added).Command({"DBSIZE"});
  ASSERT_TRUE(size.ok());
  EXPECT_NE(*size, "0");
}

// One slot moved by hand, step by step, under a store whose map is stale
// (no periodic refresh within the test): a key missing from the migrating
// node is asked of the importing one (-ASK), and once the slot is moved an
// existing key's node answers -MOVED.
TEST_F(RedisClusterTest, FollowsAskAndMovedRedirections) {
  ConnectStore(/*min_replica_acks=*/1,
               /*ping_interval=*/absl::Seconds(30));
  const CacheKey existing = Key(0);
  const int slot = RedisHashSlot(RedisKeysFor(existing).value);
  CacheKey fresh;
  for (int i = 1;; ++i) {
    fresh = CacheKey{"ns", absl::StrCat("fresh-", i)};
    if (RedisHashSlot(RedisKeysFor(fresh).value) == slot) break;
  }
  ExerciseKey(existing, "t0");
  const int from = cluster_->OwnerOfKey(RedisKeysFor(existing).value);
  int to = -1;
  for (int m : cluster_->Masters())
    if (m != from) to = m;
  ASSERT_GE(from, 0);
  ASSERT_GE(to, 0);
  auto from_id = cluster_->NodeId(from);
  auto to_id = cluster_->NodeId(to);
  ASSERT_TRUE(from_id.ok() && to_id.ok());
  const std::string slot_text = absl::StrCat(slot);
  ASSERT_OK(
      cluster_->node(to)
          .Command({"CLUSTER", "SETSLOT", slot_text, "IMPORTING", *from_id})
          .status());
  ASSERT_OK(cluster_->node(from)
                .Command({"CLUSTER", "SETSLOT", slot_text, "MIGRATING", *to_id})
                .status());

  // Not on the migrating node: -ASK, answered by the importing one. (A
  // script of several keys none of which exists yet would get -TRYAGAIN
  // there until the slot is moved: Redis refuses multi-key commands on
  // half-migrated slots.)
  auto failed = runner_->RememberFailure(fresh, absl::Seconds(60));
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_GE(store_->counters().ask.load(), 1u);
  auto on_target =
      cluster_->node(to).Command({"CLUSTER", "COUNTKEYSINSLOT", slot_text});
  ASSERT_TRUE(on_target.ok());
  EXPECT_NE(*on_target, "0");
  // (Scripts over the existing item get -TRYAGAIN now: some of its keys,
  // not all, are on the migrating node. They are retried until
  // command_timeout; redis-cli moves a slot in milliseconds.)

  // Move the rest and hand the slot over.
  auto keys = cluster_->node(from).Command(
      {"CLUSTER", "GETKEYSINSLOT", slot_text, "100"});
  ASSERT_TRUE(keys.ok());
  std::vector<std::string> migrate = {
      "MIGRATE", "127.0.0.1", absl::StrCat(cluster_->node(to).port()), "", "0",
      "5000",    "KEYS"};
  for (absl::string_view k : absl::StrSplit(*keys, '\n', absl::SkipEmpty()))
    migrate.push_back(std::string(k));
  ASSERT_OK(cluster_->node(from).Command(migrate).status());
  for (int m : cluster_->Masters()) {
    ASSERT_OK(cluster_->node(m)
                  .Command({"CLUSTER", "SETSLOT", slot_text, "NODE", *to_id})
                  .status());
  }
  const uint64_t moved_before = store_->counters().moved.load();
  ExerciseKey(existing, "t2");
  EXPECT_GT(store_->counters().moved.load(), moved_before);
  EXPECT_EQ(cluster_->OwnerOfKey(RedisKeysFor(existing).value), to);
  // What was written through -ASK is there.
  auto read = runner_->Read(fresh);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->failed_until, *failed);
}

TEST_F(RedisClusterTest, KeepsLocksAndFencesAcrossAFailover) {
  ConnectStore();
  std::vector<int> masters = cluster_->Masters();
  ASSERT_EQ(masters.size(), 3u);
  const int victim = cluster_->OwnerOfKey(RedisKeysFor(key_).value);
  ASSERT_GE(victim, 0);
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  auto held = runner_->TryLock(key_, "holder", absl::Seconds(60));
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(held->acquired);

  cluster_->node(victim).Kill();
  ASSERT_OK(cluster_->WaitForFailover(victim, absl::Seconds(30)));

  // Served again within seconds, by the promoted replica: the lock (acked
  // by the replica before it was granted) is still held, and the next
  // token is larger.
  absl::StatusOr<LockAttempt> other;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    other = runner_->TryLock(key_, "other", absl::Seconds(5));
  } while (!other.ok() && absl::Now() < deadline);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->acquired);
  ASSERT_THAT(runner_->Release(key_, "holder"), IsOkAndHolds(true));
  // The key's channel follows to the new master.
  EXPECT_TRUE(
      listener_.TakeEvent(key_, KeyEvent::Kind::kWatching, absl::Seconds(10)));
  // Grants need a replica's ack: the promoted master has none until the
  // old master comes back as its replica.
  auto refused = runner_->TryLock(key_, "early", absl::Seconds(5));
  EXPECT_FALSE(refused.ok());
  ASSERT_OK(cluster_->RestartAsReplica(victim, absl::Seconds(30)));
  // The replica just synced; its first acknowledgement may be slow.
  absl::StatusOr<LockAttempt> next;
  const absl::Time ack_deadline = absl::Now() + absl::Seconds(10);
  do {
    next = runner_->TryLock(key_, "next", absl::Seconds(5));
  } while (!next.ok() && absl::Now() < ack_deadline);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->acquired);
  EXPECT_GT(next->fencing_token, held->fencing_token);
  ASSERT_THAT(runner_->Put(key_, "after failover", absl::Seconds(60)),
              IsOkAndHolds(true));
  EXPECT_TRUE(
      listener_.TakeEvent(key_, KeyEvent::Kind::kFilled, absl::Seconds(5)));
  EXPECT_TRUE(store_->IsUp());
}

}  // namespace
}  // namespace corral
