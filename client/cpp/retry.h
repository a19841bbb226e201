// When and how soon the client retries a failed attempt.
//
// Only failures that say nothing about the key are retried: UNAVAILABLE from
// the transport (no corral-reason: the connection failed or dropped) and a
// replica that is shutting down. breaker-open, peer-compute-failed and
// store-unavailable are answers about the upstream or the store, so retrying
// them would only add load. A GetOrCompute whose compute already ran is never
// retried: the upstream was called once, and a retry could call it again.
#ifndef CORRAL_CLIENT_CPP_RETRY_H_
#define CORRAL_CLIENT_CPP_RETRY_H_

#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace corral::client {

struct RetryPolicy {
  // Attempts per call, the first one included; 1 disables retries. The call's
  // deadline bounds them as well.
  int max_attempts = 8;
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  double multiplier = 2.0;
  // Each delay is scaled by a random factor in [1 - jitter, 1], so clients
  // that failed together do not come back together.
  double jitter = 0.2;
};

// Whether a failed attempt may be retried (see the file comment).
bool IsRetryable(const absl::Status& status, bool compute_ran);

// The delay before retry number `retry` (0 for the first retry):
// min(max_backoff, initial_backoff * multiplier^retry), jittered by
// `random01` in [0, 1).
absl::Duration BackoffDelay(const RetryPolicy& policy, int retry,
                            double random01);

// The attempts of one call. Not thread-safe: one per call.
class RetryState {
 public:
  // `random01` returns values in [0, 1); unset uses absl::BitGen. Tests pass
  // a fixed one so that delays are exact.
  RetryState(const RetryPolicy& policy, absl::Time deadline,
             absl::AnyInvocable<double()> random01 = nullptr);

  // After attempt number attempts() failed with `status` at `now`: how long
  // to wait before the next attempt, or nullopt to give up (not retryable,
  // attempts used up, or the deadline would pass before the next attempt).
  std::optional<absl::Duration> NextDelay(const absl::Status& status,
                                          bool compute_ran, absl::Time now);

  // Attempts started so far (1 before any retry).
  int attempts() const { return attempts_; }

 private:
  double Random01();

  RetryPolicy policy_;
  absl::Time deadline_;
  absl::AnyInvocable<double()> random01_;
  std::optional<absl::BitGen> bitgen_;  // Seeded only when first needed.
  int attempts_ = 1;
};

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_RETRY_H_
