// corrald behind Redis Sentinel: real corrald processes, a real master, a
// replica and three sentinels. The master is SIGKILLed; corrald must follow
// the sentinels to the promoted replica, keep the locks that reached it and
// answer every caller of a stampede that spans the failover.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/bench/stampede.h"
#include "client/cpp/corral_client.h"
#include "corral/v1/corral.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/corrald_process.h"
#include "tests/support/joining_thread.h"
#include "tests/support/sentinel_group.h"

namespace corral::testing {
namespace {

// redis_ is the Sentinel group.
using SentinelE2E = FleetOnTest<SentinelGroup>;

TEST_F(SentinelE2E, ALockGrantedBeforeTheFailoverIsStillHeldAfterIt) {
  EXPECT_NE(fleet_->replica(0).store().find("redis-sentinel://"),
            std::string::npos)
      << fleet_->replica(0).store();
  auto a = ClientFor(0);
  auto b = ClientFor(1);
  auto held =
      a->AcquireLock("e2e", "k", absl::Seconds(60), absl::ZeroDuration());
  ASSERT_TRUE(held.ok() && held->acquired) << held.status();
  ASSERT_TRUE(a->Set("e2e", "v", "before").ok());
  ASSERT_TRUE(redis_->WaitForReplication(1, absl::Seconds(5)).ok());

  const absl::Time killed_at = absl::Now();
  redis_->node(0).Kill();
  ASSERT_TRUE(redis_->WaitForMaster(1, absl::Seconds(30)).ok());
  const absl::Duration promoted_after = absl::Now() - killed_at;
  const absl::Duration serving_after =
      fleet_->WaitUntilServing(0, absl::Seconds(30));
  fleet_->WaitUntilServing(1, absl::Seconds(30));
  std::cout << "[ measure ] master SIGKILLed -> replica promoted: "
            << absl::FormatDuration(promoted_after)
            << "; -> corrald serving again: "
            << absl::FormatDuration(promoted_after + serving_after) << " ("
            << absl::FormatDuration(serving_after)
            << " after the promotion was seen)\n";
  EXPECT_LT(serving_after, absl::Seconds(10));

  auto got = b->Get("e2e", "v");
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
  // Grants need a replica's acknowledgement (the default for sentinel URIs):
  // the old master returns as one.
  ASSERT_TRUE(redis_->RestartAsReplica(0, 1, absl::Seconds(10)).ok());
  auto next =
      b->AcquireLock("e2e", "k", absl::Seconds(60), absl::ZeroDuration());
  ASSERT_TRUE(next.ok() && next->acquired) << next.status();
  EXPECT_GT(next->fencing_token, held->fencing_token);
}

TEST_F(SentinelE2E, AStampedeAcrossTheFailoverAnswersEveryCaller) {
  bench::StampedeOptions o = StampedeOn(
      *fleet_, "e2e", 1000, 10, absl::Milliseconds(300), absl::Seconds(60));
  o.key_prefix = absl::StrCat("failover-", absl::ToUnixNanos(absl::Now()), "-");
  o.spread =
      absl::Milliseconds(4);  // Arrivals over ~4 s: before, during, after.
  bench::StampedeReport report;
  JoiningThread stampede([&] { report = bench::RunStampede(o); });
  // Not synchronisation: where in the arrivals the master dies.
  absl::SleepFor(absl::Milliseconds(500));
  redis_->node(0).Kill();
  stampede.join();
  std::cout << report.Summary() << "\n";

  std::map<std::string, int> outcomes;
  std::map<std::pair<int, int>, int> degraded;  // (target, key) -> computes.
  std::map<int, int> coordinated;  // key -> computes under a fleet lease.
  for (const auto& c : report.callers) {
    EXPECT_LT(c.latency, o.deadline) << "caller answered after its deadline";
    if (c.status.ok()) {
      EXPECT_EQ(c.value, absl::StrCat("value-", c.key));
      ++outcomes["ok"];
    } else {
      EXPECT_FALSE(c.reason.empty())
          << "an error without a reason: " << c.status;
      ++outcomes[c.reason];
    }
    if (!c.computed) continue;
    if (c.lease_mode == corral::v1::LEASE_MODE_UNLOCKED_DEGRADED) {
      ++degraded[{c.target, c.key}];
    } else {
      ++coordinated[c.key];
    }
  }
  for (const auto& [outcome, n] : outcomes)
    std::cout << "  " << outcome << ": " << n << "\n";
  EXPECT_EQ(static_cast<int>(report.callers.size()), o.callers);
  for (const auto& [where, n] : degraded) {
    // Once while the store could not grant, at most once more after the
    // failover: a value stored just before the master died may not have
    // reached the replica (replication is asynchronous; only grants wait
    // for acknowledgements).
    EXPECT_LE(n, 2) << "replica " << where.first << " computed key "
                    << where.second << " " << n
                    << " times without the fleet-wide lock";
  }
  for (int k = 0; k < o.keys; ++k) {
    std::cout << "  key " << k << ": " << coordinated[k]
              << " fleet-coordinated computes\n";
    // One before the failover, at most one after it (the lease taken before
    // may have been lost with a fill that failed during the outage).
    EXPECT_LE(coordinated[k], 2) << "key " << k;
  }
  EXPECT_GT(outcomes["ok"], o.callers / 2);
  EXPECT_EQ(fleet_->WaitUntilServing(0, absl::Seconds(20)) < absl::Seconds(20),
            true);
}

// Bad sentinel settings stop corrald at startup (exit 2) with a message
// naming what is wrong, and never echo a password. No Redis needed.
TEST(SentinelFlagsE2E, BadSettingsExitTwoNamingThePart) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--redis=redis-sentinel://127.0.0.1:1,127.0.0.1:x/m"},
       "the port is not a number in 1..65535 (sentinel 2)"},
      {{"--redis=redis-sentinel://127.0.0.1:1/"
        "m?sentinel_password=secret&bogus=1"},
       "unknown query parameter"},
      {{"--redis=redis-sentinel://127.0.0.1:1"},
       "the master name (after '/') is missing"},
      {{"--redis=redis-sentinel://127.0.0.1:1/m",
        "--redis_min_replica_acks=-2"},
       "--redis_min_replica_acks"},
      {{"--redis=redis-sentinel://127.0.0.1:1/m",
        "--redis_replica_ack_timeout=2s"},
       "--redis_replica_ack_timeout"},
  };
  for (const auto& [args, expected] : cases) {
    SCOPED_TRACE(args.back());
    ExpectRefusedAtStartup(args, expected);
  }
}

}  // namespace
}  // namespace corral::testing
