#include "server/rpc/compute_reactor.h"

#include <utility>

#include "absl/time/clock.h"
#include "server/core/errors.h"
#include "server/rpc/convert.h"
#include "server/rpc/lookup_auth.h"
#include "server/rpc/wire.h"

namespace corral::rpc {

using corral::v1::GetOrComputeRequest;
using corral::v1::GetOrComputeResponse;

// The Coordinator's view of this stream. It outlives the reactor (the
// session may still hold it), so it forwards only while the reactor lives.
// gRPC may run OnDone inline from a Finish that Forward started; the reactor
// is then deleted here, once Forward is done with it.
class ComputeReactor::Sink final : public ComputeSink {
 public:
  explicit Sink(ComputeReactor* reactor) : reactor_(reactor) {}

  // From OnDone. True when the caller deletes the reactor now; false when a
  // Forward in progress will.
  bool Detach() {
    absl::MutexLock lock(&mu_);
    ComputeReactor* reactor = reactor_;
    reactor_ = nullptr;
    if (busy_ > 0) {
      orphan_ = reactor;
      return false;
    }
    return true;
  }

  void SendValue(ValueView value) override {
    Forward(EncodeValueResponse(value), absl::OkStatus());
  }
  void SendLease(LeaseView lease) override {
    GetOrComputeResponse r;
    ToProto(lease, r.mutable_lease());
    Forward(EncodeResponse(r), std::nullopt);
  }
  void SendFilled(FilledView filled) override {
    GetOrComputeResponse r;
    ToProto(filled, r.mutable_filled());
    Forward(EncodeResponse(r), absl::OkStatus());
  }
  void Finish(absl::Status status) override {
    Forward(std::nullopt, std::move(status));
  }

 private:
  void Forward(std::optional<grpc::ByteBuffer> r,
               std::optional<absl::Status> finish) {
    ComputeReactor* reactor;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ == nullptr) return;
      reactor = reactor_;
      ++busy_;
    }
    reactor->Send(std::move(r), std::move(finish));
    ComputeReactor* orphan = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (--busy_ == 0) std::swap(orphan, orphan_);
    }
    delete orphan;
  }

  absl::Mutex mu_;
  ComputeReactor* reactor_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  ComputeReactor* orphan_ ABSL_GUARDED_BY(mu_) = nullptr;
};

ComputeReactor::ComputeReactor(grpc::CallbackServerContext* ctx,
                               Coordinator& coordinator, Metrics& metrics,
                               const CallAuthorizer& auth)
    : ctx_(ctx),
      coordinator_(coordinator),
      metrics_(metrics),
      auth_(auth),
      started_(absl::Now()),
      sink_(std::make_shared<Sink>(this)) {
  StartRead(&reading_);
}

Coordinator::CallId ComputeReactor::Session() {
  Coordinator::CallId id = id_.load(std::memory_order_acquire);
  if (id == 0) {
    id = coordinator_.StartCompute(sink_);
    id_.store(id, std::memory_order_release);
  }
  return id;
}

void ComputeReactor::Gone() {
  // OnDone runs after every other reaction, so a session started by
  // OnReadDone is seen there at the latest.
  if (Coordinator::CallId id = id_.load(std::memory_order_acquire); id != 0) {
    coordinator_.ComputeGone(id);
  }
}

