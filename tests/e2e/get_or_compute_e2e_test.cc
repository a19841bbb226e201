// GetOrCompute through real corrald processes: the fleet-wide single flight.
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/bench/stampede.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/joining_thread.h"
#include "tests/support/process.h"

namespace corral::testing {
namespace {

using bench::RunStampede;
using bench::StampedeOptions;
using bench::StampedeReport;

StampedeOptions Options(const Fleet& fleet, int callers, int keys,
                        absl::Duration compute) {
  return StampedeOn(fleet, "e2e", callers, keys, compute, absl::Seconds(60));
}

void ExpectEveryoneGotTheirKeysValue(const StampedeReport& report) {
  for (const auto& c : report.callers) {
    ASSERT_TRUE(c.status.ok()) << c.status << " reason=" << c.reason;
    EXPECT_EQ(c.value, absl::StrCat("value-", c.key));
  }
}

TEST(GetOrComputeE2E, ThousandCallersTwoReplicasOneCompute) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  StampedeReport report =
      RunStampede(Options(*fleet, 1000, 1, absl::Milliseconds(300)));
  std::cout << report.Summary() << "\n";
  EXPECT_EQ(report.computes(), 1);
  ExpectEveryoneGotTheirKeysValue(report);
}

TEST(GetOrComputeE2E, TwoThousandCallersFiftyKeysFiftyComputes) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  StampedeReport report =
      RunStampede(Options(*fleet, 2000, 50, absl::Milliseconds(200)));
  std::cout << report.Summary() << "\n";
  EXPECT_EQ(report.computes(), 50);
  ExpectEveryoneGotTheirKeysValue(report);
  std::set<int> computed_keys;
  for (const auto& c : report.callers) {
    if (c.computed) {
      EXPECT_TRUE(computed_keys.insert(c.key).second) << "key " << c.key;
    }
  }
}

TEST(GetOrComputeE2E, OneReplicaOnTheEmbeddedStore) {
  auto fleet = Fleet::Start(1, /*embedded=*/true);
  ASSERT_NE(fleet, nullptr);
  StampedeReport report =
      RunStampede(Options(*fleet, 1000, 10, absl::Milliseconds(200)));
  EXPECT_EQ(report.computes(), 10);
  ExpectEveryoneGotTheirKeysValue(report);
}

// A worker (corralctl --exec) holds the lease and is SIGKILLed: its stream
// breaks, the lock goes back at once, and a waiting caller computes instead.
TEST(GetOrComputeE2E, LeaseholderProcessKilledMidCompute) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  StampedeOptions o = Options(*fleet, 100, 1, absl::Milliseconds(100));
  const std::string key =
      absl::StrCat(o.key_prefix, "0");  // The stampede's key.
  const std::string marker =
      absl::StrCat(::testing::TempDir(), "lease-", ::getpid());
  ::unlink(marker.c_str());
  SubprocessOptions worker_options;
  worker_options.argv = {
      CorralctlPath(),
      "--target",
      fleet->replica(0).target(),
      "get-or-compute",
      "e2e",
      key,
      "--exec",
      absl::StrCat("touch ", marker, "; sleep 60; echo never")};
  auto worker = Subprocess::Start(worker_options);
  ASSERT_TRUE(worker.ok()) << worker.status();
  ASSERT_TRUE(PollUntil([&] { return ::access(marker.c_str(), F_OK) == 0; },
                        absl::Seconds(10)))
      << "the worker never got the lease";

  StampedeReport report;
  JoiningThread stampede([&] { report = RunStampede(o); });
  EXPECT_TRUE(fleet->WaitForWaiters("e2e", o.callers))
      << "not everyone waits: " << fleet->Waiters("e2e");
  const absl::Time killed = absl::Now();
  ASSERT_TRUE((*worker)->Signal(SIGKILL).ok());
  stampede.join();
  const absl::Duration handover = absl::Now() - killed;
  std::cout << report.Summary() << " handover=" << handover << "\n";
  EXPECT_EQ(report.computes(), 1) << "one caller took over (2 computes in all)";
  ExpectEveryoneGotTheirKeysValue(report);
  // Well under the 30 s lease TTL: the broken stream released the lock.
  EXPECT_LT(handover, absl::Seconds(5));
}

constexpr char kSlowConfig[] = R"pb(
  namespaces {
    name: "slow"
    max_compute_time { seconds: 1 }
    lease_ttl { seconds: 3 }
  }
)pb";

