// corrald: the corral server. See --help.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/core/clock.h"
#include "server/core/coordinator.h"
#include "server/core/event_loop.h"
#include "server/core/file.h"
#include "server/core/log.h"
#include "server/core/namespace_config.h"
#include "server/metrics/measured_store.h"
#include "server/metrics/metrics.h"
#include "server/rpc/auth.h"
#include "server/rpc/call_auth.h"
#include "server/rpc/corral_service.h"
#include "server/rpc/reflection_v1.h"
#include "server/rpc/tls.h"
#include "server/store/embedded_store.h"
#include "server/store/redis_store.h"
#include "server/store/redis_uri.h"

ABSL_FLAG(std::string, listen_address, "",
          "gRPC address to serve on, host:port (default 127.0.0.1:50051). Port 0 picks a "
          "free port (the ready line says which).");
ABSL_FLAG(std::string, metrics_address, "",
          "Prometheus /metrics address, host:port (default 127.0.0.1:9464); \"off\" "
          "disables it. Port 0 picks a free port.");
ABSL_FLAG(std::string, redis, "",
          "Redis to coordinate through: redis://[user[:password]@]host:port[/db], or a "
          "master found through Redis Sentinel: redis-sentinel://[user[:password]@]"
          "host:port[,host:port...]/MASTER_NAME[?db=N&sentinel_password=...]. Unset: "
          "the embedded in-memory store (one replica only). Keep the password out of "
          "the process listing: leave it out of the URI and use --redis_password_file "
          "or $CORRAL_REDIS_PASSWORD (with an ACL user, redis://user@host:port).");
ABSL_FLAG(int, redis_min_replica_acks, -1,
          "Replicas that must hold a grant (a lock, a GetOrCompute lease, a fenced "
          "Set/Fill) before it is answered (Redis WAIT); if they do not within "
          "--redis_replica_ack_timeout the grant is undone and answered as "
          "store-unavailable. -1: 1 for redis-sentinel:// URIs, 0 for redis://.");
ABSL_FLAG(absl::Duration, redis_replica_ack_timeout, absl::Milliseconds(500),
          "How long one WAIT for --redis_min_replica_acks may take (under 2s, the "
          "store's hung-server timeout).");
ABSL_FLAG(std::string, redis_password_file, "",
          "File holding the Redis password (one trailing newline is ignored); used when "
          "the --redis URI has none. Overrides $CORRAL_REDIS_PASSWORD.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve gRPC over TLS (with --tls_key). Unset: "
          "plaintext, which is only safe on a loopback address.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (unencrypted).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle for mutual TLS: every client must present a certificate that "
          "chains to it. Needs --tls_cert and --tls_key.");
ABSL_FLAG(std::string, config, "",
          "Configuration file (textproto, or JSON if it ends in .json), schema "
          "corral.v1.ServerConfig in proto/corral/v1/config.proto. Flags given on the "
          "command line override its listen_address, metrics_address and redis.");
ABSL_FLAG(std::string, log_level, "info", "Log threshold: debug, info, warning, error.");
ABSL_FLAG(std::string, log_key_file, "",
          "File holding the key (at least 16 bytes) that log lines hash cache keys "
          "under (HMAC-SHA-256), so that keys cannot be guessed back from the logs. "
          "Give every replica the same file so their logs name a key alike. Unset (and "
          "no log_key_file in --config): a random key per process, with a warning.");
ABSL_FLAG(int64_t, read_cache_mb, 64,
          "MiB of recently read values to answer hits from without asking the store "
          "(0: off). With --redis it is kept coherent by Redis' client-side caching "
          "(CLIENT TRACKING, Redis >= 7): a write by another replica reaches it one "
          "invalidation message later. Off by itself, with a warning, where Redis "
          "cannot track.");

