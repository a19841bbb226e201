// The C++ client warns when it would send a bearer token in plaintext to a
// target beyond this host (ClientOptions::on_plaintext_token, else stderr),
// and IsLoopbackTarget decides what "this host" is. Channels are lazy:
// constructing a Client dials nothing, so the non-loopback targets here
// (192.0.2.0/24 and example.com, reserved for documentation) see no traffic.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <string>
#include <utility>
#include <vector>

#include "client/cpp/corral_client.h"
#include "client/cpp/target.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace corral::client {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

TEST(IsLoopbackTargetTest, LoopbackTargets) {
  for (const char* target :
       {"127.0.0.1:50051", "127.8.9.10:1", "localhost:50051", "LOCALHOST",
        "localhost.:50051", "[::1]:50051", "::1", "[::ffff:127.0.0.1]:50051",
        "dns:///localhost:50051", "dns://8.8.8.8/127.0.0.1:50051",
        "dns:[::1]:50051", "ipv4:127.0.0.1:1,127.0.0.2:2", "ipv6:[::1]:50051",
        "unix:/run/corral.sock", "unix:///run/corral.sock",
        "unix-abstract:corral"}) {
    EXPECT_TRUE(IsLoopbackTarget(target)) << target;
  }
}

TEST(IsLoopbackTargetTest, EverythingElseIsNot) {
  for (const char* target :
       {"192.0.2.1:50051", "10.0.0.1:50051", "0.0.0.0:50051",
        "example.com:50051", "corrald.default.svc:50051",
        "localhost.example.com:50051", "[2001:db8::1]:50051",
        "dns:///example.com:50051", "dns://127.0.0.1/example.com:50051",
        "ipv4:127.0.0.1:1,192.0.2.1:2", "ipv6:[2001:db8::1]:50051",
        "xds:///corrald", "passthrough:///127.0.0.1:50051", "128.0.0.1:50051",
        ""}) {
    EXPECT_FALSE(IsLoopbackTarget(target)) << target;
  }
}

// Messages a Client constructed with `options` reported.
std::vector<std::string> Warnings(const std::string& target,
                                  ClientOptions options) {
  std::vector<std::string> seen;
  options.on_plaintext_token = [&seen](absl::string_view m) {
    seen.emplace_back(m);
  };
  Client client(target, std::move(options));
  return seen;
}

ClientOptions WithToken(std::string token = "secret-token") {
  ClientOptions options;
  options.token = std::move(token);
  return options;
}

TEST(PlaintextTokenTest, WarnsOnceForATokenInPlaintextBeyondThisHost) {
  for (const char* target : {"192.0.2.1:50051", "dns:///example.com:50051"}) {
    std::vector<std::string> seen = Warnings(target, WithToken());
    ASSERT_THAT(seen, SizeIs(1)) << target;
    EXPECT_THAT(seen[0], HasSubstr(target));
    EXPECT_THAT(seen[0], HasSubstr("plaintext"));
    EXPECT_THAT(seen[0], Not(HasSubstr("secret-token")));
  }
}

TEST(PlaintextTokenTest, SilentOnLoopbackWithTlsOrWithoutToken) {
  for (const char* target : {"127.0.0.1:50051", "localhost:50051",
                             "[::1]:50051", "unix:/tmp/corral.sock"}) {
    EXPECT_THAT(Warnings(target, WithToken()), IsEmpty()) << target;
  }
  ClientOptions tls = WithToken();
  tls.credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());
  EXPECT_THAT(Warnings("192.0.2.1:50051", tls), IsEmpty());
  EXPECT_THAT(Warnings("192.0.2.1:50051", ClientOptions()), IsEmpty());
}

TEST(PlaintextTokenTest, AChannelPassedInIsTheCallersToSecure) {
  bool called = false;
  ClientOptions options = WithToken();
  options.on_plaintext_token = [&called](absl::string_view) { called = true; };
  Client client(grpc::CreateChannel("192.0.2.1:50051",
                                    grpc::InsecureChannelCredentials()),
                options);
  EXPECT_FALSE(called);
}

TEST(PlaintextTokenTest, WithoutACallbackItIsOneLineOnStderr) {
  testing::internal::CaptureStderr();
  { Client client("192.0.2.1:50051", WithToken()); }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(
      err,
      HasSubstr(
          "WARNING: sending a bearer token in plaintext to 192.0.2.1:50051"));
  // One line of ours (gRPC may log lines of its own).
  const size_t at = err.find("corral client:");
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_EQ(err.find("corral client:", at + 1), std::string::npos) << err;
  EXPECT_NE(err.find('\n', at), std::string::npos) << err;
}

}  // namespace
}  // namespace corral::client
