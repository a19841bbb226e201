// Freshness through real corrald processes on one Redis: early refresh and
// stale-while-revalidate keep a hot key answered without anyone waiting for
// a compute, and negative caching keeps a failing upstream from being asked
// again at once.
#include <atomic>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/bench/steady.h"
#include "client/cpp/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/joining_thread.h"
#include "tests/support/poll.h"

namespace corral::testing {
namespace {

using client::GetOrComputeOptions;
using client::LeaseMode;
using client::Source;

constexpr char kConfig[] = R"pb(
  namespaces {
    name: "hot"
    ttl { seconds: 2 }
    stale_window { seconds: 30 }
    early_refresh_beta: 1
  }
  namespaces {
    name: "revalidate"
    ttl { seconds: 1 }
    stale_window { seconds: 30 }
    early_refresh_beta: 0
  }
  namespaces {
    name: "flaky"
    negative_ttl { seconds: 1 }
    early_refresh_beta: 0
  }
)pb";

TEST(FreshnessE2E, SteadyLoadOnAHotKeyNeverWaitsAfterTheFirstFill) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kConfig);
  ASSERT_NE(fleet, nullptr);
  bench::SteadyOptions options;
  options.targets = fleet->targets();
  options.ns = "hot";
  options.callers = 50;
  options.duration = absl::Seconds(10);
  options.compute_time = absl::Milliseconds(200);
  options.pace = absl::Milliseconds(20);
  options.allow_stale = true;
  const bench::SteadyReport report = bench::RunSteady(options);
  std::cout << report.Summary() << "\n";
  std::string starts;
  for (absl::Duration d : report.compute_starts)
    absl::StrAppend(&starts, " ", absl::FormatDuration(d));
  std::cout << "compute starts:" << starts << "\n";

  EXPECT_EQ(report.errors, 0) << report.first_error;
  // Exactly one compute (or refresh) in flight at any time, fleet-wide.
  EXPECT_EQ(report.max_concurrent_computes, 1);
  // After the first fill nobody waits for a compute: the value is refreshed
  // before it expires, or served stale while it is.
  EXPECT_GT(report.calls_after_first_fill, 1000);
  EXPECT_EQ(report.waited_after_first_fill, 0);
  // About one compute per TTL period: not zero (the key stays fresh), not a
  // burst (50 callers would be 50 per period without coordination).
  EXPECT_GE(report.computes, 5);
  EXPECT_LE(report.computes, 20);
  EXPECT_EQ(report.refreshes, report.computes - 1);  // All but the first.
}

TEST(FreshnessE2E, StaleIsServedAtOnceDuringASlowRefresh) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kConfig);
  ASSERT_NE(fleet, nullptr);
  auto a = fleet->ClientFor(0);
  auto b = fleet->ClientFor(1);
  auto first = a->GetOrCompute(
      "revalidate", "k", [] { return absl::StatusOr<std::string>("v1"); });
  ASSERT_TRUE(first.ok()) << first.status();
  // Past the 1 s TTL (Redis keeps the time): a plain Get misses.
  ASSERT_TRUE(PollUntil(
      [&] {
        auto got = b->Get("revalidate", "k");
        return got.ok() && !got->found;
      },
      absl::Seconds(10)));

  GetOrComputeOptions stale_ok;
  stale_ok.allow_stale = true;
  std::atomic<bool> refreshing{false};
  // The refresh lasts until the stale callers below are done: they are
  // answered during it, whatever the machine's speed.
  absl::Notification stale_callers_done;
  JoiningThread refresher([&] {
    auto r = a->GetOrCompute(
        "revalidate", "k",
        [&]() -> absl::StatusOr<std::string> {
          refreshing = true;
          stale_callers_done.WaitForNotificationWithTimeout(absl::Seconds(30));
          return std::string("v2");
        },
        stale_ok);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->computed);
    EXPECT_EQ(r->lease_mode, LeaseMode::kRefresh);
    EXPECT_EQ(r->value, "v2");
  });
  NotifyOnExit release_stale_callers_done(
      stale_callers_done);  // Before any join.
  ASSERT_TRUE(PollUntil([&] { return refreshing.load(); }, absl::Seconds(10)))
      << "the refresh never started";
  // Both replicas answer stale callers from the old value while the
  // refresh is under way (it waits for them).
  int computed = 0;
  for (int i = 0; i < 20; ++i) {
    client::Client& c = i % 2 == 0 ? *a : *b;
    auto r = c.GetOrCompute(
        "revalidate", "k",
        [&]() -> absl::StatusOr<std::string> {
          ++computed;
          return std::string("dup");
        },
        stale_ok);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->value, "v1");
    EXPECT_EQ(r->source, Source::kStale);
    EXPECT_TRUE(r->stale);
  }
  EXPECT_EQ(computed, 0);
  stale_callers_done.Notify();
  refresher.join();
  auto fresh = b->GetOrCompute(
      "revalidate", "k", [] { return absl::StatusOr<std::string>("x"); },
      stale_ok);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->value, "v2");
  EXPECT_EQ(fresh->source, Source::kCache);
}

TEST(FreshnessE2E, ARememberedFailureIsAnsweredFleetWideUntilItExpires) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kConfig);
  ASSERT_NE(fleet, nullptr);
  auto a = fleet->ClientFor(0);
  auto b = fleet->ClientFor(1);
  std::atomic<int> upstream_calls{0};
  auto failing = [&]() -> absl::StatusOr<std::string> {
    ++upstream_calls;
    return absl::UnavailableError("upstream 503");
  };
  auto r = a->GetOrCompute("flaky", "k", failing);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(upstream_calls.load(), 1);
  // Within negative_ttl, on either replica: the failure, not a compute.
  for (int i = 0; i < 10; ++i) {
    client::Client& c = i % 2 == 0 ? *a : *b;
    auto again = c.GetOrCompute("flaky", "k", failing);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable)
        << again.status();
    EXPECT_EQ(client::ReasonOf(again.status()), "peer-compute-failed");
    EXPECT_TRUE(client::RetryAfterOf(again.status()).has_value());
  }
  EXPECT_EQ(upstream_calls.load(), 1);
  // Once negative_ttl (1 s of Redis' time) is over, the next caller
  // computes; until then each try is answered with the failure (no compute).
  absl::StatusOr<client::GetOrComputeResult> later;
  EXPECT_TRUE(PollUntil(
      [&] {
        later = b->GetOrCompute(
            "flaky", "k", [] { return absl::StatusOr<std::string>("ok"); });
        return later.ok();
      },
      absl::Seconds(10)));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_TRUE(later->computed);
  EXPECT_EQ(later->value, "ok");
}

}  // namespace
}  // namespace corral::testing
