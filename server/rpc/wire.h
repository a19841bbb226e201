// GetOrCompute responses as wire bytes (grpc::ByteBuffer), for the raw
// GetOrCompute method. A Value's bytes are not copied: the buffer holds a
// reference to the ValueView's shared string, so a fill that wakes 10,000
// callers sends one copy of the value 10,000 times instead of making 10,000
// copies. The encoding is plain protobuf (fields in any order are valid), so
// clients see an ordinary GetOrComputeResponse.
#ifndef CORRAL_SERVER_RPC_WIRE_H_
#define CORRAL_SERVER_RPC_WIRE_H_

#include "absl/status/status.h"
#include "corral/v1/corral.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/core/types.h"

namespace corral::rpc {

// GetOrComputeResponse{value: v}, sharing v's bytes.
grpc::ByteBuffer EncodeValueResponse(const ValueView& v);
// Any response, serialized (a copy).
grpc::ByteBuffer EncodeResponse(
    const corral::v1::GetOrComputeResponse& response);
// Parses a request; INVALID_ARGUMENT when the bytes are not one.
absl::Status DecodeRequest(grpc::ByteBuffer& buffer,
                           corral::v1::GetOrComputeRequest* out);

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_WIRE_H_