namespace corral {

// See the end of Run(). External linkage: the store cannot be optimized away.
prometheus::Exposer* g_exiting_exposer = nullptr;

namespace {

constexpr char kUsage[] =
    "corrald: fleet-wide cache-stampede protection as a gRPC service.\n"
    "\n"
    "On a cache miss exactly one caller, fleet-wide, computes the value while the\n"
    "others wait and receive it when it lands. State lives in Redis (--redis), so\n"
    "replicas are interchangeable; without --redis an embedded store serves one\n"
    "replica.\n"
    "\n"
    "Usage: corrald [--listen_address=HOST:PORT] [--metrics_address=HOST:PORT|off]\n"
    "               [--redis=redis://HOST:PORT[/DB] | redis-sentinel://HOST:PORT,.../NAME]\n"
    "               [--redis_password_file=FILE]\n"
    "               [--tls_cert=PEM --tls_key=PEM [--tls_client_ca=PEM]]\n"
    "               [--config=FILE] [--log_level=LEVEL] [--log_key_file=FILE]\n"
    "\n"
    "Security: --tls_* serve TLS or mutual TLS; the config file's `credentials`\n"
    "require a bearer token on every call (health and reflection stay open).\n"
    "Without either, anyone who can reach the port can do anything: keep such a\n"
    "server on loopback (it warns otherwise).\n"
    "\n"
    "It logs one `corrald ready ...` line when serving and stops cleanly on SIGTERM\n"
    "or SIGINT. Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or config.";

// The health-service name that tracks the store.
constexpr char kServiceName[] = "corral.v1.Corral";

[[noreturn]] void Die(int code, absl::string_view message) {
  std::fprintf(stderr, "corrald: %s\n", std::string(message).c_str());
  std::exit(code);
}

// The contents of a secret file, without the trailing newline that editors
// and `echo` add.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) return contents.status();
  std::string secret = *std::move(contents);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return secret;
}

// Secrets belong to corrald's user alone: a file that another group or
// anyone may read gets a warning (not an error: a deploy may rely on it).
void WarnIfShared(const std::string& path, absl::string_view what) {
  if (path.empty()) return;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return;  // Reading it reports that.
  // A group that is corrald's own (Kubernetes' fsGroup) shares nothing.
  const bool group = (st.st_mode & S_IRGRP) != 0 && st.st_gid != ::getegid();
  if (!group && (st.st_mode & S_IROTH) == 0) return;
  CORRAL_LOG(LogLevel::kWarning, "secret_file_readable", "file=", path, " holds=", what,
             absl::StrFormat(" mode=%04o", st.st_mode & 07777),
             " WARNING: readable by ", (st.st_mode & S_IROTH) ? "every user" : "its group",
             " of this host; chmod 600 it (owned by corrald's user)");
}

// Fills in the Redis password when the URI has none: --redis_password_file,
// else $CORRAL_REDIS_PASSWORD. Never logs or echoes it.
void ResolveRedisPassword(RedisOptions& options) {
  const std::string file = absl::GetFlag(FLAGS_redis_password_file);
  if (!options.password.empty()) {
    if (!file.empty()) {
      Die(2, "--redis_password_file: the --redis URI already holds a password; give it once");
    }
    return;
  }
  if (!file.empty()) {
    absl::StatusOr<std::string> password = ReadSecretFile(file);
    if (!password.ok()) {
      Die(2, absl::StrCat("--redis_password_file: ", password.status().message()));
    }
    options.password = *std::move(password);
    WarnIfShared(file, "redis_password");
  } else if (const char* pw = std::getenv("CORRAL_REDIS_PASSWORD"); pw != nullptr && *pw) {
    options.password = pw;
  }
  if (!options.user.empty() && options.password.empty()) {
    Die(2, absl::StrCat("--redis names the ACL user \"", options.user,
                        "\" but no password: put it in --redis_password_file or "
                        "$CORRAL_REDIS_PASSWORD"));
  }
}

// The log key: --log_key_file, else the config file's log_key_file, else a
// random key of this process (warned: its logs will not correlate).
void SetUpLogKey(const std::string& path, bool fleet) {
  if (path.empty()) {
    CORRAL_LOG(fleet ? LogLevel::kWarning : LogLevel::kInfo, "log_key_random",
               "key hashes in the logs are keyed with a random key of this process: "
               "they match no other replica's (nor this one's after a restart); give "
               "every replica the same --log_key_file to correlate them");
    return;
  }
  absl::StatusOr<std::string> key = ReadSecretFile(path);
  if (!key.ok()) Die(2, absl::StrCat("--log_key_file: ", key.status().message()));
  if (absl::Status set = SetLogKeySecret(*key); !set.ok()) {
    Die(2, absl::StrCat("--log_key_file: ", path, ": ", set.message()));
  }
  WarnIfShared(path, "log_key");
}

// The flag's value if given, else the config file's, else the default.
std::string Pick(const absl::Flag<std::string>& flag, const std::string& from_config,
                 absl::string_view fallback) {
  std::string value = absl::GetFlag(flag);
  if (!value.empty()) return value;
  if (!from_config.empty()) return from_config;
  return std::string(fallback);
}

// One line on how callers are checked, and a loud warning when a port
// beyond this host is open to anyone or carries tokens in clear text.
void LogSecurity(const std::string& listen, rpc::TransportSecurity security,
                 const rpc::Authorizer& authorizer, const std::string& metrics_address) {
  CORRAL_LOG(LogLevel::kInfo, "security", "transport=", rpc::TransportSecurityName(security),
             " auth=", authorizer.open() ? "open" : "tokens",
             " credentials=", authorizer.size());
  if (security == rpc::TransportSecurity::kPlaintext && !rpc::IsLoopbackAddress(listen)) {
    CORRAL_LOG(LogLevel::kWarning, "insecure_listener", "listen=", listen,
               " WARNING: plaintext gRPC on a non-loopback address: ",
               authorizer.open()
                   ? "anyone who can reach it can read, write and lock every namespace"
                   : "bearer tokens and cached values cross the network unencrypted",
               "; serve TLS with --tls_cert/--tls_key, or bind 127.0.0.1");
  } else if (authorizer.open() && !rpc::IsLoopbackAddress(listen)) {
    CORRAL_LOG(LogLevel::kWarning, "open_listener", "listen=", listen,
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

int Run() {
  // Signals are taken by sigwait() below: block them before any thread
  // starts. That is before anything touches gRPC (building credentials
  // starts its threads); a signal that arrives while starting up waits.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    Die(2, "--log_level must be one of debug, info, warning, error");
  }
  SetLogLevel(level);

  corral::v1::ServerConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    auto loaded = LoadServerConfig(path);
    if (!loaded.ok()) Die(2, loaded.status().message());
    config = *std::move(loaded);
  }
  auto registry = NamespaceRegistry::Create(config);
  if (!registry.ok()) Die(2, registry.status().message());
  if (!config.credentials().empty() || absl::StrContains(config.redis(), "@")) {
    WarnIfShared(absl::GetFlag(FLAGS_config), "credentials");
  }
  const std::string listen =
      Pick(FLAGS_listen_address, config.listen_address(), "127.0.0.1:50051");
  const std::string metrics_address =
      Pick(FLAGS_metrics_address, config.metrics_address(), "127.0.0.1:9464");
  const std::string redis_uri = Pick(FLAGS_redis, config.redis(), "");
  const int64_t read_cache_mb = absl::GetFlag(FLAGS_read_cache_mb);
  if (read_cache_mb < 0 || read_cache_mb > (int64_t{1} << 20)) {
    Die(2, absl::StrCat("--read_cache_mb: ", read_cache_mb,
                        " is not a size in MiB between 0 (off) and 1048576"));
  }
  // Namespaces configured with read_cache: false never enter it.
  ReadCacheOptions read_cache;
  read_cache.max_bytes = static_cast<size_t>(read_cache_mb) << 20;
  read_cache.cacheable = [&registry](absl::string_view ns) {
    return registry->UsesReadCache(ns);
  };

  SetUpLogKey(Pick(FLAGS_log_key_file, config.log_key_file(), ""), !redis_uri.empty());
  std::optional<RedisOptions> redis_options;
  if (!redis_uri.empty()) {
    auto parsed = ParseRedisUri(redis_uri);
    if (!parsed.ok()) Die(2, absl::StrCat("--redis: ", parsed.status().message()));
    ResolveRedisPassword(*parsed);
    parsed->read_cache = read_cache;
    const int acks = absl::GetFlag(FLAGS_redis_min_replica_acks);
    if (acks < -1 || acks > 64) {
      Die(2, absl::StrCat("--redis_min_replica_acks: ", acks,
                          " is not -1 (by URI) or a replica count in 0..64"));
    }
    if (acks >= 0) parsed->min_replica_acks = acks;
    const absl::Duration ack_timeout = absl::GetFlag(FLAGS_redis_replica_ack_timeout);
    if (ack_timeout < absl::Milliseconds(1) || ack_timeout >= parsed->command_timeout) {
      Die(2, absl::StrCat("--redis_replica_ack_timeout: ", absl::FormatDuration(ack_timeout),
                          " is not between 1ms and ",
                          absl::FormatDuration(parsed->command_timeout)));
    }
    parsed->replica_ack_timeout = ack_timeout;
    redis_options = *std::move(parsed);
  }
  auto authorizer = rpc::Authorizer::Create(config.credentials());
  if (!authorizer.ok()) Die(2, authorizer.status().message());
  auto transport = rpc::MakeServerTransport(rpc::ServerTlsFiles{
      absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
      absl::GetFlag(FLAGS_tls_client_ca)});
  if (!transport.ok()) Die(2, transport.status().message());
  WarnIfShared(absl::GetFlag(FLAGS_tls_key), "tls_key");

  auto prometheus_registry = std::make_shared<prometheus::Registry>();
  Metrics metrics(*prometheus_registry);
  std::unique_ptr<prometheus::Exposer> exposer;
  std::string metrics_bound = "off";
  if (metrics_address != "off") {
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address);
    } catch (const std::exception& e) {
      Die(1, absl::StrCat("cannot serve metrics on ", metrics_address, ": ", e.what()));
    }
    exposer->RegisterCollectable(prometheus_registry);
    const std::string host = metrics_address.substr(0, metrics_address.rfind(':'));
    metrics_bound = absl::StrCat(host, ":", exposer->GetListeningPorts().at(0));
  }

