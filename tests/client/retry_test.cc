#include "client/cpp/retry.h"

#include "client/cpp/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace corral::client {
namespace {

using ::testing::Optional;

absl::Status Transport() {
  return absl::UnavailableError("failed to connect to all addresses");
}
absl::Status WithCorralReason(absl::string_view reason) {
  return WithReason(absl::UnavailableError("x"), reason);
}

TEST(IsRetryableTest, OnlyTransportUnavailableBeforeCompute) {
  EXPECT_TRUE(IsRetryable(Transport(), /*compute_ran=*/false));
  EXPECT_TRUE(IsRetryable(WithCorralReason(kReasonShuttingDown), false));

  // Answers about the upstream or the store are final.
  EXPECT_FALSE(IsRetryable(WithCorralReason(kReasonBreakerOpen), false));
  EXPECT_FALSE(IsRetryable(WithCorralReason(kReasonPeerComputeFailed), false));
  EXPECT_FALSE(IsRetryable(WithCorralReason(kReasonStoreUnavailable), false));

  // Once compute ran, never.
  EXPECT_FALSE(IsRetryable(Transport(), /*compute_ran=*/true));
  EXPECT_FALSE(IsRetryable(WithCorralReason(kReasonShuttingDown), true));

  for (absl::Status other :
       {absl::DeadlineExceededError("x"), absl::InvalidArgumentError("x"),
        absl::ResourceExhaustedError("x"), absl::NotFoundError("x"),
        absl::InternalError("x"), absl::CancelledError("x"),
        absl::UnauthenticatedError("x"), absl::OkStatus()}) {
    EXPECT_FALSE(IsRetryable(other, false)) << other;
  }
}

TEST(BackoffDelayTest, DoublesFromInitialUpToMax) {
  RetryPolicy policy;  // 50 ms -> 1 s, x2.
  EXPECT_EQ(BackoffDelay(policy, 0, 0.0), absl::Milliseconds(50));
  EXPECT_EQ(BackoffDelay(policy, 1, 0.0), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(policy, 2, 0.0), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(policy, 4, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(policy, 5, 0.0), absl::Seconds(1));
  EXPECT_EQ(BackoffDelay(policy, 1000, 0.0), absl::Seconds(1));
}

TEST(BackoffDelayTest, JitterShortensByAtMostTheJitterFraction) {
  RetryPolicy policy;
  policy.jitter = 0.2;
  EXPECT_EQ(BackoffDelay(policy, 1, 0.5), absl::Milliseconds(90));
  EXPECT_GT(BackoffDelay(policy, 1, 0.999999), absl::Milliseconds(80));
  policy.jitter = 0;
  EXPECT_EQ(BackoffDelay(policy, 1, 0.7), absl::Milliseconds(100));
}

TEST(RetryStateTest, StopsAfterMaxAttempts) {
  RetryPolicy policy;
  policy.max_attempts = 3;
  const absl::Time now = absl::FromUnixSeconds(1000);
  RetryState state(policy, now + absl::Hours(1), [] { return 0.0; });
  EXPECT_EQ(state.attempts(), 1);
  EXPECT_THAT(state.NextDelay(Transport(), false, now),
              Optional(absl::Milliseconds(50)));
  EXPECT_EQ(state.attempts(), 2);
  EXPECT_THAT(state.NextDelay(Transport(), false, now),
              Optional(absl::Milliseconds(100)));
  EXPECT_EQ(state.attempts(), 3);
  EXPECT_EQ(state.NextDelay(Transport(), false, now), std::nullopt);
  EXPECT_EQ(state.attempts(), 3);
}

TEST(RetryStateTest, StopsWhenTheDeadlineWouldPass) {
  RetryPolicy policy;
  const absl::Time now = absl::FromUnixSeconds(1000);
  RetryState state(policy, now + absl::Milliseconds(120), [] { return 0.0; });
  EXPECT_THAT(state.NextDelay(Transport(), false, now),
              Optional(absl::Milliseconds(50)));
  // Next delay is 100 ms; at now+60ms that ends past the deadline.
  EXPECT_EQ(state.NextDelay(Transport(), false, now + absl::Milliseconds(60)),
            std::nullopt);
}

TEST(RetryStateTest, NeverRetriesNonRetryableOrAfterCompute) {
  RetryState state(RetryPolicy{}, absl::InfiniteFuture(), [] { return 0.0; });
  EXPECT_EQ(
      state.NextDelay(WithCorralReason(kReasonBreakerOpen), false, absl::Now()),
      std::nullopt);
  EXPECT_EQ(state.NextDelay(Transport(), /*compute_ran=*/true, absl::Now()),
            std::nullopt);
  EXPECT_EQ(state.attempts(), 1);
}

TEST(RetryStateTest, MaxAttemptsOneDisablesRetries) {
  RetryPolicy policy;
  policy.max_attempts = 1;
  RetryState state(policy, absl::InfiniteFuture());
  EXPECT_EQ(state.NextDelay(Transport(), false, absl::Now()), std::nullopt);
}

TEST(RetryStateTest, DefaultRandomStaysWithinJitterBounds) {
  RetryPolicy policy;
  for (int i = 0; i < 50; ++i) {
    RetryState state(policy, absl::InfiniteFuture());
    std::optional<absl::Duration> d =
        state.NextDelay(Transport(), false, absl::Now());
    ASSERT_TRUE(d.has_value());
    EXPECT_GE(*d, absl::Milliseconds(40));
    EXPECT_LE(*d, absl::Milliseconds(50));
  }
}

}  // namespace
}  // namespace corral::client
