// The hand-assembled GetOrCompute Value response is an ordinary protobuf
// message to any parser, and it references the shared bytes instead of
// copying them.
#include "server/rpc/wire.h"

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/rpc/convert.h"

namespace corral::rpc {
namespace {

using corral::v1::GetOrComputeRequest;
using corral::v1::GetOrComputeResponse;

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

ValueView View(std::string bytes) {
  ValueView v;
  v.value = std::make_shared<const std::string>(std::move(bytes));
  v.source = Source::kPeerFill;
  v.age = absl::Milliseconds(1500);
  v.ttl_remaining = absl::Seconds(86399);
  v.stale = false;
  return v;
}

void ExpectSameAsProtobuf(const ValueView& v) {
  GetOrComputeResponse expected;
  ToProto(v, expected.mutable_value());
  GetOrComputeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(EncodeValueResponse(v))));
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(parsed, expected))
      << parsed.DebugString() << " vs " << expected.DebugString();
}

TEST(WireTest, ValueResponsesParseLikeProtobufsOwn) {
  ExpectSameAsProtobuf(View("Rosa canina"));
  ExpectSameAsProtobuf(View(std::string("a\0b\xff", 4)));  // Binary.
  ExpectSameAsProtobuf(View(""));                          // Empty value.
  ExpectSameAsProtobuf(View(std::string(127, 'x')));  // Length varints: 1 byte,
  ExpectSameAsProtobuf(View(std::string(128, 'x')));  // 2 bytes,
  ExpectSameAsProtobuf(View(std::string(1 << 20, 'x')));  // 3 bytes.
  ValueView stale = View("old");
  stale.source = Source::kStale;
  stale.stale = true;
  stale.ttl_remaining = absl::ZeroDuration();
  ExpectSameAsProtobuf(stale);
}

TEST(WireTest, TheValueBytesAreReferencedNotCopied) {
  ValueView v = View(std::string(4096, 'v'));
  const char* data = v.value->data();
  grpc::ByteBuffer buffer = EncodeValueResponse(v);
  EXPECT_EQ(v.value.use_count(), 2);  // The view and the buffer.
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  bool shared = false;
  for (const grpc::Slice& s : slices) {
    shared = shared || reinterpret_cast<const char*>(s.begin()) == data;
  }
  EXPECT_TRUE(shared);
  slices.clear();
  buffer.Clear();
  EXPECT_EQ(v.value.use_count(), 1);  // gRPC let go of it.
}

TEST(WireTest, RequestsDecodeAndGarbageIsRefused) {
  GetOrComputeRequest request;
  request.mutable_lookup()->set_namespace_("plant_id");
  request.mutable_lookup()->set_key(std::string("k\0ey", 4));
  grpc::Slice slice(request.SerializeAsString());
  grpc::ByteBuffer buffer(&slice, 1);
  GetOrComputeRequest decoded;
  ASSERT_TRUE(DecodeRequest(buffer, &decoded).ok());
  EXPECT_EQ(decoded.lookup().key(), std::string("k\0ey", 4));

  grpc::Slice junk(std::string("\xff\xff\xff\xff", 4));
  grpc::ByteBuffer bad(&junk, 1);
  EXPECT_EQ(DecodeRequest(bad, &decoded).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace corral::rpc