  RealClock clock;
  EventLoop loop;
  std::unique_ptr<Store> store;
  std::string store_name = "embedded";
  RedisStore* redis = nullptr;
  if (redis_options.has_value()) {
    redis_options->on_replica_ack = [&metrics](absl::Duration waited, bool acked) {
      metrics.OnReplicaAck(waited, acked);
    };
    auto owned = std::make_unique<RedisStore>(loop, *redis_options);
    redis = owned.get();
    store_name = redis_options->sentinel()
                     ? absl::StrCat("redis-sentinel://.../", redis_options->master_name, "?db=",
                                    redis_options->db)
                     : absl::StrCat("redis://", redis_options->host, ":", redis_options->port,
                                    "/", redis_options->db);
    store = std::move(owned);
  } else {
    store = std::make_unique<EmbeddedStore>(loop, clock, read_cache);
  }
  // The health service's "corral.v1.Corral" entry follows the store; the
  // overall ("") entry says the process serves (it does, degraded or not).
  std::atomic<grpc::HealthCheckServiceInterface*> health{nullptr};
  std::atomic<bool> store_up{store->IsUp() || redis == nullptr};
  MeasuredStore measured(*store, metrics, [&health, &store_up](bool up) {
    store_up = up;
    if (auto* h = health.load()) h->SetServingStatus(kServiceName, up);
  });
  Coordinator coordinator(loop, measured, *registry, clock, metrics);
  auto read_cache_gauges = std::make_shared<ReadCacheGauges>(store->read_cache());
  if (exposer) exposer->RegisterCollectable(read_cache_gauges);
  loop.Start();
  if (redis != nullptr) {
    redis->Start();
    absl::Status connected = redis->WaitUntilConnected(absl::Seconds(5));
    if (!connected.ok()) {
      const bool fatal = absl::IsPermissionDenied(connected) ||
                         absl::IsUnauthenticated(connected) ||
                         absl::IsInvalidArgument(connected);
      if (fatal) {
        redis->Shutdown();
        loop.Stop();
        Die(2, connected.message());
      }
      // Redis may come up after us: serve (store-unavailable) and reconnect.
      CORRAL_LOG(LogLevel::kWarning, "store_unreachable_at_start",
                 "store=", store_name, " error=\"", connected.message(),
                 "\" (serving; reconnecting in the background)");
    }
  }

