#include "client/cpp/retry.h"

#include <algorithm>
#include <cmath>

#include "absl/random/distributions.h"
#include "client/cpp/errors.h"

namespace corral::client {

bool IsRetryable(const absl::Status& status, bool compute_ran) {
  if (compute_ran || status.code() != absl::StatusCode::kUnavailable) {
    return false;
  }
  const std::string reason = ReasonOf(status);
  return reason.empty() || reason == kReasonShuttingDown;
}

absl::Duration BackoffDelay(const RetryPolicy& policy, int retry,
                            double random01) {
  // Capping the exponent keeps pow() finite; the cap below does the rest.
  const double factor =
      std::pow(std::max(policy.multiplier, 1.0), std::min(retry, 62));
  absl::Duration delay =
      std::min(policy.max_backoff, policy.initial_backoff * factor);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double r = std::clamp(random01, 0.0, 1.0);
  return std::max(absl::ZeroDuration(), delay * (1.0 - jitter * r));
}

RetryState::RetryState(const RetryPolicy& policy, absl::Time deadline,
                       absl::AnyInvocable<double()> random01)
    : policy_(policy), deadline_(deadline), random01_(std::move(random01)) {}

std::optional<absl::Duration> RetryState::NextDelay(const absl::Status& status,
                                                    bool compute_ran,
                                                    absl::Time now) {
  if (!IsRetryable(status, compute_ran)) return std::nullopt;
  if (attempts_ >= policy_.max_attempts) return std::nullopt;
  absl::Duration delay = BackoffDelay(policy_, attempts_ - 1, Random01());
  // An attempt that starts at the deadline cannot succeed; returning the
  // transport error now is more useful than a DEADLINE_EXCEEDED later.
  if (now + delay >= deadline_) return std::nullopt;
  ++attempts_;
  return delay;
}

double RetryState::Random01() {
  if (random01_) return random01_();
  if (!bitgen_) bitgen_.emplace();
  return absl::Uniform<double>(*bitgen_, 0.0, 1.0);
}

}  // namespace corral::client