void ComputeReactor::OnReadDone(bool ok) {
  if (!ok) {
    // Half-close, or the call is over.
    coordinator_.ComputeHalfClosed(Session());
    return;
  }
  // Decoded into a local and the buffer emptied: a waiter keeps nothing of
  // its request for the whole wait (0.7 KiB per waiter,
  // tests/bench/RESULTS.md).
  GetOrComputeRequest request;
  absl::Status decoded = DecodeRequest(reading_, &request);
  reading_.Clear();
  if (!decoded.ok()) {
    Gone();
    return Send(std::nullopt, WithReason(decoded, kReasonInvalidArgument));
  }
  switch (request.msg_case()) {
    case GetOrComputeRequest::kLookup: {
      const auto& in = request.lookup();
      if (!AuthorizeLookup(auth_, *ctx_, coordinator_,
                           CacheKey{in.namespace_(), in.key()}, sink_)) {
        Gone();  // Answered there, without a session.
        return;
      }
      auto ttl = DurationField("lookup.ttl", in.has_ttl(), in.ttl());
      auto wait = DurationField("lookup.wait_timeout", in.has_wait_timeout(),
                                in.wait_timeout());
      auto lease =
          DurationField("lookup.lease_ttl", in.has_lease_ttl(), in.lease_ttl());
      for (const absl::Status& s :
           {ttl.status(), wait.status(), lease.status()}) {
        if (!s.ok()) {
          Gone();
          return Send(std::nullopt, s);
        }
      }
      LookupRequest lookup;
      lookup.key = CacheKey{in.namespace_(), in.key()};
      lookup.ttl = *ttl;
      lookup.wait_timeout = *wait;
      lookup.lease_ttl = *lease;
      lookup.allow_stale = in.allow_stale();
      lookup.worker_id = in.worker_id();
      lookup.deadline = DeadlineOf(*ctx_);
      if (in.has_refresh_due_for())
        lookup.refresh_due_for = TimeOf(in.refresh_due_for());
      const Coordinator::CallId id = coordinator_.Lookup(
          id_.load(std::memory_order_acquire), sink_, std::move(lookup));
      if (id == 0) return;  // Answered from the read cache and finished.
      id_.store(id, std::memory_order_release);
      break;
    }
    case GetOrComputeRequest::kFill: {
      auto ttl = DurationField("fill.ttl", request.fill().has_ttl(),
                               request.fill().ttl());
      if (!ttl.ok()) {
        Gone();
        return Send(std::nullopt, ttl.status());
      }
      FillRequest fill;
      fill.value = std::move(*request.mutable_fill()->mutable_value());
      fill.ttl = *ttl;
      coordinator_.ComputeFill(Session(), std::move(fill));
      break;
    }
    case GetOrComputeRequest::kAbandon:
      coordinator_.ComputeAbandon(
          Session(), AbandonRequest{request.abandon().reason(),
                                    request.abandon().upstream_failure()});
      break;
    default:
      Gone();
      return Send(
          std::nullopt,
          InvalidField(
              "msg", "a GetOrComputeRequest must set lookup, fill or abandon"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (finish_.has_value()) return;  // The call is ending; read no more.
  }
  StartRead(&reading_);
}

void ComputeReactor::Send(std::optional<grpc::ByteBuffer> response,
                          std::optional<absl::Status> finish) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_.has_value()) return;  // Already ending: one end per call.
    if (response.has_value()) writes_.push_back(*std::move(response));
    if (finish.has_value()) {
      grpc::Status status = ToGrpcStatus(*finish, ctx_);
      final_code_ = status.error_code();
      finish_ = std::move(status);
    }
  }
  Drive();
}

void ComputeReactor::Drive() {
  enum { kNothing, kWrite, kWriteAndFinish, kFinish } action = kNothing;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (write_in_flight_ || finish_started_) return;
    if (!writes_.empty()) {
      writing_ = std::move(writes_.front());
      writes_.erase(writes_.begin());
      if (writes_.empty() && finish_.has_value()) {
        action = kWriteAndFinish;
        finish_started_ = true;
        status = *finish_;
      } else {
        action = kWrite;
        write_in_flight_ = true;
      }
    } else if (finish_.has_value()) {
      action = kFinish;
      finish_started_ = true;
      status = *finish_;
    }
  }
  switch (action) {
    case kWrite:
      StartWrite(&writing_);
      break;
    case kWriteAndFinish:
      StartWriteAndFinish(&writing_, grpc::WriteOptions(), status);
      break;
    case kFinish:
      Finish(status);
      break;
    case kNothing:
      break;
  }
}

void ComputeReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok && !finish_.has_value()) {
      // The client is gone; the session abandons its lease (if any).
      writes_.clear();
      finish_ = grpc::Status(grpc::CANCELLED, "client went away");
      final_code_ = grpc::CANCELLED;
    }
  }
  if (!ok) Gone();
  Drive();
}

void ComputeReactor::OnCancel() {
  Gone();
  Send(std::nullopt, absl::CancelledError("cancelled by the client"));
}

void ComputeReactor::OnDone() {
  Gone();
  grpc::StatusCode code;
  {
    absl::MutexLock lock(&mu_);
    code = final_code_;
  }
  metrics_.OnRpc("GetOrCompute", CodeName(code), absl::Now() - started_);
  if (sink_->Detach()) delete this;
}

}  // namespace corral::rpc