  rpc::CallAuthorizer call_auth(*authorizer, *prometheus_registry);
  rpc::CorralService service(coordinator, metrics, call_auth);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC 1.51's plugin serves v1alpha only; newer clients ask for v1 first.
  rpc::ReflectionV1Service reflection_v1(
      {kServiceName, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
       grpc::reflection::v1::ServerReflection::service_full_name()});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, transport->credentials, &port);
  builder.RegisterService(&service);
  builder.RegisterService(&reflection_v1);
  // Room for the largest value plus the message around it.
  const int max_message = static_cast<int>(registry->LargestValueBytes() + (64 << 10));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(registry->limits().max_concurrent_streams));
  // Drop peers that vanished without closing (a dead worker's leases go back).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A flood of calls is refused before it takes the host's memory.
  grpc::ResourceQuota quota("corrald");
  quota.Resize(static_cast<size_t>(registry->limits().memory_quota_bytes));
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    if (redis != nullptr) redis->Shutdown();
    loop.Stop();
    Die(1, absl::StrCat("cannot listen on ", listen,
                        " (address in use, or not an address of this host?)"));
  }
  LogSecurity(listen, transport->security, *authorizer, metrics_address);
  health = server->GetHealthCheckService();
  health.load()->SetServingStatus(kServiceName, store_up.load());
  const std::string host = listen.substr(0, listen.rfind(':'));
  // The ready line: tests and scripts wait for it. Keep its shape.
  std::fprintf(stderr, "corrald ready listen=%s:%d metrics=%s store=%s\n", host.c_str(), port,
               metrics_bound.c_str(), store_name.c_str());
  std::fflush(stderr);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const absl::Duration drain = registry->limits().drain_timeout;
  CORRAL_LOG(LogLevel::kInfo, "shutting_down", "signal=", signal_number,
             " drain_timeout=", absl::FormatDuration(drain));
  server->GetHealthCheckService()->SetServingStatus(false);
  // Leaseholders get the drain time to fill; waiters are answered or
  // cancelled; locks still held afterwards are released.
  std::thread drainer([&] { server->Shutdown(absl::ToChronoTime(absl::Now() + drain)); });
  drainer.join();
  coordinator.Shutdown(absl::Seconds(2));
  server->Wait();
  if (redis != nullptr) redis->Shutdown();
  loop.Stop();
  // Scrapes must not reach the cache once the store goes.
  if (exposer) exposer->RemoveCollectable(read_cache_gauges);
  CORRAL_LOG(LogLevel::kInfo, "stopped", "");
  // civetweb's stop polls its listener for up to 2 s; the process is exiting
  // and owes the metrics endpoint nothing, so skip it. (Kept reachable from a
  // global, so leak checkers do not count it.)
  g_exiting_exposer = exposer.release();
  return 0;
}

}  // namespace
}  // namespace corral

int main(int argc, char** argv) {
  // Debian's abseil is built with mutex deadlock detection on: a cycle
  // search on every lock, 3-5 % of corrald's CPU in profiles
  // (tests/bench/PROFILE.md). Lock-order bugs are for the test builds to find.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(corral::kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    corral::Die(2, absl::StrCat("unexpected argument \"", rest[1], "\" (see --help)"));
  }
  return corral::Run();
}
