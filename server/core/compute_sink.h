// What the core answers a GetOrCompute stream through (implemented by the
// gRPC layer's reactor, server/rpc/compute_reactor.cc).
#ifndef CORRAL_SERVER_CORE_COMPUTE_SINK_H_
#define CORRAL_SERVER_CORE_COMPUTE_SINK_H_

#include "absl/status/status.h"
#include "server/core/types.h"

namespace corral {

// The coordinator's side of one GetOrCompute stream. Implemented by the gRPC
// layer. Called on the loop thread; must not block. After a terminal call
// (SendValue, SendFilled, Finish) no other call follows.
class ComputeSink {
 public:
  virtual ~ComputeSink() = default;
  virtual void SendValue(ValueView value) = 0;     // Terminal: call ends OK.
  virtual void SendLease(LeaseView lease) = 0;     // The caller computes.
  virtual void SendFilled(FilledView filled) = 0;  // Terminal: call ends OK.
  virtual void Finish(absl::Status status) = 0;    // Terminal.
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_COMPUTE_SINK_H_
