// How the core says *why* a call failed, beyond the status code.
//
// The reason travels as an absl::Status payload; the gRPC layer turns it into
// the `corral-reason` trailing metadata (and `retry-after-ms`). Keeping it in
// the status means core functions stay plain absl::Status producers.
#ifndef CORRAL_SERVER_CORE_ERRORS_H_
#define CORRAL_SERVER_CORE_ERRORS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace corral {

// Reason strings: part of the API contract (clients branch on them).
inline constexpr absl::string_view kReasonStoreUnavailable =
    "store-unavailable";
inline constexpr absl::string_view kReasonBreakerOpen = "breaker-open";
inline constexpr absl::string_view kReasonPeerComputeFailed =
    "peer-compute-failed";
inline constexpr absl::string_view kReasonWaitTimeout = "wait-timeout";
inline constexpr absl::string_view kReasonInvalidArgument = "invalid-argument";
inline constexpr absl::string_view kReasonTooManyWaiters = "too-many-waiters";
inline constexpr absl::string_view kReasonTooManyNamespaces =
    "too-many-namespaces";
inline constexpr absl::string_view kReasonUnknownNamespace =
    "unknown-namespace";
inline constexpr absl::string_view kReasonShuttingDown = "shutting-down";
inline constexpr absl::string_view kReasonComputeBudget = "compute-budget";
inline constexpr absl::string_view kReasonUnauthenticated = "unauthenticated";
inline constexpr absl::string_view kReasonPermissionDenied =
    "permission-denied";

// Returns `status` with the corral reason attached.
absl::Status WithReason(absl::Status status, absl::string_view reason);
// Returns `status` with a retry hint attached.
absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after);

// The attached reason, or "" when there is none.
std::string ReasonOf(const absl::Status& status);
std::optional<absl::Duration> RetryAfterOf(const absl::Status& status);

// Shorthands for the errors the core produces most.
absl::Status StoreUnavailable(absl::string_view detail);
absl::Status InvalidField(absl::string_view field, absl::string_view problem);
// RESOURCE_EXHAUSTED compute-budget: the namespace's compute budget held the
// grant back for the caller's whole wait; retry-after-ms says when the
// budget would next admit one (as last seen).
absl::Status ComputeBudgetExhausted(absl::string_view detail,
                                    absl::Duration retry_after);

// The coordination core's own errors (section 2 of docs/ARCHITECTURE.md).
// What waiters get when the caller computing their key reports an upstream
// failure, and what callers get while that failure is remembered.
absl::Status PeerComputeFailed();
// A GetOrCompute stream broke the protocol (INVALID_ARGUMENT).
absl::Status ProtocolError(absl::string_view what);
// The namespace's circuit breaker refuses a compute.
absl::Status BreakerOpen(absl::Duration retry_after);
// A waiter limit (limits.max_waiters, max_waiters_per_key) is reached.
absl::Status TooManyWaiters(absl::string_view what, uint32_t limit);
absl::Status ShuttingDown();

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_ERRORS_H_
