#include "client/cpp/lock_guard.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_corral.h"
#include "tests/support/poll.h"
#include "tests/support/status_matchers.h"

namespace corral::client {
namespace {

using ::corral::testing::FakeCorralServer;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::PollUntil;
using ::corral::testing::Recorder;
using ::corral::testing::StatusIs;
using ::testing::HasSubstr;

class LockGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.acquire_lock = [this](grpc::ServerContext*,
                                const v1::AcquireLockRequest& req,
                                v1::AcquireLockResponse* resp) {
      resp->set_acquired(grant_);
      if (grant_) {
        resp->set_token(absl::StrCat("tok-", req.key()));
        resp->set_fencing_token(11);
        resp->mutable_expires_at()->set_seconds(2000000000);
      }
      return grpc::Status::OK;
    };
    fake_.renew_lock = [this](grpc::ServerContext*,
                              const v1::RenewLockRequest& req,
                              v1::RenewLockResponse* resp) {
      renews_.Add(req);
      resp->set_renewed(keep_renewing_);
      resp->mutable_expires_at()->set_seconds(2000000100);
      return grpc::Status::OK;
    };
    fake_.release_lock = [this](grpc::ServerContext*,
                                const v1::ReleaseLockRequest& req,
                                v1::ReleaseLockResponse* resp) {
      releases_.Add(req);
      resp->set_released(true);
      return grpc::Status::OK;
    };
  }

  FakeCorralServer server_;
  testing::FakeCorral& fake_ = server_.service();
  Client client_{server_.target()};
  std::atomic<bool> grant_{true};
  std::atomic<bool> keep_renewing_{true};
  Recorder<v1::RenewLockRequest> renews_;
  Recorder<v1::ReleaseLockRequest> releases_;
};

TEST_F(LockGuardTest, RenewsInTheBackgroundAndReleasesOnDestruction) {
  {
    LockGuardOptions options;
    options.renew_every = absl::Milliseconds(10);
    auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Seconds(3),
                                    absl::Seconds(1), std::move(options));
    ASSERT_OK(guard);
    EXPECT_EQ(guard->token(), "tok-k");
    EXPECT_EQ(guard->fencing_token(), 11u);
    ASSERT_TRUE(PollUntil([&] { return renews_.Get().size() >= 3; },
                          absl::Seconds(10)));
    EXPECT_EQ(renews_.Get()[0].token(), "tok-k");
    EXPECT_EQ(renews_.Get()[0].ttl().seconds(), 3);
    EXPECT_FALSE(guard->lost());
    EXPECT_EQ(guard->expires_at(), absl::FromUnixSeconds(2000000100));
  }
  ASSERT_EQ(releases_.Get().size(), 1u);
  EXPECT_EQ(releases_.Get()[0].token(), "tok-k");
  EXPECT_EQ(releases_.Get()[0].outcome(), v1::OUTCOME_UNSPECIFIED);
}

TEST_F(LockGuardTest, ExplicitReleaseWithOutcome) {
  auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Seconds(30));
  ASSERT_OK(guard);
  EXPECT_THAT(guard->Release(Outcome::kSuccess), IsOkAndHolds(true));
  EXPECT_THAT(guard->Release(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_EQ(releases_.Get().size(), 1u);
  EXPECT_EQ(releases_.Get()[0].outcome(), v1::OUTCOME_SUCCESS);
}

TEST_F(LockGuardTest, NotAcquiredIsDeadlineExceeded) {
  grant_ = false;
  auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Seconds(30),
                                  absl::ZeroDuration());
  EXPECT_THAT(guard, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(guard.status().message(), HasSubstr("lock not acquired within"));
  EXPECT_THAT(LockGuard::Acquire(client_, "ns", "k", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(LockGuardTest, NotRenewedMeansLost) {
  keep_renewing_ = false;
  absl::Notification lost;
  LockGuardOptions options;
  options.renew_every = absl::Milliseconds(10);
  options.on_lost = [&] { lost.Notify(); };
  auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Seconds(30),
                                  std::nullopt, std::move(options));
  ASSERT_OK(guard);
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(guard->lost());
  // Renewal stopped at the refusal: once Release has joined the renewal
  // thread, the refused renewal is the only one ever sent.
  EXPECT_THAT(guard->Release(), IsOkAndHolds(true));
  EXPECT_EQ(renews_.Get().size(), 1u);
}

TEST_F(LockGuardTest, FailingRenewalsAreRetriedWhileTheLockHasNotExpired) {
  fake_.renew_lock = [this](grpc::ServerContext*,
                            const v1::RenewLockRequest& req,
                            v1::RenewLockResponse*) {
    renews_.Add(req);
    return grpc::Status(grpc::StatusCode::INTERNAL, "store exploded");
  };
  LockGuardOptions options;
  options.renew_every = absl::Milliseconds(10);
  // Far from expiry however slow the machine: failures alone lose nothing.
  auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Seconds(600),
                                  std::nullopt, std::move(options));
  ASSERT_OK(guard);
  ASSERT_TRUE(
      PollUntil([&] { return renews_.Get().size() >= 3; }, absl::Seconds(10)));
  EXPECT_FALSE(guard->lost());
}

TEST_F(LockGuardTest, FailingRenewalsPastExpiryMeanLost) {
  fake_.renew_lock = [this](grpc::ServerContext*,
                            const v1::RenewLockRequest& req,
                            v1::RenewLockResponse*) {
    renews_.Add(req);
    return grpc::Status(grpc::StatusCode::INTERNAL, "store exploded");
  };
  absl::Notification lost;
  LockGuardOptions options;
  options.renew_every = absl::Milliseconds(20);
  options.on_lost = [&] { lost.Notify(); };
  auto guard = LockGuard::Acquire(client_, "ns", "k", absl::Milliseconds(100),
                                  std::nullopt, std::move(options));
  ASSERT_OK(guard);
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(guard->lost());
  EXPECT_GE(renews_.Get().size(), 1u);  // It tried before giving up.
}

TEST_F(LockGuardTest, MovesTransferOwnership) {
  auto first = LockGuard::Acquire(client_, "ns", "a", absl::Seconds(30));
  ASSERT_OK(first);
  LockGuard moved = std::move(*first);
  EXPECT_EQ(moved.token(), "tok-a");
  EXPECT_EQ(first->token(), "");  // NOLINT: checking the moved-from state.
  auto second = LockGuard::Acquire(client_, "ns", "b", absl::Seconds(30));
  ASSERT_OK(second);
  moved = std::move(*second);  // Releases "a" first.
  ASSERT_EQ(releases_.Get().size(), 1u);
  EXPECT_EQ(releases_.Get()[0].token(), "tok-a");
  EXPECT_EQ(moved.token(), "tok-b");
}

}  // namespace
}  // namespace corral::client
