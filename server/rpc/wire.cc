#include "server/rpc/wire.h"

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/slice.h"
#include "server/rpc/convert.h"

namespace corral::rpc {
namespace {

using google::protobuf::io::CodedOutputStream;

// Field 1, wire type 2 (length-delimited): GetOrComputeResponse.value and
// Value.value alike.
constexpr uint8_t kField1Bytes = (1 << 3) | 2;

void AppendTagAndLength(std::string* out, size_t length) {
  uint8_t buf[1 + 10];
  buf[0] = kField1Bytes;
  uint8_t* end = CodedOutputStream::WriteVarint64ToArray(length, buf + 1);
  out->append(reinterpret_cast<const char*>(buf),
              static_cast<size_t>(end - buf));
}

// A slice over a shared string: gRPC drops the reference when it is done.
grpc::Slice SharedSlice(std::shared_ptr<const std::string> bytes) {
  auto* owner = new std::shared_ptr<const std::string>(std::move(bytes));
  return grpc::Slice(
      const_cast<char*>((*owner)->data()), (*owner)->size(),
      [](void* p) {
        delete static_cast<std::shared_ptr<const std::string>*>(p);
      },
      owner);
}

}  // namespace

grpc::ByteBuffer EncodeValueResponse(const ValueView& v) {
  // Everything but the bytes, encoded by protobuf.
  ValueView rest_view = v;
  rest_view.value = nullptr;
  corral::v1::Value rest;
  ToProto(rest_view, &rest);
  const std::string tail = rest.SerializeAsString();

  const size_t n = v.bytes().size();
  std::string head;
  const size_t value_field = 1 + CodedOutputStream::VarintSize64(n) + n;
  AppendTagAndLength(&head,
                     value_field + tail.size());  // GetOrComputeResponse.value
  AppendTagAndLength(&head, n);                   // Value.value

  std::vector<grpc::Slice> slices;
  slices.emplace_back(head);
  if (n > 0) slices.push_back(SharedSlice(v.value));
  if (!tail.empty()) slices.emplace_back(tail);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer EncodeResponse(
    const corral::v1::GetOrComputeResponse& response) {
  grpc::Slice slice(response.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

absl::Status DecodeRequest(grpc::ByteBuffer& buffer,
                           corral::v1::GetOrComputeRequest* out) {
  grpc::ProtoBufferReader reader(&buffer);
  if (!out->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(
        "the request is not a GetOrComputeRequest");
  }
  return absl::OkStatus();
}

}  // namespace corral::rpc
