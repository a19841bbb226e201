// XFetch's test alone (server/core/early_refresh.h): no clock, no draw of
// its own; the draw `u` is an argument.
#include "server/core/early_refresh.h"

#include <cmath>

#include "gtest/gtest.h"

namespace corral {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// A value that took `compute` to make and expires `left` from now.
StoredValue Expiring(absl::Duration left, absl::Duration compute) {
  return StoredValue{"v", kNow - absl::Minutes(1), kNow + left, compute};
}

TEST(EarlyRefreshTest, OffWithoutBetaOrComputeTime) {
  const StoredValue value = Expiring(absl::Milliseconds(1), absl::Seconds(1));
  EXPECT_FALSE(EarlyRefreshDue(kNow, 0.0, value, 1e-9));
  EXPECT_FALSE(EarlyRefreshDue(kNow, -1.0, value, 1e-9));
  EXPECT_FALSE(EarlyRefreshDue(
      kNow, 1.0, Expiring(absl::Milliseconds(1), absl::ZeroDuration()), 1e-9));
}

TEST(EarlyRefreshTest, TheHeadStartIsComputeTimeTimesBetaTimesMinusLnU) {
  // u = e^-1: a head start of exactly compute_time * beta = 2 s.
  const double u = std::exp(-1.0);
  const absl::Duration compute = absl::Seconds(1);
  EXPECT_TRUE(
      EarlyRefreshDue(kNow, 2.0, Expiring(absl::Seconds(2), compute), u));
  EXPECT_FALSE(EarlyRefreshDue(
      kNow, 2.0, Expiring(absl::Seconds(2) + absl::Milliseconds(10), compute),
      u));
}

TEST(EarlyRefreshTest, ADrawOfOneNeverRefreshesAFreshValue) {
  // ln(1) = 0: no head start, so only an expired value would qualify.
  EXPECT_FALSE(EarlyRefreshDue(
      kNow, 10.0, Expiring(absl::Milliseconds(1), absl::Hours(1)), 1.0));
}

TEST(EarlyRefreshTest, ATinyDrawRefreshesLongBeforeExpiry) {
  EXPECT_TRUE(EarlyRefreshDue(
      kNow, 1.0, Expiring(absl::Minutes(10), absl::Seconds(30)), 1e-12));
}

}  // namespace
}  // namespace corral
