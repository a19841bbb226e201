// Locks and cache RPCs through real corrald processes on a real Redis.
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/joining_thread.h"
#include "tests/support/poll.h"

namespace corral::testing {
namespace {

using ::testing::HasSubstr;

TEST(LocksE2E, MutualExclusionAcrossTwoReplicas) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  constexpr int kCallers = 200;
  std::vector<std::unique_ptr<client::Client>> clients;
  for (int i = 0; i < 2; ++i)
    clients.push_back(fleet->ClientFor(i, absl::Seconds(120)));

  std::atomic<int> inside{0};
  std::atomic<int> violations{0};
  int counter = 0;  // Only touched while holding the lock.
  absl::Mutex order_mu;
  std::vector<uint64_t> tokens_in_order;
  std::atomic<int> acquired{0}, errors{0};

  std::vector<JoiningThread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      client::Client& c = *clients[i % 2];
      auto lock = c.AcquireLock("e2e", "the-key", absl::Seconds(10),
                                absl::Seconds(100));
      if (!lock.ok() || !lock->acquired) {
        ++errors;
        ADD_FAILURE() << (lock.ok() ? "not acquired"
                                    : lock.status().ToString());
        return;
      }
      if (inside.fetch_add(1) != 0) ++violations;
      {
        absl::MutexLock l(&order_mu);
        tokens_in_order.push_back(lock->fencing_token);
      }
      int seen = counter;
      std::this_thread::yield();
      counter = seen + 1;
      inside.fetch_sub(1);
      auto released = c.ReleaseLock("e2e", "the-key", lock->token,
                                    client::Outcome::kSuccess);
      EXPECT_TRUE(released.ok() && released->released) << released.status();
      ++acquired;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0) << "two holders at once";
  EXPECT_EQ(acquired.load(), kCallers);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(counter, kCallers);
  for (size_t i = 1; i < tokens_in_order.size(); ++i) {
    EXPECT_GT(tokens_in_order[i], tokens_in_order[i - 1])
        << "at acquisition " << i;
  }
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(fleet->replica(i).Running());
}

TEST(LocksE2E, FencingTokensSurviveCorraldAndRedisRestarts) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  auto c = fleet->ClientFor(0);
  auto first =
      c->AcquireLock("e2e", "k", absl::Seconds(5), absl::ZeroDuration());
  ASSERT_TRUE(first.ok() && first->acquired);
  ASSERT_TRUE(c->ReleaseLock("e2e", "k", first->token).ok());
  ASSERT_EQ(*fleet->replica(0).Terminate(), 0);
  ASSERT_TRUE(fleet->redis().Restart().ok());
  ASSERT_TRUE(fleet->AddReplica());
  auto c2 = fleet->ClientFor(1);
  auto second =
      c2->AcquireLock("e2e", "k", absl::Seconds(5), absl::ZeroDuration());
  ASSERT_TRUE(second.ok() && second->acquired) << second.status();
  EXPECT_GT(second->fencing_token, first->fencing_token);
}

TEST(LocksE2E, CacheRpcsAndFencedSetWakeWaiters) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  auto a = fleet->ClientFor(0);
  auto b = fleet->ClientFor(1);
  ASSERT_TRUE(
      a->Set("e2e", std::string("bin\0key", 7), std::string("v\0\xff", 3))
          .ok());
  auto got = b->Get("e2e", std::string("bin\0key", 7));
  ASSERT_TRUE(got.ok() && got->found);
  EXPECT_EQ(got->value.value, std::string("v\0\xff", 3));
  EXPECT_TRUE(b->Invalidate("e2e", std::string("bin\0key", 7))->existed);
  EXPECT_FALSE(a->Get("e2e", std::string("bin\0key", 7))->found);

  // A lock-API worker on replica A; a waiter on replica B is woken by the
  // fenced Set and gets the lock right after, with a larger fence.
  auto lock =
      a->AcquireLock("e2e", "fenced", absl::Seconds(30), absl::ZeroDuration());
  ASSERT_TRUE(lock->acquired);
  JoiningThread waiter([&] {
    auto w =
        b->AcquireLock("e2e", "fenced", absl::Seconds(30), absl::Seconds(20));
    ASSERT_TRUE(w.ok() && w->acquired) << w.status();
    EXPECT_GT(w->fencing_token, lock->fencing_token);
    EXPECT_LT(w->waited, absl::Seconds(10));
  });
  EXPECT_TRUE(fleet->WaitForWaiters("e2e", 1)) << "B's caller never waited";
  client::SetOptions fenced;
  fenced.lock_token = "not-my-token";
  EXPECT_FALSE(a->Set("e2e", "fenced", "x", fenced)->stored);
  fenced.lock_token = lock->token;
  fenced.release_lock = true;
  EXPECT_TRUE(a->Set("e2e", "fenced", "x", fenced)->stored);
  waiter.join();
}

