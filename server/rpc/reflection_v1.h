// grpc.reflection.v1.ServerReflection: what gRPC 1.51's reflection plugin
// serves as v1alpha, under the package newer clients (grpcurl, grpcui,
// Postman) ask for first. Answers from a descriptor pool; open to every
// caller, like health and v1alpha (corral.v1.Corral alone checks tokens).
#ifndef CORRAL_SERVER_RPC_REFLECTION_V1_H_
#define CORRAL_SERVER_RPC_REFLECTION_V1_H_

#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace corral::rpc {

// The answer to one request: a file_descriptor_response (the file first,
// then each file it imports, transitively, each once), an
// all_extension_numbers_response, a list_services_response, or an
// error_response (NOT_FOUND for an unknown file, symbol, type or extension;
// UNIMPLEMENTED for a request that names no question it knows). `services` are
// the fully qualified names list_services reports. Pure; any thread.
grpc::reflection::v1::ServerReflectionResponse AnswerReflection(
    const google::protobuf::DescriptorPool& pool,
    const std::vector<std::string>& services,
    const grpc::reflection::v1::ServerReflectionRequest& request);

class ReflectionV1Service final
    : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `services`: the fully qualified names of the services the server
  // registered, this one included. `pool` (the generated pool unless a test
  // says otherwise) must outlive the service.
  explicit ReflectionV1Service(
      std::vector<std::string> services,
      const google::protobuf::DescriptorPool& pool =
          *google::protobuf::DescriptorPool::generated_pool())
      : services_(std::move(services)), pool_(pool) {}

  // One response per request, in order, until the caller half-closes.
  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* ctx) override;

 private:
  const std::vector<std::string> services_;
  const google::protobuf::DescriptorPool& pool_;
};

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_REFLECTION_V1_H_
