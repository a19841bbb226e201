#include "server/app/options.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace corral::app {
namespace {

// The flag's value if given, else the config file's, else the default.
std::string Pick(const std::string& flag, const std::string& from_config,
                 absl::string_view fallback) {
  if (!flag.empty()) return flag;
  if (!from_config.empty()) return from_config;
  return std::string(fallback);
}

}  // namespace

bool Options::ConfigHoldsSecrets() const {
  return !config.credentials().empty() ||
         absl::StrContains(config.redis(), "@");
}

absl::StatusOr<Options> ResolveOptions(const CommandLine& flags) {
  Options options;
  if (!ParseLogLevel(flags.log_level, &options.log_level)) {
    return absl::InvalidArgumentError(
        "--log_level must be one of debug, info, warning, error");
  }
  options.config_path = flags.config;
  if (!flags.config.empty()) {
    absl::StatusOr<corral::v1::ServerConfig> loaded =
        LoadServerConfig(flags.config);
    if (!loaded.ok()) return loaded.status();
    options.config = *std::move(loaded);
  }
  absl::StatusOr<NamespaceRegistry> namespaces =
      NamespaceRegistry::Create(options.config);
  if (!namespaces.ok()) return namespaces.status();
  options.namespaces = *std::move(namespaces);

  const corral::v1::ServerConfig& config = options.config;
  options.listen_address =
      Pick(flags.listen_address, config.listen_address(), "127.0.0.1:50051");
  options.metrics_address =
      Pick(flags.metrics_address, config.metrics_address(), "127.0.0.1:9464");
  options.redis_uri = Pick(flags.redis, config.redis(), "");
  options.read_cache_mb = flags.read_cache_mb;
  options.log_key_file = Pick(flags.log_key_file, config.log_key_file(), "");
  options.redis_password_file = flags.redis_password_file;
  options.redis_min_replica_acks = flags.redis_min_replica_acks;
  options.redis_replica_ack_timeout = flags.redis_replica_ack_timeout;
  options.tls =
      rpc::ServerTlsFiles{flags.tls_cert, flags.tls_key, flags.tls_client_ca};
  return options;
}

absl::StatusOr<size_t> ReadCacheBytes(int64_t read_cache_mb) {
  if (read_cache_mb < 0 || read_cache_mb > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--read_cache_mb: ", read_cache_mb,
                     " is not a size in MiB between 0 (off) and 1048576"));
  }
  return static_cast<size_t>(read_cache_mb) << 20;
}

}  // namespace corral::app
