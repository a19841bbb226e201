// corrald on Redis Cluster: two real corrald processes on a real cluster of
// three masters and three replicas (tests/support/redis_cluster.h). A
// stampede over 100 keys computes each key exactly once, with keys on every
// master; the same while 2,000 slots migrate under the load; and after a
// master is SIGKILLed and its replica takes over, corrald serves again
// within seconds, a value and a lock granted before are still there, and
// the next stampede is exact again.
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/bench/stampede.h"
#include "client/cpp/corral_client.h"
#include "gtest/gtest.h"
#include "server/core/cache_key.h"
#include "server/store/redis_scripts.h"
#include "tests/e2e/fleet.h"
#include "tests/support/corrald_process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace corral::testing {
namespace {

// redis_ is the cluster.
class ClusterE2E : public FleetOnTest<RedisCluster> {
 protected:
  bench::StampedeOptions Stampede(const std::string& name, int callers,
                                  int keys) {
    bench::StampedeOptions o =
        StampedeOn(*fleet_, "e2e", callers, keys, absl::Milliseconds(200),
                   absl::Seconds(60));
    o.key_prefix = absl::StrCat(name, "-", absl::ToUnixNanos(absl::Now()), "-");
    return o;
  }

  // Exactly one compute per key, and every caller got its key's value.
  static void ExpectExact(const bench::StampedeReport& report, int keys) {
    EXPECT_EQ(report.computes(), keys);
    std::set<int> computed;
    for (const auto& c : report.callers) {
      ASSERT_TRUE(c.status.ok()) << c.status << " reason=" << c.reason;
      EXPECT_EQ(c.value, absl::StrCat("value-", c.key));
      if (c.computed) {
        EXPECT_TRUE(computed.insert(c.key).second) << "key " << c.key;
      }
    }
  }

