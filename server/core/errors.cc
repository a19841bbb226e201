#include "server/core/errors.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace corral {
namespace {
constexpr absl::string_view kReasonPayload = "corral.dev/reason";
constexpr absl::string_view kRetryAfterPayload = "corral.dev/retry-after-ms";
}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after) {
  status.SetPayload(kRetryAfterPayload,
                    absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(
                        std::max(retry_after, absl::ZeroDuration())))));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  return payload ? std::string(*payload) : std::string();
}

std::optional<absl::Duration> RetryAfterOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t ms = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &ms)) {
    return std::nullopt;
  }
  return absl::Milliseconds(ms);
}

absl::Status StoreUnavailable(absl::string_view detail) {
  return WithReason(
      absl::UnavailableError(absl::StrCat("store unavailable: ", detail)),
      kReasonStoreUnavailable);
}

absl::Status InvalidField(absl::string_view field, absl::string_view problem) {
  return WithReason(
      absl::InvalidArgumentError(absl::StrCat(field, ": ", problem)),
      kReasonInvalidArgument);
}

absl::Status ComputeBudgetExhausted(absl::string_view detail,
                                    absl::Duration retry_after) {
  return WithRetryAfter(
      WithReason(absl::ResourceExhaustedError(absl::StrCat(
                     "the namespace's compute budget is spent: ", detail)),
                 kReasonComputeBudget),
      retry_after);
}

absl::Status PeerComputeFailed() {
  return WithReason(
      absl::UnavailableError(
          "the caller computing this value reported an upstream failure"),
      kReasonPeerComputeFailed);
}

absl::Status ProtocolError(absl::string_view what) {
  return WithReason(absl::InvalidArgumentError(what), kReasonInvalidArgument);
}

absl::Status BreakerOpen(absl::Duration retry_after) {
  return WithRetryAfter(WithReason(absl::UnavailableError(
                                       "the circuit breaker for this namespace "
                                       "is open: its upstream is failing"),
                                   kReasonBreakerOpen),
                        retry_after);
}

absl::Status TooManyWaiters(absl::string_view what, uint32_t limit) {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat("too many callers waiting ",
                                                what, " (limit ", limit, ")")),
      kReasonTooManyWaiters);
}

absl::Status ShuttingDown() {
  return WithReason(absl::UnavailableError("corrald is shutting down"),
                    kReasonShuttingDown);
}

}  // namespace corral
