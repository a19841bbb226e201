// One unary call with the client's retry policy. Internal to the library.
#ifndef CORRAL_CLIENT_CPP_CALL_H_
#define CORRAL_CLIENT_CPP_CALL_H_

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cpp/errors.h"
#include "client/cpp/retry.h"

namespace corral::client::internal {

// An infinite deadline is left unset: gRPC's own default is "none".
inline void SetDeadline(grpc::ClientContext& context, absl::Time deadline) {
  if (deadline != absl::InfiniteFuture()) {
    context.set_deadline(absl::ToChronoTime(deadline));
  }
}

// For calls that must not run twice (AcquireLock, ReleaseLock, a fenced
// Set): a transport error cannot tell whether the first attempt reached the
// server, and a retried acquire would strand a lock until its TTL.
inline RetryPolicy Once(RetryPolicy policy) {
  policy.max_attempts = 1;
  return policy;
}

// Starts one unary call through the callback API, `start(context, response,
// on_done)` (e.g. stub.async()->Get(context, &request, response,
// std::move(on_done))), and blocks until gRPC calls `on_done`. The generated
// blocking stub would be simpler but costs about a third more per call when
// many threads call at once (tests/bench/RESULTS.md, issue 19): each
// blocking call makes a completion queue of its own and its thread takes a
// turn polling the channel's sockets, so callers hand answers to each other;
// here gRPC's threads poll and each caller wakes once, for its own answer.
// The call ends (and `on_done` runs) by the context's deadline at the latest.
template <typename Response, typename Start>
grpc::Status WaitForUnary(grpc::ClientContext* context, Response* response,
                          Start& start) {
  absl::Notification done;
  grpc::Status status;
  start(context, response, [&status, &done](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

// Runs one unary call (`start` as for WaitForUnary) with a fresh context per
// attempt until it succeeds or the failure is not retryable.
template <typename Response, typename Start>
absl::StatusOr<Response> CallWithRetries(const RetryPolicy& policy,
                                         absl::Time deadline, Start&& start) {
  RetryState retry(policy, deadline);
  while (true) {
    grpc::ClientContext context;
    SetDeadline(context, deadline);
    Response response;
    const grpc::Status grpc_status = WaitForUnary(&context, &response, start);
    if (grpc_status.ok()) return response;
    // Only a failure reads the trailers (corral-reason, retry-after-ms):
    // copying them out of the call costs on every answer otherwise.
    absl::Status status =
        StatusFromGrpc(grpc_status, context.GetServerTrailingMetadata());
    std::optional<absl::Duration> delay =
        retry.NextDelay(status, /*compute_ran=*/false, absl::Now());
    if (!delay) return status;
    absl::SleepFor(*delay);
  }
}

}  // namespace corral::client::internal

#endif  // CORRAL_CLIENT_CPP_CALL_H_
