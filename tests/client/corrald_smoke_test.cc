// The client library, LockGuard and corralctl against a real corrald
// (embedded store). Skipped when corrald has not been built.
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "client/cpp/corral_client.h"
#include "client/cpp/lock_guard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/corrald_process.h"
#include "tests/support/status_matchers.h"

namespace corral::client {
namespace {

using ::corral::testing::CorraldProcess;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::StatusIs;

class CorraldSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(testing::CorraldPath().c_str(), X_OK) != 0) {
      GTEST_SKIP() << "no corrald at " << testing::CorraldPath();
    }
    auto corrald = CorraldProcess::Start();
    ASSERT_OK(corrald);
    corrald_ = *std::move(corrald);
    EXPECT_EQ(corrald_->store(), "embedded");
    client_ = std::make_unique<Client>(corrald_->target());
  }

  void TearDown() override {
    client_.reset();
    if (corrald_) {
      EXPECT_THAT(corrald_->Terminate(), IsOkAndHolds(0)) << corrald_->Log();
    }
  }

  std::unique_ptr<CorraldProcess> corrald_;
  std::unique_ptr<Client> client_;
};

TEST_F(CorraldSmokeTest, HealthAndCache) {
  EXPECT_THAT(client_->CheckHealth(), IsOkAndHolds(HealthStatus::kServing));
  auto miss = client_->Get("smoke", "k");
  ASSERT_OK(miss);
  EXPECT_FALSE(miss->found);
  SetOptions set;
  set.ttl = absl::Seconds(30);
  auto stored = client_->Set("smoke", "k", std::string("v\0x", 3), set);
  ASSERT_OK(stored);
  EXPECT_TRUE(stored->stored);
  auto hit = client_->Get("smoke", "k");
  ASSERT_OK(hit);
  EXPECT_TRUE(hit->found);
  EXPECT_EQ(hit->value.value, std::string("v\0x", 3));
  EXPECT_THAT(client_->Get("bad namespace!", "k"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CorraldSmokeTest, OneComputeForManyCallers) {
  constexpr int kCallers = 8;
  std::atomic<int> computes{0};
  std::vector<absl::StatusOr<GetOrComputeResult>> results(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = client_->GetOrCompute("smoke", "stampede", [&] {
        ++computes;
        absl::SleepFor(absl::Milliseconds(300));
        return absl::StatusOr<std::string>("expensive");
      });
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(computes.load(), 1);
  int computed = 0;
  for (const auto& r : results) {
    ASSERT_OK(r);
    EXPECT_EQ(r->value, "expensive");
    if (r->computed) {
      ++computed;
      EXPECT_TRUE(r->stored);
      EXPECT_EQ(r->lease_mode, LeaseMode::kLocked);
    }
  }
  EXPECT_EQ(computed, 1);
}

TEST_F(CorraldSmokeTest, ComputeErrorIsReturnedAndNothingIsCached) {
  auto failed = client_->GetOrCompute("smoke", "fails", [] {
    return absl::StatusOr<std::string>(absl::UnavailableError("api down"));
  });
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(failed.status().message(), "api down");
  auto after = client_->Get("smoke", "fails");
  ASSERT_OK(after);
  EXPECT_FALSE(after->found);
}

TEST_F(CorraldSmokeTest, LockGuardAndFencedSet) {
  auto guard =
      LockGuard::Acquire(*client_, "smoke", "locked", absl::Seconds(3));
  ASSERT_OK(guard);
  EXPECT_GT(guard->fencing_token(), 0u);
  auto other = client_->AcquireLock("smoke", "locked", absl::Seconds(3),
                                    absl::ZeroDuration());
  ASSERT_OK(other);
  EXPECT_FALSE(other->acquired);

  SetOptions set;
  set.lock_token = guard->token();
  auto stored = client_->Set("smoke", "locked", "under lock", set);
  ASSERT_OK(stored);
  EXPECT_TRUE(stored->stored);
  EXPECT_THAT(guard->Release(Outcome::kSuccess), IsOkAndHolds(true));
  EXPECT_FALSE(guard->lost());
}

TEST_F(CorraldSmokeTest, Corralctl) {
  auto set = corrald_->Corralctl({"set", "smoke", "ctl", "-"}, "from stdin");
  ASSERT_OK(set);
  EXPECT_EQ(set->exit_code, 0) << set->stderr_text;
  auto get = corrald_->Corralctl({"get", "smoke", "ctl"});
  ASSERT_OK(get);
  EXPECT_EQ(get->exit_code, 0) << get->stderr_text;
  EXPECT_EQ(get->stdout_text, "from stdin");
  auto computed = corrald_->Corralctl(
      {"get-or-compute", "smoke", "ctl2", "--exec", "printf computed"});
  ASSERT_OK(computed);
  EXPECT_EQ(computed->exit_code, 0) << computed->stderr_text;
  EXPECT_EQ(computed->stdout_text, "computed");
  auto missing = corrald_->Corralctl({"get", "smoke", "nope"});
  ASSERT_OK(missing);
  EXPECT_EQ(missing->exit_code, 1);
}

}  // namespace
}  // namespace corral::client
