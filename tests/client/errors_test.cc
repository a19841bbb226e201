#include "client/cpp/errors.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace corral::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

Trailers MakeTrailers(const std::multimap<std::string, std::string>& strings) {
  Trailers out;
  for (const auto& [k, v] : strings) {
    out.emplace(grpc::string_ref(k), grpc::string_ref(v));
  }
  return out;
}

TEST(StatusFromGrpcTest, CodesMapOneToOne) {
  for (int code = 1; code <= 16; ++code) {
    grpc::Status status(static_cast<grpc::StatusCode>(code), "boom");
    absl::Status converted = StatusFromGrpc(status, {});
    EXPECT_EQ(static_cast<int>(converted.code()), code);
    EXPECT_EQ(converted.message(), "boom");
    EXPECT_EQ(ReasonOf(converted), "");
    EXPECT_EQ(RetryAfterOf(converted), std::nullopt);
  }
}

TEST(StatusFromGrpcTest, KeepsReasonAndRetryAfter) {
  // The multimap holds string_refs: the strings must outlive it.
  std::multimap<std::string, std::string> strings = {
      {"corral-reason", "breaker-open"}, {"retry-after-ms", "1500"}};
  Trailers trailers = MakeTrailers(strings);
  absl::Status status = StatusFromGrpc(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "breaker open"), trailers);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(status), "breaker-open");
  EXPECT_THAT(RetryAfterOf(status), Optional(absl::Milliseconds(1500)));
  EXPECT_EQ(DescribeStatus(status),
            "UNAVAILABLE: breaker open (corral-reason: breaker-open, retry "
            "after 1.5s)");
}

TEST(StatusFromGrpcTest, IgnoresMalformedRetryAfterAndOtherTrailers) {
  std::multimap<std::string, std::string> strings = {
      {"corral-reason", "peer-compute-failed"},
      {"retry-after-ms", "soon"},
      {"x-other", "1"}};
  absl::Status status =
      StatusFromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, "peer failed"),
                     MakeTrailers(strings));
  EXPECT_EQ(ReasonOf(status), "peer-compute-failed");
  EXPECT_EQ(RetryAfterOf(status), std::nullopt);
  EXPECT_THAT(DescribeStatus(status),
              HasSubstr("corral-reason: peer-compute-failed"));
}

TEST(StatusFromGrpcTest, OkIgnoresTrailers) {
  std::multimap<std::string, std::string> strings = {
      {"corral-reason", "breaker-open"}};
  absl::Status status = StatusFromGrpc(grpc::Status::OK, MakeTrailers(strings));
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(ReasonOf(status), "");
}

TEST(ErrorsTest, WithReasonRoundTrips) {
  absl::Status status = WithRetryAfter(
      WithReason(absl::UnavailableError("x"), kReasonStoreUnavailable),
      absl::Seconds(2));
  EXPECT_EQ(ReasonOf(status), "store-unavailable");
  EXPECT_THAT(RetryAfterOf(status), Optional(absl::Seconds(2)));
  EXPECT_EQ(DescribeStatus(absl::NotFoundError("gone")), "NOT_FOUND: gone");
}

}  // namespace
}  // namespace corral::client
