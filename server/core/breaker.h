// The circuit breaker's state machine, as pure functions over a snapshot.
//
// The snapshot is what the fleet shares (through the store, as an encoded
// string with a version); every replica applies these same functions to it,
// so the rules live in one place whichever store holds the state.
//
//   CLOSED --(consecutive failures, or failure/slow rate over the window)-->
//   OPEN OPEN --(open_duration passed; a compute asks)--> HALF_OPEN HALF_OPEN:
//   at most half_open_probes computes fleet-wide;
//              a success closes it, a failure re-opens it.
#ifndef CORRAL_SERVER_CORE_BREAKER_H_
#define CORRAL_SERVER_CORE_BREAKER_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/namespace_config.h"

namespace corral {

// Mirrors corral.v1.BreakerState.
enum class BreakerState { kClosed = 1, kOpen = 2, kHalfOpen = 3 };
absl::string_view BreakerStateName(BreakerState state);  // "closed", ...

// What a compute reported.
enum class ComputeOutcome { kSuccess, kSlowSuccess, kFailure };

struct BreakerSnapshot {
  // The sliding window is kBuckets buckets of window/kBuckets each.
  static constexpr int kBuckets = 10;
  struct Bucket {
    int64_t id = -1;  // Which window slice it counts (now / width); -1: none.
    uint32_t successes = 0;
    uint32_t failures = 0;
    uint32_t slow = 0;
  };

  BreakerState state = BreakerState::kClosed;
  absl::Time since = absl::UnixEpoch();  // When `state` was entered.
  uint32_t consecutive_failures = 0;
  uint32_t probes_granted = 0;  // In HALF_OPEN.
  std::array<Bucket, kBuckets> buckets;

  // Compact text form stored by the stores; Decode rejects what Encode
  // would not produce.
  std::string Encode() const;
  static absl::StatusOr<BreakerSnapshot> Decode(absl::string_view text);

  // Outcomes inside the window ending at `now`.
  struct Totals {
    uint64_t successes = 0, failures = 0, slow = 0;
  };
  Totals InWindow(const BreakerSettings& settings, absl::Time now) const;
};

struct BreakerDecision {
  enum Kind {
    kAllow,      // CLOSED: compute.
    kNeedProbe,  // HALF_OPEN (or OPEN past open_duration): take a probe permit.
    kReject,     // OPEN, or no probe permit left: fail fast.
  };
  Kind kind;
  absl::Duration retry_after;  // With kReject.
};

// What the snapshot says about a compute starting now. Pure.
BreakerDecision Admit(const BreakerSnapshot& snapshot,
                      const BreakerSettings& settings, absl::Time now);

// Takes a probe permit: moves OPEN past its duration to HALF_OPEN, then
// grants a permit if one is left. Returns false (snapshot unchanged) when
// none is. Pure apart from `snapshot`.
bool TakeProbe(BreakerSnapshot& snapshot, const BreakerSettings& settings,
               absl::Time now);

// Applies one outcome; returns whether the state changed. Pure apart from
// `snapshot`.
bool RecordOutcome(BreakerSnapshot& snapshot, const BreakerSettings& settings,
                   ComputeOutcome outcome, absl::Time now);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_BREAKER_H_
