// Breaking things on purpose: Redis killed mid-stampede, corrald killed or
// stopped while it holds a lease, more waiters than the limits allow.
#include <signal.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/bench/stampede.h"
#include "corral/v1/corral.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/joining_thread.h"
#include "tests/support/poll.h"
#include "tests/support/sanitizers.h"

namespace corral::testing {
namespace {

bench::StampedeOptions Options(const Fleet& fleet, int callers, int keys,
                               absl::Duration compute) {
  return StampedeOn(fleet, "chaos", callers, keys, compute, absl::Seconds(30));
}

// 2,000 callers over 2 replicas; Redis is SIGKILLed mid-stampede and comes
// back. Everyone is answered before the deadline, nobody crashes, and while
// Redis was down each replica computed each key at most once.
TEST(FaultsE2E, ChaosStampedeRedisKilledAndRestarted) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  bench::StampedeOptions o = Options(*fleet, 2000, 20, absl::Milliseconds(600));
  o.spread = absl::Microseconds(500);  // Arrivals span the outage.
  bench::StampedeReport report;
  JoiningThread stampede([&] { report = bench::RunStampede(o); });
  // Mid-stampede: callers are waiting on the computes.
  EXPECT_TRUE(fleet->WaitForWaiters("chaos", 1));
  fleet->redis().Kill();
  // Not synchronisation: how long Redis stays down.
  absl::SleepFor(absl::Milliseconds(800));
  ASSERT_TRUE(fleet->redis().Restart().ok());
  stampede.join();
  std::cout << report.Summary() << "\n";

  std::map<std::string, int> outcomes;
  std::map<std::pair<int, int>, int> degraded;  // (target, key) -> computes.
  for (const auto& c : report.callers) {
    EXPECT_LT(c.latency, o.deadline) << "caller answered after its deadline";
    if (c.status.ok()) {
      EXPECT_EQ(c.value, absl::StrCat("value-", c.key));
      ++outcomes["ok"];
    } else {
      // A clear error: a code and a corral-reason, never a hang.
      EXPECT_FALSE(c.reason.empty()) << c.status;
      ++outcomes[c.reason];
    }
    if (c.lease_mode == corral::v1::LEASE_MODE_UNLOCKED_DEGRADED)
      ++degraded[{c.target, c.key}];
  }
  for (const auto& [where, n] : degraded) {
    EXPECT_LE(n, 1) << "replica " << where.first << " computed key "
                    << where.second << " " << n
                    << " times while Redis was down";
  }
  for (const auto& [k, n] : outcomes)
    std::cout << "outcome " << k << "=" << n << "\n";
  EXPECT_GE(outcomes["ok"], 1900)
      << "degraded coordination should serve nearly everyone";
  for (int i = 0; i < 2; ++i)
    EXPECT_TRUE(fleet->replica(i).Running()) << "replica " << i;

  // What ended in Redis was stored by a fill the server accepted.
  auto c = fleet->ClientFor(0);
  for (int k = 0; k < o.keys; ++k) {
    auto got = c->Get("chaos", absl::StrCat(o.key_prefix, k));
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->found) {
      EXPECT_EQ(got->value.value, absl::StrCat("value-", k));
    }
  }
}

constexpr char kShortLeases[] = R"pb(
  namespaces {
    name: "chaos"
    lease_ttl { seconds: 2 }
  }
  limits { drain_timeout { seconds: 1 } }
)pb";

// The replica that holds a lease dies (SIGKILL): its lock is not released,
// but it expires within the lease TTL and a waiter on the other replica
// takes over.
TEST(FaultsE2E, ReplicaKilledWhileHoldingALease) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kShortLeases);
  ASSERT_NE(fleet, nullptr);
  auto holder = fleet->ClientFor(0);
  absl::Notification give_up;  // The compute outlives its replica; ends here.
  std::atomic<bool> computing_started{false};
  JoiningThread computing([&] {
    (void)holder->GetOrCompute(
        "chaos", "k", [&]() -> absl::StatusOr<std::string> {
          computing_started = true;
          give_up.WaitForNotificationWithTimeout(absl::Seconds(20));
          return std::string("never");
        });
  });
  NotifyOnExit release_give_up(give_up);  // Before any join.
  ASSERT_TRUE(
      PollUntil([&] { return computing_started.load(); }, absl::Seconds(10)))
      << "replica 0's caller never got the lease";
  auto waiter = fleet->ClientFor(1);
  absl::StatusOr<client::GetOrComputeResult> took_over;
  absl::Time killed;
  JoiningThread waiting([&] {
    took_over =
        waiter->GetOrCompute("chaos", "k", []() -> absl::StatusOr<std::string> {
          return std::string("from-replica-1");
        });
  });
  ASSERT_TRUE(fleet->WaitForWaiters("chaos", 1)) << "replica 1 never waited";
  killed = absl::Now();
  fleet->replica(0).Kill();
  waiting.join();
  const absl::Duration handover = absl::Now() - killed;
  ASSERT_TRUE(took_over.ok()) << took_over.status();
  EXPECT_TRUE(took_over->computed);
  EXPECT_EQ(took_over->value, "from-replica-1");
  if (!kSanitized) {  // A wall-time bound: plain builds only (sanitizers.h).
    EXPECT_LT(handover, absl::Seconds(2) + absl::Milliseconds(800))
        << "within the lease TTL";
  }
  give_up.Notify();  // Its stream died with the replica; its compute ends now.
  computing.join();
}