  // How many keys each master holds.
  std::map<int, int64_t> KeysPerMaster() {
    std::map<int, int64_t> out;
    for (int m : redis_->Masters()) {
      auto size = redis_->node(m).Command({"DBSIZE"});
      int64_t n = 0;
      if (size.ok() && absl::SimpleAtoi(*size, &n)) out[m] = n;
    }
    return out;
  }
};

TEST_F(ClusterE2E, AStampedeOverAHundredKeysComputesEachOnceOnEveryMaster) {
  EXPECT_NE(fleet_->replica(0).store().find("redis-cluster://"),
            std::string::npos)
      << fleet_->replica(0).store();
  bench::StampedeReport report =
      bench::RunStampede(Stampede("hundred", 2000, 100));
  std::cout << report.Summary() << "\n";
  ExpectExact(report, 100);
  std::map<int, int64_t> keys = KeysPerMaster();
  ASSERT_EQ(keys.size(), 3u);
  for (const auto& [master, n] : keys) {
    std::cout << "[ measure ] master " << master << " holds " << n << " keys\n";
    EXPECT_GT(n, 0) << "no key on master " << master;
  }
}

TEST_F(ClusterE2E, AStampedeStaysExactWhileSlotsMigrate) {
  std::vector<int> masters = redis_->Masters();
  ASSERT_EQ(masters.size(), 3u);
  // Warm the slots with keys, so that migrating moves data.
  bench::StampedeReport warm = bench::RunStampede(Stampede("warm", 400, 200));
  ExpectExact(warm, 200);

  auto reshard = redis_->StartReshard(masters[0], masters[1], 2000);
  ASSERT_TRUE(reshard.ok()) << reshard.status();
  int stampedes = 0;
  // Stampedes back to back for as long as the slots move.
  do {
    bench::StampedeReport report = bench::RunStampede(
        Stampede(absl::StrCat("migrating", stampedes), 1000, 100));
    std::cout << report.Summary() << "\n";
    ExpectExact(report, 100);
    if (HasFatalFailure()) return;
    ++stampedes;
  } while ((*reshard)->Running());
  auto exit = (*reshard)->Wait(absl::Seconds(60));
  ASSERT_TRUE(exit.ok() && exit->success()) << (*reshard)->DescribeOutput();
  std::cout << "[ measure ] " << stampedes
            << " exact stampedes of 100 keys while 2000 slots moved\n";
  bench::StampedeReport after =
      bench::RunStampede(Stampede("after-reshard", 1000, 100));
  ExpectExact(after, 100);
}

TEST_F(ClusterE2E, AfterAFailoverCorraldServesAgainAndStaysExact) {
  auto a = ClientFor(0);
  auto b = ClientFor(1);
  auto held =
      a->AcquireLock("e2e", "k", absl::Seconds(60), absl::ZeroDuration());
  ASSERT_TRUE(held.ok() && held->acquired) << held.status();
  ASSERT_TRUE(a->Set("e2e", "v", "before").ok());

  // The master of the lock's slot dies.
  const int victim =
      redis_->OwnerOfKey(RedisKeysFor(CacheKey{"e2e", "k"}).lock);
  ASSERT_GE(victim, 0);
  const absl::Time killed_at = absl::Now();
  redis_->node(victim).Kill();
  ASSERT_TRUE(redis_->WaitForFailover(victim, absl::Seconds(30)).ok());
  const absl::Duration promoted_after = absl::Now() - killed_at;
  const absl::Duration serving_after =
      fleet_->WaitUntilServing(0, absl::Seconds(30));
  fleet_->WaitUntilServing(1, absl::Seconds(30));
  std::cout << "[ measure ] master SIGKILLed -> replica promoted: "
            << absl::FormatDuration(promoted_after)
            << "; -> corrald serving again: "
            << absl::FormatDuration(promoted_after + serving_after) << "\n";
  EXPECT_LT(serving_after, absl::Seconds(10));

  // Reads and lock checks work at once (no grant needed).
  absl::StatusOr<client::GetResult> got;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    got = b->Get("e2e", "v");
  } while (!got.ok() && absl::Now() < deadline);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value.value, "before");
  auto refused =
      b->AcquireLock("e2e", "k", absl::Seconds(60), absl::ZeroDuration());
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->acquired) << "the lock was lost in the failover";
  auto released = a->ReleaseLock("e2e", "k", held->token);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_TRUE(released->released);

  // Grants need a replica's acknowledgement: the old master comes back as
  // the promoted one's replica.
  ASSERT_TRUE(redis_->RestartAsReplica(victim, absl::Seconds(30)).ok());
  // The replica just synced; its first acknowledgement may be slow.
  absl::StatusOr<client::AcquireLockResult> next;
  const absl::Time ack_deadline = absl::Now() + absl::Seconds(10);
  do {
    next = b->AcquireLock("e2e", "k", absl::Seconds(60), absl::ZeroDuration());
  } while (!next.ok() && absl::Now() < ack_deadline);
  ASSERT_TRUE(next.ok() && next->acquired) << next.status();
  EXPECT_GT(next->fencing_token, held->fencing_token);
  bench::StampedeReport report =
      bench::RunStampede(Stampede("after-failover", 1000, 100));
  std::cout << report.Summary() << "\n";
  ExpectExact(report, 100);
}

// Bad cluster settings stop corrald at startup (exit 2) with a message
// naming what is wrong, and never echo a password: a malformed URI, and a
// seed that is a standalone server, not a cluster node.
TEST(ClusterFlagsE2E, BadSettingsExitTwoNamingThePart) {
  auto standalone = RedisServer::Start();
  ASSERT_TRUE(standalone.ok()) << standalone.status();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--redis=redis-cluster://:secret@127.0.0.1:1,127.0.0.1"},
       "the port of cluster node 2 is missing"},
      {{"--redis=redis-cluster://127.0.0.1:1/0"}, "takes no path"},
      {{"--redis=redis-cluster://127.0.0.1:1?db=1"}, "no query parameters"},
      {{absl::StrCat("--redis=redis-cluster://127.0.0.1:",
                     (*standalone)->port())},
       "is not a Redis Cluster node"},
  };
  for (const auto& [args, expected] : cases) {
    SCOPED_TRACE(args.back());
    ExpectRefusedAtStartup(args, expected);
  }
}

}  // namespace
}  // namespace corral::testing
