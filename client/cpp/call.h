// One unary call with the client's retry policy. Internal to the library.
#ifndef CORRAL_CLIENT_CPP_CALL_H_
#define CORRAL_CLIENT_CPP_CALL_H_

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/support/async_unary_call.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <optional>
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

// The calling thread's completion queue for its blocking unary calls. A
// thread has at most one call in flight on it (the call blocks), so Next()
// returns that call's tag. The queue lives until the thread ends, when
// grpc::CompletionQueue's destructor shuts it down (nothing is pending then).
inline grpc::CompletionQueue& ThreadCompletionQueue() {
  thread_local grpc::CompletionQueue cq;
  return cq;
}

// Starts one unary call with `start(context, cq)` (e.g.
// stub.PrepareAsyncGet(context, request, cq)) and blocks until it ends: at
// the context's deadline at the latest.
//
// Why not the generated blocking stub: it makes and tears down a completion
// queue per call. Why not the callback API and a wait: gRPC's threads then
// poll and wake every caller, which cost about 1.3x the client CPU per call.
// With 64 threads on one Client this ran 1.0-1.2x the stub's rate at about
// the same CPU per call (tests/bench/RESULTS.md, issue 19, 2026-12-05).
template <typename Response, typename Start>
grpc::Status WaitForUnary(grpc::ClientContext* context, Response* response,
                          Start& start) {
  grpc::CompletionQueue& cq = ThreadCompletionQueue();
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> call =
      start(context, &cq);
  grpc::Status status;
  call->StartCall();
  call->Finish(response, &status, &status);
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok) || tag != &status) {
    // Only a queue shut down under a live thread, or a foreign tag on it,
    // gets here: a bug, not a network failure.
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "corral client: the thread's completion queue returned "
                        "an unexpected event");
  }
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