// A leaseholder that hangs past max_compute_time loses its lease to the next
// caller, and its late fill is refused (fenced).
TEST(GetOrComputeE2E, HungLeaseholderIsRevokedAndItsLateFillRefused) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kSlowConfig);
  ASSERT_NE(fleet, nullptr);
  auto hung_client = fleet->ClientFor(0);
  absl::StatusOr<client::GetOrComputeResult> hung;
  std::atomic<bool> computing{false};
  // The hung compute returns once the stampede is over: past its
  // max_compute_time, after the next leaseholder's fill, on any machine.
  absl::Notification stampede_over;
  JoiningThread hung_worker([&] {
    hung = hung_client->GetOrCompute(
        "slow", "k0", [&]() -> absl::StatusOr<std::string> {
          computing = true;
          stampede_over.WaitForNotificationWithTimeout(absl::Seconds(30));
          return std::string("late");
        });
  });
  NotifyOnExit release_stampede_over(stampede_over);  // Before any join.
  ASSERT_TRUE(PollUntil([&] { return computing.load(); }, absl::Seconds(10)))
      << "the first caller never got the lease";
  StampedeOptions o = Options(*fleet, 50, 1, absl::Milliseconds(100));
  o.ns = "slow";
  o.key_prefix = "k";
  StampedeReport report = RunStampede(o);
  stampede_over.Notify();
  hung_worker.join();
  ASSERT_TRUE(hung.ok()) << hung.status();
  EXPECT_TRUE(hung->computed);
  EXPECT_FALSE(hung->stored);
  EXPECT_EQ(hung->not_stored_reason, "lease-revoked");
  EXPECT_EQ(report.computes(), 1);
  ExpectEveryoneGotTheirKeysValue(report);
  auto stored = fleet->ClientFor(1)->Get("slow", "k0");
  ASSERT_TRUE(stored.ok() && stored->found);
  EXPECT_EQ(stored->value.value, "value-0");
  // The revoked lease had the smaller fencing token.
  for (const auto& c : report.callers) {
    if (c.computed) {
      EXPECT_GT(c.fencing_token, hung->fencing_token);
    }
  }
}

// A worker on the lock API and GetOrCompute callers share one lock: the
// lock worker computes, everyone else gets its value; nobody else computes.
TEST(GetOrComputeE2E, LockApiWorkerAndGetOrComputeCallersComputeOnce) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  StampedeOptions o = Options(*fleet, 200, 1, absl::Milliseconds(100));
  o.value_for = [](int) { return std::string("should-not-compute"); };
  const std::string key = absl::StrCat(o.key_prefix, "0");
  auto lock_worker = fleet->ClientFor(1);
  auto lock = lock_worker->AcquireLock("e2e", key, absl::Seconds(30),
                                       absl::ZeroDuration());
  ASSERT_TRUE(lock.ok() && lock->acquired);
  StampedeReport report;
  JoiningThread stampede([&] { report = RunStampede(o); });
  EXPECT_TRUE(fleet->WaitForWaiters("e2e", o.callers))
      << "not everyone waits: " << fleet->Waiters("e2e");
  client::SetOptions fenced;
  fenced.lock_token = lock->token;
  fenced.release_lock = true;
  auto set = lock_worker->Set("e2e", key, "from-the-lock-worker", fenced);
  ASSERT_TRUE(set.ok() && set->stored);
  stampede.join();
  EXPECT_EQ(report.computes(), 0);
  for (const auto& c : report.callers) {
    ASSERT_TRUE(c.status.ok()) << c.status;
    EXPECT_EQ(c.value, "from-the-lock-worker");
  }
}

// Redis dies mid-stampede and comes back: nobody hangs, corrald survives,
// every caller ends with its value or a clear error.
TEST(GetOrComputeE2E, RedisRestartedMidStampede) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  StampedeOptions o = Options(*fleet, 500, 5, absl::Milliseconds(800));
  o.deadline = absl::Seconds(30);
  StampedeReport report;
  JoiningThread stampede([&] { report = RunStampede(o); });
  // Mid-stampede: callers are waiting on the computes.
  EXPECT_TRUE(fleet->WaitForWaiters("e2e", 1));
  fleet->redis().Kill();
  // Not synchronisation: how long Redis stays down.
  absl::SleepFor(absl::Milliseconds(700));
  ASSERT_TRUE(fleet->redis().Restart().ok());
  stampede.join();
  std::cout << report.Summary() << "\n";
  for (const auto& c : report.callers) {
    if (c.status.ok()) {
      EXPECT_EQ(c.value, absl::StrCat("value-", c.key));
    } else {
      EXPECT_TRUE(absl::IsUnavailable(c.status) ||
                  absl::IsDeadlineExceeded(c.status))
          << c.status;
      EXPECT_FALSE(c.reason.empty())
          << "an error without corral-reason: " << c.status;
    }
    EXPECT_LT(c.latency, absl::Seconds(30));
  }
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(fleet->replica(i).Running());
  // And the fleet serves again once each replica has reconnected.
  for (int i = 0; i < 2; ++i) {
    auto c = fleet->ClientFor(i);
    ASSERT_TRUE(PollUntil([&] { return c->Get("e2e", "probe").ok(); },
                          absl::Seconds(15)))
        << "replica " << i << " did not reconnect";
  }
  StampedeReport after =
      RunStampede(Options(*fleet, 100, 1, absl::Milliseconds(50)));
  std::cout << "after: " << after.Summary() << "\n";
  EXPECT_EQ(after.computes(), 1);
  ExpectEveryoneGotTheirKeysValue(after);
}

}  // namespace
}  // namespace corral::testing
