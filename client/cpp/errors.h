// How a failed corral call says *why*, beyond the status code.
//
// The server puts `corral-reason` (and, for an open breaker or a spent compute
// budget, `retry-after-ms`)
// in the trailing metadata. The client keeps them as absl::Status payloads so
// that callers branch on plain absl::Status values. The payload type URLs
// match server/core/errors.cc, so the same ReasonOf works on both sides.
#ifndef CORRAL_CLIENT_CPP_ERRORS_H_
#define CORRAL_CLIENT_CPP_ERRORS_H_

#include <grpcpp/support/status.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace corral::client {

// Reason strings the server sends (part of the API contract).
inline constexpr absl::string_view kReasonBreakerOpen = "breaker-open";
inline constexpr absl::string_view kReasonPeerComputeFailed =
    "peer-compute-failed";
inline constexpr absl::string_view kReasonStoreUnavailable =
    "store-unavailable";
inline constexpr absl::string_view kReasonShuttingDown = "shutting-down";
inline constexpr absl::string_view kReasonWaitTimeout = "wait-timeout";
// RESOURCE_EXHAUSTED: the namespace's compute budget held the compute back
// for the caller's whole wait; RetryAfterOf says when to come back.
inline constexpr absl::string_view kReasonComputeBudget = "compute-budget";

// Metadata keys of the trailers.
inline constexpr absl::string_view kReasonTrailer = "corral-reason";
inline constexpr absl::string_view kRetryAfterTrailer = "retry-after-ms";

using Trailers = std::multimap<grpc::string_ref, grpc::string_ref>;

// Converts a finished call's status and trailing metadata. Codes map 1:1
// (both follow google.rpc.Code); the reason and retry hint become payloads.
// An OK status yields OK whatever the trailers say.
absl::Status StatusFromGrpc(const grpc::Status& status,
                            const Trailers& trailers);

// The `corral-reason` of a status, or "" when it has none.
std::string ReasonOf(const absl::Status& status);
// The server's `retry-after-ms` hint, when it sent one.
std::optional<absl::Duration> RetryAfterOf(const absl::Status& status);

// Attach them (for fakes and for statuses the client makes itself).
absl::Status WithReason(absl::Status status, absl::string_view reason);
absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after);

// "UNAVAILABLE: breaker open (corral-reason: breaker-open, retry after 1.5s)"
std::string DescribeStatus(const absl::Status& status);

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_ERRORS_H_
