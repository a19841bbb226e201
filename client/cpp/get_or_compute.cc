// Client::GetOrCompute: the client side of the exchange in docs/ARCHITECTURE.md
// §2.
//
// One attempt is one bidi stream: Lookup, then either Value (done) or Lease
// (run compute, then Fill/Filled or Abandon). Only an attempt that failed
// before compute ran is retried; after that the upstream has been called and
// a retry could call it again.
#include <grpcpp/client_context.h>

#include <exception>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cpp/call.h"
#include "client/cpp/convert.h"
#include "client/cpp/corral_client.h"
#include "client/cpp/flight_group.h"
#include "client/cpp/near_cache.h"

namespace corral::client {
namespace {

using Request = corral::v1::GetOrComputeRequest;
using Response = corral::v1::GetOrComputeResponse;
using Stream = grpc::ClientReaderWriterInterface<Request, Response>;

// Abandon reasons are for the server's logs; keep them bounded.
constexpr size_t kMaxAbandonReasonBytes = 512;

// Told of a lease before compute runs (in-process single flight: a
// refresh's current value goes to the other callers at once).
using LeaseHook = std::function<void(const corral::v1::Lease&)>;

struct AttemptResult {
  absl::StatusOr<GetOrComputeResult> result;
  bool compute_ran = false;
};

// Ends the call: drains what the server still sends (so that Finish does not
// wait on unread messages) and converts the final status.
absl::Status FinishCall(grpc::ClientContext& context, Stream& stream) {
  Response ignored;
  while (stream.Read(&ignored)) {
  }
  const grpc::Status status = stream.Finish();
  return StatusFromGrpc(status, context.GetServerTrailingMetadata());
}

void SendAbandon(Stream& stream, absl::string_view reason,
                 bool upstream_failure) {
  Request request;
  corral::v1::Abandon* abandon = request.mutable_abandon();
  abandon->set_reason(std::string(reason.substr(0, kMaxAbandonReasonBytes)));
  abandon->set_upstream_failure(upstream_failure);
  // A failed write means the call is already over; Finish reports why.
  stream.Write(request);
  stream.WritesDone();
}

GetOrComputeResult FromValue(const corral::v1::Value& value) {
  CachedValue cached = internal::ValueFromProto(value);
  GetOrComputeResult result;
  result.value = std::move(cached.value);
  result.source = cached.source;
  result.stale = cached.stale;
  result.age = cached.age;
  result.ttl_remaining = cached.ttl_remaining;
  return result;
}

// This caller holds `lease`: compute, then Fill or Abandon.
AttemptResult RunLease(grpc::ClientContext& context, Stream& stream,
                       const corral::v1::Lease& lease, ComputeFn& compute,
                       const std::optional<absl::Duration>& ttl,
                       const LeaseHook& on_lease) {
  if (on_lease) on_lease(lease);
  GetOrComputeResult result;
  result.computed = true;
  result.lease_mode = internal::LeaseModeFromProto(lease.mode());
  result.fencing_token = lease.fencing_token();

  absl::StatusOr<std::string> computed = absl::UnknownError("not computed");
  try {
    computed = compute();
  } catch (...) {
    // The user's exception is theirs to handle; the server only needs to
    // know that the upstream call failed, and the stream must end first.
    std::exception_ptr thrown = std::current_exception();
    SendAbandon(stream, "compute threw an exception",
                /*upstream_failure=*/true);
    FinishCall(context, stream).IgnoreError();
    std::rethrow_exception(thrown);
  }

  if (!computed.ok()) {
    SendAbandon(stream, computed.status().ToString(),
                /*upstream_failure=*/true);
    FinishCall(context, stream).IgnoreError();
    if (result.lease_mode == LeaseMode::kRefresh) {
      // The value being refreshed is still worth serving.
      result.value = lease.current_value();
      result.source = Source::kStale;
      result.stale = true;
      result.refresh_error = computed.status();
      return {std::move(result), true};
    }
    return {computed.status(), true};
  }

  result.value = *std::move(computed);
  result.source = Source::kComputed;
  Request fill;
  fill.mutable_fill()->set_value(result.value);
  if (ttl)
    *fill.mutable_fill()->mutable_ttl() = internal::DurationToProto(*ttl);
  Response response;
  if (!stream.Write(fill) || !stream.Read(&response)) {
    // The value is good even if the cache did not take it.
    result.not_stored_reason = DescribeStatus(FinishCall(context, stream));
    return {std::move(result), true};
  }
  if (!response.has_filled()) {
    context.TryCancel();
    FinishCall(context, stream).IgnoreError();
    result.not_stored_reason =
        absl::StrCat("unexpected response to Fill (case ",
                     static_cast<int>(response.msg_case()), ")");
    return {std::move(result), true};
  }
  result.stored = response.filled().stored();
  result.not_stored_reason = response.filled().reason();
  if (response.filled().fencing_token() != 0) {
    result.fencing_token = response.filled().fencing_token();
  }
  stream.WritesDone();
  FinishCall(context, stream).IgnoreError();
  return {std::move(result), true};
}

AttemptResult RunAttempt(corral::v1::Corral::Stub& stub, const Request& lookup,
                         ComputeFn& compute, absl::Time deadline,
                         const std::optional<absl::Duration>& ttl,
                         const LeaseHook& on_lease) {
  grpc::ClientContext context;
  internal::SetDeadline(context, deadline);
  std::unique_ptr<Stream> stream = stub.GetOrCompute(&context);
  Response response;
  if (!stream->Write(lookup) || !stream->Read(&response)) {
    absl::Status status = FinishCall(context, *stream);
    if (status.ok()) {
      // The server must answer a Lookup; an OK end without one is a bug.
      status = absl::InternalError("corral ended GetOrCompute without a reply");
    }
    return {status, false};
  }
  switch (response.msg_case()) {
    case Response::kValue: {
      stream->WritesDone();
      // We hold the value; how the server then ends the call is moot.
      FinishCall(context, *stream).IgnoreError();
      return {FromValue(response.value()), false};
    }
    case Response::kLease:
      return RunLease(context, *stream, response.lease(), compute, ttl,
                      on_lease);
    default:
      context.TryCancel();
      FinishCall(context, *stream).IgnoreError();
      return {absl::InternalError(
                  absl::StrCat("corral answered Lookup with message case ",
                               static_cast<int>(response.msg_case()))),
              false};
  }
}

}  // namespace

absl::StatusOr<GetOrComputeResult> Client::GetOrCompute(
    absl::string_view ns, absl::string_view key, ComputeFn compute,
    const GetOrComputeOptions& options) {
  const absl::Time deadline = DeadlineFor(options.timeout);
  if (options.near_cache && near_ != nullptr) {
    if (std::optional<CachedValue> hit = near_->Find(ns, key)) {
      GetOrComputeResult result;
      result.value = std::move(hit->value);
      result.source = Source::kNearCache;
      result.age = hit->age;
      result.ttl_remaining = hit->ttl_remaining;
      result.attempts = 0;
      return result;
    }
  }
  if (!options.single_flight)
    return GetOrComputeRemote(ns, key, compute, options, deadline, nullptr);
  // Callers that would be answered alike share a flight.
  const std::string flight_key =
      absl::StrCat(ns.size(), ":", ns, options.allow_stale ? "s" : "f", key);
  while (true) {
    bool leader = false;
    std::shared_ptr<internal::FlightGroup::Flight> flight =
        flights_->Join(flight_key, &leader);
    if (leader) {
      absl::StatusOr<GetOrComputeResult> result = absl::UnknownError("not run");
      // A refresh lease: the others get the current value now, as the
      // server would serve them, instead of waiting for this compute.
      bool published = false;
      auto share_current = [&](const GetOrComputeResult& current) {
        flights_->Publish(flight_key, flight, current);
        published = true;
      };
      try {
        result = GetOrComputeRemote(ns, key, compute, options, deadline,
                                    share_current);
      } catch (...) {
        if (!published) {
          flights_->Publish(
              flight_key, flight,
              absl::UnknownError("the compute of another caller of this key "
                                 "in this process threw an exception"));
        }
        throw;
      }
      if (!published) flights_->Publish(flight_key, flight, result);
      return result;
    }
    std::optional<absl::StatusOr<GetOrComputeResult>> shared =
        flight->Wait(deadline);
    if (!shared.has_value()) {
      // This caller's own deadline; the shared call goes on for the others.
      return absl::DeadlineExceededError(
          "timed out waiting for another GetOrCompute of this key in this "
          "process");
    }
    if (!shared->ok() &&
        (absl::IsDeadlineExceeded(shared->status()) ||
         absl::IsCancelled(shared->status())) &&
        absl::Now() < deadline) {
      continue;  // The leader's own deadline, not this caller's: go again.
    }
    shared_calls_.fetch_add(1, std::memory_order_relaxed);
    if (!shared->ok()) return shared->status();
    GetOrComputeResult result = **std::move(shared);
    result.shared = true;
    if (result.computed) {
      // Another caller computed it: for this one it is a peer's fill.
      result.computed = false;
      result.source = Source::kPeerFill;
      result.lease_mode = LeaseMode::kNone;
    }
    return result;
  }
}

absl::StatusOr<GetOrComputeResult> Client::GetOrComputeRemote(
    absl::string_view ns, absl::string_view key, ComputeFn& compute,
    const GetOrComputeOptions& options, absl::Time deadline,
    const std::function<void(const GetOrComputeResult&)>& share_current) {
  Request request;
  corral::v1::Lookup* lookup = request.mutable_lookup();
  // One unary Get first: a hit costs no stream. The server draws XFetch
  // for it; a "refresh" goes to the stream, which does not draw again.
  absl::StatusOr<corral::v1::GetResponse> got = GetRemote(
      ns, key, options.near_cache, /*draw_early_refresh=*/true, deadline);
  if (got.ok() && got->found()) {
    if (!got->has_refresh_due_for()) {
      GetOrComputeResult result = FromValue(got->value());
      result.attempts = 1;
      return result;
    }
    *lookup->mutable_refresh_due_for() = got->refresh_due_for();
  }
  // A failed Get (store down, ...) is not the answer: the stream's Lookup
  // has the last word (it may coordinate locally, serve stale, ...).
  lookup->set_namespace_(std::string(ns));
  lookup->set_key(std::string(key));
  // Unset fields mean the namespace default, so only set what was given.
  if (options.ttl)
    *lookup->mutable_ttl() = internal::DurationToProto(*options.ttl);
  if (options.wait_timeout) {
    *lookup->mutable_wait_timeout() =
        internal::DurationToProto(*options.wait_timeout);
  }
  if (options.lease_ttl) {
    *lookup->mutable_lease_ttl() =
        internal::DurationToProto(*options.lease_ttl);
  }
  lookup->set_allow_stale(options.allow_stale);
  lookup->set_worker_id(options.worker_id.empty() ? options_.worker_id
                                                  : options.worker_id);

  // An early refresh (the Get found the value fresh) or a stale one.
  const bool early = lookup->has_refresh_due_for();
  LeaseHook on_lease;
  if (share_current) {
    on_lease = [&](const corral::v1::Lease& lease) {
      if (lease.mode() != corral::v1::LEASE_MODE_REFRESH) return;
      GetOrComputeResult current;
      current.value = lease.current_value();
      current.source = early ? Source::kCache : Source::kStale;
      current.stale = !early;
      share_current(current);
    };
  }
  RetryState retry(options_.retry, deadline);
  while (true) {
    streams_.fetch_add(1, std::memory_order_relaxed);
    AttemptResult attempt =
        RunAttempt(*stub_, request, compute, deadline, options.ttl, on_lease);
    if (attempt.result.ok()) {
      attempt.result->attempts = retry.attempts();
      return std::move(attempt.result);
    }
    std::optional<absl::Duration> delay = retry.NextDelay(
        attempt.result.status(), attempt.compute_ran, absl::Now());
    if (!delay) return attempt.result.status();
    absl::SleepFor(*delay);
  }
}

}  // namespace corral::client
