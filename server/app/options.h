// corrald's options: the command line and the config file resolved into one
// plain struct, before anything starts.
#ifndef CORRAL_SERVER_APP_OPTIONS_H_
#define CORRAL_SERVER_APP_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "corral/v1/config.pb.h"
#include "server/core/log.h"
#include "server/core/namespace_config.h"
#include "server/rpc/tls.h"

namespace corral::app {

// The flags as given (see their --help in corrald.cc); "" means not given.
struct CommandLine {
  std::string listen_address;
  std::string metrics_address;
  std::string redis;
  int redis_min_replica_acks = -1;
  absl::Duration redis_replica_ack_timeout = absl::Milliseconds(500);
  std::string redis_password_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string config;
  std::string log_level = "info";
  std::string log_key_file;
  int64_t read_cache_mb = 64;
};

// What corrald runs with. A flag given on the command line wins over the
// config file, which wins over the default.
struct Options {
  LogLevel log_level = LogLevel::kInfo;
  std::string config_path;          // "" when no --config.
  corral::v1::ServerConfig config;  // Empty when no --config.
  NamespaceRegistry namespaces;     // From `config`.
  std::string listen_address;       // host:port.
  std::string metrics_address;      // host:port, or "off".
  std::string redis_uri;            // "": the embedded store.
  std::string redis_password_file;
  int redis_min_replica_acks = -1;  // Not checked here: see store_factory.h.
  absl::Duration redis_replica_ack_timeout;
  std::string log_key_file;    // "": a random key (see secrets.h).
  int64_t read_cache_mb = 64;  // Checked by ReadCacheBytes().
  rpc::ServerTlsFiles tls;

  // Whether the config file may hold secrets (credentials, or a password in
  // its redis URI), so that its permissions matter.
  bool ConfigHoldsSecrets() const;
};

// Resolves `flags` (reading the config file they name) into Options. An
// error is a bad flag or config; its message is what corrald prints before
// exiting with status 2. Checks in order: log level, config file, namespaces.
// Logs nothing.
absl::StatusOr<Options> ResolveOptions(const CommandLine& flags);

// --read_cache_mb in bytes (0: off); an error (exit 2) beyond 0..1048576.
// Apart from ResolveOptions() because corrald has always warned about a
// shared config file before checking it.
absl::StatusOr<size_t> ReadCacheBytes(int64_t read_cache_mb);

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_OPTIONS_H_
