// The breaker's rules with a fake clock: no sleeping for windows or
// open durations.
#include "server/core/breaker.h"

#include "gtest/gtest.h"
#include "server/core/clock.h"

namespace corral {
namespace {

class BreakerTest : public ::testing::Test {
 protected:
  bool Record(ComputeOutcome o) {
    return RecordOutcome(snap_, settings_, o, clock_.Now());
  }
  BreakerDecision Decide() { return Admit(snap_, settings_, clock_.Now()); }

  FakeClock clock_;
  BreakerSettings settings_;  // Defaults: 5 consecutive, 50 % of >= 20 in 60 s.
  BreakerSnapshot snap_;
};

TEST_F(BreakerTest, TripsOnConsecutiveFailures) {
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(Record(ComputeOutcome::kFailure));
  EXPECT_EQ(Decide().kind, BreakerDecision::kAllow);
  EXPECT_TRUE(Record(ComputeOutcome::kFailure));
  EXPECT_EQ(snap_.state, BreakerState::kOpen);
  BreakerDecision d = Decide();
  EXPECT_EQ(d.kind, BreakerDecision::kReject);
  EXPECT_EQ(d.retry_after, absl::Seconds(60));
}

TEST_F(BreakerTest, ASuccessResetsTheConsecutiveCount) {
  for (int i = 0; i < 4; ++i) Record(ComputeOutcome::kFailure);
  Record(ComputeOutcome::kSuccess);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(Record(ComputeOutcome::kFailure));
  EXPECT_EQ(snap_.state, BreakerState::kClosed);
}

TEST_F(BreakerTest, TripsOnFailureRateOnlyWithEnoughCalls) {
  settings_.consecutive_failures = 0;  // Rate rule only.
  for (int i = 0; i < 9; ++i) {
    Record(ComputeOutcome::kSuccess);
    Record(ComputeOutcome::kFailure);
  }
  EXPECT_EQ(snap_.state, BreakerState::kClosed) << "18 calls < minimum 20";
  Record(ComputeOutcome::kSuccess);
  EXPECT_TRUE(Record(ComputeOutcome::kFailure));  // 10 of 20 = 50 %.
  EXPECT_EQ(snap_.state, BreakerState::kOpen);
}

TEST_F(BreakerTest, OldOutcomesLeaveTheWindow) {
  settings_.consecutive_failures = 0;
  for (int i = 0; i < 19; ++i) Record(ComputeOutcome::kFailure);
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(snap_.InWindow(settings_, clock_.Now()).failures, 0u);
  EXPECT_FALSE(Record(ComputeOutcome::kFailure));
  EXPECT_EQ(snap_.state, BreakerState::kClosed);
}

TEST_F(BreakerTest, SlowCallsCanTripIt) {
  settings_.slow_call_rate = 0.5;
  settings_.minimum_calls = 4;
  Record(ComputeOutcome::kSuccess);
  Record(ComputeOutcome::kSlowSuccess);
  Record(ComputeOutcome::kSuccess);
  EXPECT_TRUE(Record(ComputeOutcome::kSlowSuccess));
  EXPECT_EQ(snap_.state, BreakerState::kOpen);
}

TEST_F(BreakerTest, HalfOpenAdmitsTheConfiguredProbesThenCloses) {
  settings_.half_open_probes = 2;
  for (int i = 0; i < 5; ++i) Record(ComputeOutcome::kFailure);
  clock_.Advance(absl::Seconds(59));
  EXPECT_FALSE(TakeProbe(snap_, settings_, clock_.Now()));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Decide().kind, BreakerDecision::kNeedProbe);
  EXPECT_TRUE(TakeProbe(snap_, settings_, clock_.Now()));
  EXPECT_EQ(snap_.state, BreakerState::kHalfOpen);
  EXPECT_TRUE(TakeProbe(snap_, settings_, clock_.Now()));
  EXPECT_FALSE(TakeProbe(snap_, settings_, clock_.Now()));
  EXPECT_EQ(Decide().kind, BreakerDecision::kReject);
  EXPECT_TRUE(Record(ComputeOutcome::kSuccess));
  EXPECT_EQ(snap_.state, BreakerState::kClosed);
  EXPECT_EQ(Decide().kind, BreakerDecision::kAllow);
}

TEST_F(BreakerTest, HalfOpenFailureReopens) {
  for (int i = 0; i < 5; ++i) Record(ComputeOutcome::kFailure);
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(TakeProbe(snap_, settings_, clock_.Now()));
  EXPECT_TRUE(Record(ComputeOutcome::kFailure));
  EXPECT_EQ(snap_.state, BreakerState::kOpen);
  EXPECT_EQ(snap_.since, clock_.Now());
}

TEST_F(BreakerTest, LostProbesAreRenewedAfterOpenDuration) {
  for (int i = 0; i < 5; ++i) Record(ComputeOutcome::kFailure);
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(TakeProbe(snap_, settings_, clock_.Now()));
  EXPECT_FALSE(TakeProbe(snap_, settings_, clock_.Now()));
  clock_.Advance(absl::Seconds(60));  // The probe never reported.
  EXPECT_TRUE(TakeProbe(snap_, settings_, clock_.Now()));
}

TEST_F(BreakerTest, EncodeDecodeRoundTrips) {
  for (int i = 0; i < 3; ++i) Record(ComputeOutcome::kFailure);
  Record(ComputeOutcome::kSlowSuccess);
  auto decoded = BreakerSnapshot::Decode(snap_.Encode());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->Encode(), snap_.Encode());
  EXPECT_FALSE(BreakerSnapshot::Decode("garbage").ok());
  EXPECT_FALSE(BreakerSnapshot::Decode("v1 9 0 0 0").ok());
}

}  // namespace
}  // namespace corral
