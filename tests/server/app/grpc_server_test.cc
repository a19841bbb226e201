#include "server/app/grpc_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "corral/v1/corral.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/app/fails_with.h"

namespace corral::app {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GrpcServerSettingsTest, FromTheNamespaces) {
  corral::v1::ServerConfig config;
  config.mutable_defaults()->set_max_value_bytes(1 << 20);
  auto* big = config.add_namespaces();
  big->set_name("big");
  big->set_max_value_bytes(8 << 20);
  config.mutable_limits()->set_max_concurrent_streams(77);
  config.mutable_limits()->set_memory_quota_bytes(uint64_t{3} << 30);
  absl::StatusOr<NamespaceRegistry> namespaces =
      NamespaceRegistry::Create(config);
  ASSERT_TRUE(namespaces.ok()) << namespaces.status();
  GrpcServerSettings settings = SettingsFor(
      "127.0.0.1:0", grpc::InsecureServerCredentials(), *namespaces);
  EXPECT_EQ(settings.listen_address, "127.0.0.1:0");
  EXPECT_EQ(settings.max_message_bytes, (8 << 20) + (64 << 10));
  EXPECT_EQ(settings.max_concurrent_streams, 77);
  EXPECT_EQ(settings.memory_quota_bytes, size_t{3} << 30);
}

// An empty Corral service: the server only needs something to register.
class NoCorral final : public corral::v1::Corral::CallbackService {};

GrpcServerSettings Loopback(const std::string& address) {
  return SettingsFor(address, grpc::InsecureServerCredentials(),
                     NamespaceRegistry());
}

TEST(GrpcServerTest, ServesOnThePortPickedWithHealth) {
  NoCorral corral;
  absl::StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start(Loopback("127.0.0.1:0"), corral);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);
  EXPECT_NE((*server)->health(), nullptr);
  (*server)->Shutdown(absl::Now());
  (*server)->Wait();
}

// A port held by a plain listener (gRPC's own listeners share ports through
// SO_REUSEPORT, so another gRPC server would not do).
TEST(GrpcServerTest, PortInUseIsAnError) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length),
            0);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  NoCorral corral;
  EXPECT_THAT(
      GrpcServer::Start(Loopback(taken), corral),
      FailsWith(absl::StatusCode::kUnavailable,
                "cannot listen on " + taken +
                    " (address in use, or not an address of this host?)"));
  ::close(fd);
}

std::string SecurityLog(const std::string& listen,
                        rpc::TransportSecurity security, bool with_credentials,
                        const std::string& metrics) {
  corral::v1::ServerConfig config;
  if (with_credentials) {
    auto* credential = config.add_credentials();
    credential->set_name("app");
    credential->set_token_sha256(std::string(64, 'a'));
    credential->add_namespaces("ns");
    credential->add_rights(corral::v1::Credential::READ);
  }
  absl::StatusOr<rpc::Authorizer> authorizer =
      rpc::Authorizer::Create(config.credentials());
  EXPECT_TRUE(authorizer.ok()) << authorizer.status();
  ::testing::internal::CaptureStderr();
  LogSecurity(listen, security, *authorizer, metrics);
  return ::testing::internal::GetCapturedStderr();
}

TEST(LogSecurityTest, LoopbackIsQuiet) {
  const std::string logged = SecurityLog(
      "127.0.0.1:50051", rpc::TransportSecurity::kPlaintext, false, "off");
  EXPECT_THAT(
      logged,
      HasSubstr("security transport=plaintext auth=open credentials=0"));
  EXPECT_THAT(logged, Not(HasSubstr("WARNING")));
}

TEST(LogSecurityTest, PlaintextBeyondLoopbackWarns) {
  EXPECT_THAT(
      SecurityLog("0.0.0.0:50051", rpc::TransportSecurity::kPlaintext, false,
                  "off"),
      HasSubstr(
          "insecure_listener listen=0.0.0.0:50051 WARNING: plaintext gRPC on a "
          "non-loopback address: anyone who can reach it can read, write and "
          "lock "
          "every namespace; serve TLS with --tls_cert/--tls_key, or bind "
          "127.0.0.1"));
  EXPECT_THAT(
      SecurityLog("0.0.0.0:50051", rpc::TransportSecurity::kPlaintext, true,
                  "off"),
      HasSubstr(
          "bearer tokens and cached values cross the network unencrypted"));
}

TEST(LogSecurityTest, OpenTlsBeyondLoopbackWarns) {
  EXPECT_THAT(
      SecurityLog("0.0.0.0:50051", rpc::TransportSecurity::kTls, false, "off"),
      HasSubstr(
          "open_listener listen=0.0.0.0:50051 WARNING: no credentials "
          "configured: every caller that reaches it may use every namespace; "
          "add `credentials` to the config file"));
  EXPECT_THAT(SecurityLog("0.0.0.0:50051", rpc::TransportSecurity::kMutualTls,
                          false, "off"),
              HasSubstr("(client certificates are still required)"));
}

TEST(LogSecurityTest, MetricsBeyondLoopbackAreNoted) {
  EXPECT_THAT(
      SecurityLog("127.0.0.1:50051", rpc::TransportSecurity::kPlaintext, false,
                  "0.0.0.0:9464"),
      HasSubstr(
          "metrics_exposed metrics=0.0.0.0:9464 (no keys or values; namespaces "
          "and counts only)"));
}

}  // namespace
}  // namespace corral::app
