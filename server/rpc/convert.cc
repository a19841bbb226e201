#include "server/rpc/convert.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/errors.h"

namespace corral::rpc {

absl::StatusOr<std::optional<absl::Duration>> DurationField(
    absl::string_view field, bool has, const google::protobuf::Duration& d) {
  if (!has) return std::optional<absl::Duration>();
  const int64_t s = d.seconds();
  const int32_t n = d.nanos();
  if (n <= -1'000'000'000 || n >= 1'000'000'000 || (s > 0 && n < 0) ||
      (s < 0 && n > 0) || s > 315'576'000'000 || s < -315'576'000'000) {
    return InvalidField(field, "is not a valid google.protobuf.Duration");
  }
  return std::optional<absl::Duration>(absl::Seconds(s) + absl::Nanoseconds(n));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const timespec ts = absl::ToTimespec(t);
  out->set_seconds(ts.tv_sec);
  out->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  const int64_t nanos = std::clamp<int64_t>(t.nanos(), 0, 999999999);
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(nanos);
}

void ToProto(const ValueView& v, corral::v1::Value* out) {
  out->set_value(v.bytes());
  out->set_source(static_cast<corral::v1::Source>(v.source));
  ToProto(v.age, out->mutable_age());
  ToProto(v.ttl_remaining, out->mutable_ttl_remaining());
  out->set_stale(v.stale);
}

void ToProto(const LeaseView& v, corral::v1::Lease* out) {
  out->set_fencing_token(v.fencing_token);
  ToProto(v.deadline, out->mutable_deadline());
  out->set_mode(static_cast<corral::v1::LeaseMode>(v.mode));
  out->set_current_value(v.current_value);
}

void ToProto(const FilledView& v, corral::v1::Filled* out) {
  out->set_stored(v.stored);
  out->set_fencing_token(v.fencing_token);
  out->set_reason(v.reason);
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& ctx) {
  auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  // gRPC reports "no deadline" as a time far in the future; so does absl.
  return absl::FromChrono(deadline);
}

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* ctx) {
  if (status.ok()) return grpc::Status::OK;
  std::string reason = ReasonOf(status);
  if (!reason.empty()) ctx->AddTrailingMetadata("corral-reason", reason);
  if (auto retry = RetryAfterOf(status)) {
    ctx->AddTrailingMetadata("retry-after-ms",
                             absl::StrCat(absl::ToInt64Milliseconds(*retry)));
  }
  // absl's codes match google.rpc.Code, and so do gRPC's.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::INTERNAL:
      return "INTERNAL";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

}  // namespace corral::rpc
