// Client::CheckHealth. Debian's gRPC ships no generated grpc.health.v1 stubs,
// and proto/ is the API contract, so instead of vendoring health.proto the
// call goes through a generic stub with well-known wrapper types whose wire
// format is identical: HealthCheckRequest is {string service = 1}, like
// StringValue; HealthCheckResponse is {ServingStatus status = 1} (an enum,
// i.e. a varint), like Int32Value.
#include <google/protobuf/wrappers.pb.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include "client/cpp/call.h"
#include "client/cpp/corral_client.h"

namespace corral::client {
namespace {

constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

using HealthStub = grpc::TemplatedGenericStub<google::protobuf::StringValue,
                                              google::protobuf::Int32Value>;

HealthStatus HealthStatusFromWire(int32_t value) {
  switch (value) {
    case 1:
      return HealthStatus::kServing;
    case 2:
      return HealthStatus::kNotServing;
    case 3:
      return HealthStatus::kServiceUnknown;
    default:
      return HealthStatus::kUnknown;
  }
}

}  // namespace

absl::StatusOr<HealthStatus> Client::CheckHealth(absl::string_view service,
                                                 const CallOptions& call) {
  HealthStub stub(channel_);
  google::protobuf::StringValue request;
  request.set_value(std::string(service));
  auto response = internal::CallWithRetries<google::protobuf::Int32Value>(
      options_.retry, DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub.PrepareUnaryCall(context, kHealthCheckMethod, request, cq);
      });
  if (!response.ok()) return response.status();
  return HealthStatusFromWire(response->value());
}

}  // namespace corral::client
