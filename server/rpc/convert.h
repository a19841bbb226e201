// Proto <-> domain conversion and absl::Status -> grpc::Status, the only
// place that knows both worlds.
#ifndef CORRAL_SERVER_RPC_CONVERT_H_
#define CORRAL_SERVER_RPC_CONVERT_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "corral/v1/corral.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/core/types.h"

namespace corral::rpc {

// An optional request duration: nullopt when the field is unset (namespace
// default). A malformed one (nanos out of range, mixed signs) is
// INVALID_ARGUMENT naming `field`. Range checks happen in the core.
absl::StatusOr<std::optional<absl::Duration>> DurationField(
    absl::string_view field, bool has, const google::protobuf::Duration& d);

void ToProto(absl::Duration d, google::protobuf::Duration* out);
void ToProto(absl::Time t, google::protobuf::Timestamp* out);
// A timestamp the caller echoes back (opaque to it); out-of-range nanos are
// clamped, never an error.
absl::Time TimeOf(const google::protobuf::Timestamp& t);
void ToProto(const ValueView& v, corral::v1::Value* out);
void ToProto(const LeaseView& v, corral::v1::Lease* out);
void ToProto(const FilledView& v, corral::v1::Filled* out);

// The caller's deadline as an absl::Time (InfiniteFuture when none).
absl::Time DeadlineOf(const grpc::CallbackServerContext& ctx);

// Adds `corral-reason` / `retry-after-ms` trailers to `ctx` and returns the
// matching grpc::Status. Call before Finish.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::CallbackServerContext* ctx);

// "OK", "INVALID_ARGUMENT", ... for metrics labels.
absl::string_view CodeName(grpc::StatusCode code);

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_CONVERT_H_
