// Helpers shared by the Coordinator's source files (not part of its API).
#ifndef CORRAL_SERVER_CORE_COORDINATOR_INTERNAL_H_
#define CORRAL_SERVER_CORE_COORDINATOR_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/errors.h"
#include "server/core/types.h"
#include "server/core/validation.h"

namespace corral::coordinator_internal {

inline absl::string_view ModeLabel(LeaseMode mode) {
  switch (mode) {
    case LeaseMode::kLocked:
      return "locked";
    case LeaseMode::kUnlockedTimeout:
      return "unlocked_timeout";
    case LeaseMode::kUnlockedDegraded:
      return "unlocked_degraded";
    case LeaseMode::kRefresh:
      return "refresh";
  }
  return "unknown";
}

// Whether a lease of this mode holds the key's fleet-wide lock (renewed
// while the stream is open, released by the fenced fill or an abandon).
inline bool HoldsLock(LeaseMode mode) {
  return mode == LeaseMode::kLocked || mode == LeaseMode::kRefresh;
}

// What waiters get when the caller computing their key reports an upstream
// failure, and what callers get while that failure is remembered.
inline absl::Status PeerComputeFailed() {
  return WithReason(
      absl::UnavailableError(
          "the caller computing this value reported an upstream failure"),
      kReasonPeerComputeFailed);
}

inline absl::Status ProtocolError(absl::string_view what) {
  return WithReason(absl::InvalidArgumentError(what), kReasonInvalidArgument);
}

inline absl::Status BreakerOpen(absl::Duration retry_after) {
  return WithRetryAfter(WithReason(absl::UnavailableError(
                                       "the circuit breaker for this namespace "
                                       "is open: its upstream is failing"),
                                   kReasonBreakerOpen),
                        retry_after);
}

inline absl::Status TooManyWaiters(absl::string_view what, uint32_t limit) {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat("too many callers waiting ",
                                                what, " (limit ", limit, ")")),
      kReasonTooManyWaiters);
}

inline absl::Status ShuttingDown() {
  return WithReason(absl::UnavailableError("corrald is shutting down"),
                    kReasonShuttingDown);
}

// ` name="value"` for a log line (a caller's worker_id or lock owner,
// already validated: no control characters), or nothing when it is empty.
inline std::string CallerField(absl::string_view name,
                               absl::string_view value) {
  if (value.empty()) return "";
  return absl::StrCat(" ", name, "=\"", absl::CEscape(value), "\"");
}

// Validates namespace and key, the first thing every request checks.
inline absl::Status ValidateKeyFields(const CacheKey& key) {
  if (absl::Status s = ValidateNamespace("namespace", key.ns); !s.ok())
    return s;
  return ValidateKey("key", key.key);
}

}  // namespace corral::coordinator_internal

#endif  // CORRAL_SERVER_CORE_COORDINATOR_INTERNAL_H_