// SIGTERM while a local leaseholder computes: corrald drains (1 s here),
// exits 0, and its lock is released at once, not left to expire.
TEST(FaultsE2E, SigtermDrainsAndReleasesLocksAtOnce) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kShortLeases);
  ASSERT_NE(fleet, nullptr);
  auto holder = fleet->ClientFor(0);
  std::atomic<bool> computing_started{false};
  JoiningThread computing([&] {
    (void)holder->GetOrCompute(
        "chaos", "drain", [&]() -> absl::StatusOr<std::string> {
          computing_started = true;
          absl::SleepFor(absl::Seconds(4));  // A long compute, not a wait.
          return std::string("late");
        });
  });
  ASSERT_TRUE(
      PollUntil([&] { return computing_started.load(); }, absl::Seconds(10)))
      << "replica 0's caller never got the lease";
  auto other = fleet->ClientFor(1);
  auto held = other->AcquireLock("chaos", "drain", absl::Seconds(5),
                                 absl::ZeroDuration());
  ASSERT_TRUE(held.ok());
  ASSERT_FALSE(held->acquired) << "replica 0's leaseholder holds the lock";
  const absl::Time start = absl::Now();
  auto code = fleet->replica(0).Terminate(absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "drain_timeout is 1 s";
  auto after = other->AcquireLock("chaos", "drain", absl::Seconds(5),
                                  absl::ZeroDuration());
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->acquired)
      << "the lock was released on shutdown, not left to its TTL";
  computing.join();
}

constexpr char kSmallLimits[] = R"pb(
  limits { max_waiters_per_key: 50 max_waiters: 80 }
)pb";

// More waiters than allowed: the excess is refused with RESOURCE_EXHAUSTED,
// the rest are served, and the server stays healthy.
TEST(FaultsE2E, FloodBeyondWaiterLimits) {
  auto fleet = Fleet::Start(1, /*embedded=*/true, kSmallLimits);
  ASSERT_NE(fleet, nullptr);
  bench::StampedeOptions o = Options(*fleet, 300, 1, absl::Milliseconds(800));
  bench::StampedeReport report = bench::RunStampede(o);
  int ok = 0, exhausted = 0, other = 0;
  for (const auto& c : report.callers) {
    if (c.status.ok()) {
      ++ok;
    } else if (absl::IsResourceExhausted(c.status) &&
               c.reason == "too-many-waiters") {
      ++exhausted;
    } else {
      ++other;
      ADD_FAILURE() << c.status;
    }
  }
  std::cout << report.Summary() << "\n";
  EXPECT_EQ(report.computes(), 1);
  EXPECT_GE(ok, 51);  // The leaseholder and the 50 waiters allowed.
  EXPECT_GT(exhausted, 0);
  EXPECT_EQ(other, 0);
  // Per server: 80 waiters over many keys.
  bench::StampedeOptions many =
      Options(*fleet, 300, 300, absl::Milliseconds(800));
  many.ns = "other";
  many.key_prefix = "same-";
  // 300 keys but each key's first caller holds the lease: nobody waits.
  EXPECT_EQ(bench::RunStampede(many).ok(), 300);
  auto health = fleet->replica(0).Corralctl({"health"});
  EXPECT_EQ(health->exit_code, 0);
  EXPECT_TRUE(fleet->ClientFor(0)->Get("chaos", "probe").ok());
}

TEST(FaultsE2E, HealthServiceFollowsTheStore) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  auto c = fleet->ClientFor(0);
  EXPECT_EQ(*c->CheckHealth("corral.v1.Corral"),
            client::HealthStatus::kServing);
  fleet->redis().Kill();
  absl::Time until = absl::Now() + absl::Seconds(5);
  while (absl::Now() < until && *c->CheckHealth("corral.v1.Corral") ==
                                    client::HealthStatus::kServing) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(*c->CheckHealth("corral.v1.Corral"),
            client::HealthStatus::kNotServing);
  EXPECT_EQ(*c->CheckHealth(""), client::HealthStatus::kServing)
      << "the process still serves";
  ASSERT_TRUE(fleet->redis().Restart().ok());
  until = absl::Now() + absl::Seconds(10);
  while (absl::Now() < until && *c->CheckHealth("corral.v1.Corral") !=
                                    client::HealthStatus::kServing) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(*c->CheckHealth("corral.v1.Corral"),
            client::HealthStatus::kServing);
}

}  // namespace
}  // namespace corral::testing
