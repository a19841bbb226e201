#include "server/app/grpc_server.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/resource_quota.h"
#include "server/app/store_health.h"
#include "server/core/log.h"

namespace corral::app {

GrpcServerSettings SettingsFor(
    const std::string& listen_address,
    std::shared_ptr<grpc::ServerCredentials> credentials,
    const NamespaceRegistry& namespaces) {
  GrpcServerSettings settings;
  settings.listen_address = listen_address;
  settings.credentials = std::move(credentials);
  settings.max_message_bytes =
      static_cast<int>(namespaces.LargestValueBytes() + (64 << 10));
  settings.max_concurrent_streams =
      static_cast<int>(namespaces.limits().max_concurrent_streams);
  settings.memory_quota_bytes =
      static_cast<size_t>(namespaces.limits().memory_quota_bytes);
  return settings;
}

GrpcServer::GrpcServer()
    : reflection_v1_(
          {kCorralServiceName, "grpc.health.v1.Health",
           "grpc.reflection.v1alpha.ServerReflection",
           grpc::reflection::v1::ServerReflection::service_full_name()}) {}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerSettings& settings, grpc::Service& corral) {
  std::unique_ptr<GrpcServer> server(new GrpcServer());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(settings.listen_address, settings.credentials,
                           &server->port_);
  builder.RegisterService(&corral);
  builder.RegisterService(&server->reflection_v1_);
  builder.SetMaxReceiveMessageSize(settings.max_message_bytes);
  builder.SetMaxSendMessageSize(settings.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             settings.max_concurrent_streams);
  // Drop peers that vanished without closing (a dead worker's leases go back).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A flood of calls is refused before it takes the host's memory.
  grpc::ResourceQuota quota("corrald");
  quota.Resize(settings.memory_quota_bytes);
  builder.SetResourceQuota(quota);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", settings.listen_address,
                     " (address in use, or not an address of this host?)"));
  }
  return server;
}

void GrpcServer::Shutdown(absl::Time deadline) {
  server_->Shutdown(absl::ToChronoTime(deadline));
}

void LogSecurity(const std::string& listen, rpc::TransportSecurity security,
                 const rpc::Authorizer& authorizer,
                 const std::string& metrics_address) {
  CORRAL_LOG(LogLevel::kInfo, "security",
             "transport=", rpc::TransportSecurityName(security),
             " auth=", authorizer.open() ? "open" : "tokens",
             " credentials=", authorizer.size());
  if (security == rpc::TransportSecurity::kPlaintext &&
      !rpc::IsLoopbackAddress(listen)) {
    CORRAL_LOG(
        LogLevel::kWarning, "insecure_listener", "listen=", listen,
        " WARNING: plaintext gRPC on a non-loopback address: ",
        authorizer.open()
            ? "anyone who can reach it can read, write and lock every namespace"
            : "bearer tokens and cached values cross the network unencrypted",
        "; serve TLS with --tls_cert/--tls_key, or bind 127.0.0.1");
  } else if (authorizer.open() && !rpc::IsLoopbackAddress(listen)) {
    CORRAL_LOG(
        LogLevel::kWarning, "open_listener", "listen=", listen,
        " WARNING: no credentials configured: every caller that reaches it may "
        "use every namespace",
        security == rpc::TransportSecurity::kMutualTls
            ? " (client certificates are still required)"
            : "; add `credentials` to the config file");
  }
  if (metrics_address != "off" && !rpc::IsLoopbackAddress(metrics_address)) {
    CORRAL_LOG(LogLevel::kInfo, "metrics_exposed", "metrics=", metrics_address,
               " (no keys or values; namespaces and counts only)");
  }
}

}  // namespace corral::app
