// corrald's gRPC server: the Corral service with health and reflection, its
// limits (message size, streams, memory, keepalive), and the startup line on
// how callers are checked.
#ifndef CORRAL_SERVER_APP_GRPC_SERVER_H_
#define CORRAL_SERVER_APP_GRPC_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/core/namespace_config.h"
#include "server/rpc/auth.h"
#include "server/rpc/reflection_v1.h"
#include "server/rpc/tls.h"

namespace corral::app {

// What the server is built with.
struct GrpcServerSettings {
  std::string listen_address;  // host:port; port 0 picks a free one.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  int max_message_bytes = 0;  // Received and sent.
  int max_concurrent_streams = 0;
  size_t memory_quota_bytes = 0;
};

// The settings for `namespaces`: room for the largest value plus the
// message around it (64 KiB), and the configured limits.
GrpcServerSettings SettingsFor(
    const std::string& listen_address,
    std::shared_ptr<grpc::ServerCredentials> credentials,
    const NamespaceRegistry& namespaces);

class GrpcServer {
 public:
  // Serves `corral` (which must outlive the server), the default health
  // service and reflection (v1alpha and v1). UNAVAILABLE when it cannot
  // listen; the message is corrald's exit-1 line.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerSettings& settings, grpc::Service& corral);

  // The port it listens on (the one picked, when 0 was asked for).
  int port() const { return port_; }
  grpc::HealthCheckServiceInterface* health() {
    return server_->GetHealthCheckService();
  }

  // Stops accepting calls and gives the running ones until `deadline` to
  // finish, then cancels them. Returns without waiting for handlers that
  // are still unwinding: Wait() does.
  void Shutdown(absl::Time deadline);
  void Wait() { server_->Wait(); }

 private:
  GrpcServer();

  // gRPC 1.51's plugin serves v1alpha only; newer clients ask for v1 first.
  rpc::ReflectionV1Service reflection_v1_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// Logs one `security` line on how callers are checked, and a loud warning
// when a port beyond this host is open to anyone or carries tokens in clear
// text.
void LogSecurity(const std::string& listen, rpc::TransportSecurity security,
                 const rpc::Authorizer& authorizer,
                 const std::string& metrics_address);

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_GRPC_SERVER_H_
