// One unary call with the client's retry policy. Internal to the library.
#ifndef CORRAL_CLIENT_CPP_CALL_H_
#define CORRAL_CLIENT_CPP_CALL_H_

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <utility>

#include "absl/status/statusor.h"
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

// Runs `rpc(grpc::ClientContext*, Response*) -> grpc::Status` with a fresh
// context per attempt until it succeeds or the failure is not retryable.
template <typename Response, typename Rpc>
absl::StatusOr<Response> CallWithRetries(const RetryPolicy& policy,
                                         absl::Time deadline, Rpc&& rpc) {
  RetryState retry(policy, deadline);
  while (true) {
    grpc::ClientContext context;
    SetDeadline(context, deadline);
    Response response;
    const grpc::Status grpc_status = rpc(&context, &response);
    absl::Status status =
        StatusFromGrpc(grpc_status, context.GetServerTrailingMetadata());
    if (status.ok()) return response;
    std::optional<absl::Duration> delay =
        retry.NextDelay(status, /*compute_ran=*/false, absl::Now());
    if (!delay) return status;
    absl::SleepFor(*delay);
  }
}

}  // namespace corral::client::internal

#endif  // CORRAL_CLIENT_CPP_CALL_H_
