// One GetOrCompute stream: reads the client's messages and hands them to the
// Coordinator's session; writes what the session sends back, in order. Raw
// bytes on both sides (server/rpc/wire.h): a value is sent from the copy all
// its waiters share.
#ifndef CORRAL_SERVER_RPC_COMPUTE_REACTOR_H_
#define CORRAL_SERVER_RPC_COMPUTE_REACTOR_H_

#include <atomic>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "corral/v1/corral.grpc.pb.h"
#include "server/core/coordinator.h"
#include "server/metrics/metrics.h"
#include "server/rpc/call_auth.h"

namespace corral::rpc {

class ComputeReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Starts reading; deletes itself in OnDone.
  ComputeReactor(grpc::CallbackServerContext* ctx, Coordinator& coordinator,
                 Metrics& metrics, const CallAuthorizer& auth);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Queues a response, and the end of the call after it when `finish` is
  // set. Anything after the end is dropped. Any thread.
  void Send(std::optional<grpc::ByteBuffer> response,
            std::optional<absl::Status> finish);

 private:
  class Sink;
  // Starts the next write or the finish, outside the mutex (gRPC may run a
  // reaction inline).
  void Drive();
  // The coordinator's session for this stream, started on first need (a
  // hit from the read cache needs none). Reaction threads only.
  Coordinator::CallId Session();
  // Tells the coordinator the call is over, if it has a session.
  void Gone();

  grpc::CallbackServerContext* const ctx_;
  Coordinator& coordinator_;
  Metrics& metrics_;
  const CallAuthorizer& auth_;
  const absl::Time started_;
  std::shared_ptr<Sink> sink_;
  // 0 until Session(); read by OnCancel, which may run concurrently.
  std::atomic<Coordinator::CallId> id_{0};
  grpc::ByteBuffer
      reading_;  // Owned by the pending read; emptied once decoded.

  absl::Mutex mu_;
  // At most a lease and a filled/value are ever queued: no heap for them.
  absl::InlinedVector<grpc::ByteBuffer, 2> writes_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer writing_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  grpc::StatusCode final_code_ ABSL_GUARDED_BY(mu_) = grpc::OK;
};

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_COMPUTE_REACTOR_H_