TEST(LocksE2E, RenewAndReleaseNeedTheToken) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  auto c = fleet->ClientFor(0);
  auto lock =
      c->AcquireLock("e2e", "k", absl::Seconds(2), absl::ZeroDuration());
  ASSERT_TRUE(lock->acquired);
  EXPECT_FALSE(c->RenewLock("e2e", "k", "bogus", absl::Seconds(5))->renewed);
  auto renewed = c->RenewLock("e2e", "k", lock->token, absl::Seconds(5));
  ASSERT_TRUE(renewed.ok() && renewed->renewed);
  EXPECT_GT(renewed->expires_at, lock->expires_at);
  EXPECT_FALSE(c->ReleaseLock("e2e", "k", "bogus")->released);
  EXPECT_TRUE(c->ReleaseLock("e2e", "k", lock->token)->released);
  EXPECT_FALSE(c->ReleaseLock("e2e", "k", lock->token)->released);
}

TEST(LocksE2E, RedisKilledAndRestartedWhileCallsAreInFlight) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  client::ClientOptions options;
  options.default_timeout = absl::Seconds(5);
  options.retry.max_attempts = 1;  // See the outage as it is.
  client::Client c(fleet->replica(0).target(), options);
  ASSERT_TRUE(c.Set("e2e", "k", "v").ok());

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, other{0};
  std::vector<JoiningThread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      while (!stop) {
        auto r = c.Get("e2e", "k");
        if (r.ok()) {
          ++ok;
        } else if (absl::IsUnavailable(r.status()) &&
                   client::ReasonOf(r.status()) == "store-unavailable") {
          ++unavailable;
        } else {
          ++other;
          ADD_FAILURE() << r.status();
        }
        absl::SleepFor(absl::Milliseconds(5));  // Paces the load.
      }
    });
  }
  // However the test ends (an ASSERT included), the load stops before the
  // threads are joined: a failure, never a hang.
  absl::Cleanup stop_load = [&stop] { stop = true; };
  EXPECT_TRUE(PollUntil([&] { return ok.load() > 0; })) << "no load served";
  fleet->redis().Kill();
  // The outage is seen: calls fail with store-unavailable.
  EXPECT_TRUE(
      PollUntil([&] { return unavailable.load() > 0; }, absl::Seconds(10)));
  const int unavailable_during = unavailable.load();
  ASSERT_TRUE(fleet->redis().Restart().ok());
  // Service resumes without restarting corrald.
  const bool resumed = PollUntil([&] { return c.Set("e2e", "k2", "v2").ok(); },
                                 absl::Seconds(10));
  std::move(stop_load).Invoke();
  for (auto& t : load) t.join();
  EXPECT_TRUE(resumed);
  EXPECT_GT(unavailable_during, 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_TRUE(fleet->replica(0).Running());
  EXPECT_EQ(*c.Get("e2e", "k2")->value.value.data(), 'v');
}

TEST(LocksE2E, CorralctlSpeaksToCorrald) {
  auto fleet = Fleet::Start(1, /*embedded=*/true);
  ASSERT_NE(fleet, nullptr);
  CorraldProcess& d = fleet->replica(0);
  auto health = d.Corralctl({"health"});
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->exit_code, 0) << health->stderr_text;

  auto miss = d.Corralctl({"get", "plant_id", "rose"});
  EXPECT_EQ(miss->exit_code, 1);
  EXPECT_EQ(
      d.Corralctl({"set", "plant_id", "rose", "Rosa canina", "--ttl", "1h"})
          ->exit_code,
      0);
  auto hit = d.Corralctl({"get", "plant_id", "rose"});
  EXPECT_EQ(hit->exit_code, 0);
  EXPECT_EQ(hit->stdout_text, "Rosa canina");

  auto bad = d.Corralctl({"get", "bad namespace", "rose"});
  EXPECT_EQ(bad->exit_code, 3);
  EXPECT_THAT(bad->stderr_text, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(d.Corralctl({"frobnicate"})->exit_code, 2);

  auto acquired =
      d.Corralctl({"lock", "acquire", "jobs", "nightly", "--ttl", "30s"});
  ASSERT_EQ(acquired->exit_code, 0) << acquired->stderr_text;
  EXPECT_THAT(acquired->stdout_text, HasSubstr("token="));
  EXPECT_EQ(d.Corralctl({"lock", "acquire", "jobs", "nightly", "--wait", "0s"})
                ->exit_code,
            1);

  auto computed = d.Corralctl(
      {"get-or-compute", "jobs", "report", "--exec", "echo -n built"});
  EXPECT_EQ(computed->exit_code, 0) << computed->stderr_text;
  EXPECT_EQ(computed->stdout_text, "built");
  auto cached = d.Corralctl(
      {"get-or-compute", "jobs", "report", "--exec", "echo -n again"});
  EXPECT_EQ(cached->stdout_text, "built");
  auto failing =
      d.Corralctl({"get-or-compute", "jobs", "broken", "--exec", "exit 7"});
  EXPECT_NE(failing->exit_code, 0);
}

}  // namespace
}  // namespace corral::testing
