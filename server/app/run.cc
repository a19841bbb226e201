#include "server/app/run.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/registry.h"
#include "server/app/grpc_server.h"
#include "server/app/metrics_endpoint.h"
#include "server/app/secrets.h"
#include "server/app/store_factory.h"
#include "server/app/store_health.h"
#include "server/core/clock.h"
#include "server/core/coordinator.h"
#include "server/core/event_loop.h"
#include "server/core/log.h"
#include "server/core/near_cache_hub.h"
#include "server/metrics/measured_store.h"
#include "server/metrics/metrics.h"
#include "server/rpc/auth.h"
#include "server/rpc/call_auth.h"
#include "server/rpc/corral_service.h"
#include "server/rpc/tls.h"

namespace corral::app {
namespace {

// The signals that stop corrald, blocked in every thread: Run() takes them
// with sigwait().
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

template <typename T>
T OrDie(absl::StatusOr<T> value, int code) {
  if (!value.ok()) Die(code, value.status().message());
  return *std::move(value);
}

void OrDie(const absl::Status& status, int code) {
  if (!status.ok()) Die(code, status.message());
}

}  // namespace

void Die(int code, absl::string_view message) {
  std::fprintf(stderr, "corrald: %s\n", std::string(message).c_str());
  std::exit(code);
}

int Run(const CommandLine& flags) {
  // Before any thread starts, which is before anything touches gRPC
  // (building credentials starts its threads); a signal that arrives while
  // starting up waits.
  const sigset_t signals = BlockStopSignals();

  const Options options = OrDie(ResolveOptions(flags), 2);
  SetLogLevel(options.log_level);
  if (options.ConfigHoldsSecrets())
    WarnIfShared(options.config_path, "credentials");
  const NamespaceRegistry& namespaces = options.namespaces;
  // Namespaces configured with read_cache: false never enter it.
  ReadCacheOptions read_cache;
  read_cache.max_bytes = OrDie(ReadCacheBytes(options.read_cache_mb), 2);
  read_cache.cacheable = [&namespaces](absl::string_view ns) {
    return namespaces.UsesReadCache(ns);
  };
  // The clients' near cache hears every change the read cache hears of
  // (docs/ARCHITECTURE.md 3.8). With it the store tracks reads even when
  // the read cache has no bytes (--read_cache_mb=0, read_cache: false);
  // only a config where no namespace may be near-cached turns it off.
  NearCacheHub near_cache;
  if (namespaces.AnyNearCache()) {
    read_cache.on_invalidate = [&near_cache](const CacheKey* key) {
      near_cache.OnInvalidate(key);
    };
  }

  OrDie(SetUpLogKey(options.log_key_file, !options.redis_uri.empty()), 2);
  std::optional<RedisOptions> redis_options;
  if (!options.redis_uri.empty())
    redis_options = OrDie(RedisOptionsFor(options, read_cache), 2);
  const rpc::Authorizer authorizer =
      OrDie(rpc::Authorizer::Create(options.config.credentials()), 2);
  const rpc::ServerTransport transport =
      OrDie(rpc::MakeServerTransport(options.tls), 2);
  WarnIfShared(options.tls.key, "tls_key");

  auto prometheus_registry = std::make_shared<prometheus::Registry>();
  Metrics metrics(*prometheus_registry);
  std::unique_ptr<MetricsEndpoint> metrics_endpoint = OrDie(
      MetricsEndpoint::Start(options.metrics_address, prometheus_registry), 1);

  RealClock clock;
  EventLoop loop;
  SelectedStore store =
      MakeStore(loop, clock, metrics, std::move(redis_options), read_cache);
  StoreHealth health(store.store->IsUp() || store.redis == nullptr);
  MeasuredStore measured(*store.store, metrics,
                         [&health](bool up) { health.Set(up); });
  Coordinator coordinator(loop, measured, namespaces, clock, metrics);
  auto read_cache_gauges =
      std::make_shared<ReadCacheGauges>(store.store->read_cache());
  metrics_endpoint->Add(read_cache_gauges);
  const bool near_cache_on = read_cache.on_invalidate != nullptr &&
                             store.store->read_cache() != nullptr;
  auto near_cache_gauges =
      std::make_shared<NearCacheGauges>(near_cache_on ? &near_cache : nullptr);
  metrics_endpoint->Add(near_cache_gauges);
  loop.Start();
  if (store.redis != nullptr) {
    absl::Status connected =
        ConnectAtStart(*store.redis, store.name, absl::Seconds(5));
    if (!connected.ok()) {
      store.redis->Shutdown();
      loop.Stop();
      Die(2, connected.message());
    }
  }

  rpc::CallAuthorizer call_auth(authorizer, *prometheus_registry);
  rpc::NearCacheParts near_parts;
  near_parts.hub = near_cache_on ? &near_cache : nullptr;
  near_parts.registry = &namespaces;
  near_parts.clock = &clock;
  rpc::CorralService service(coordinator, metrics, call_auth, near_parts);
  absl::StatusOr<std::unique_ptr<GrpcServer>> started = GrpcServer::Start(
      SettingsFor(options.listen_address, transport.credentials, namespaces),
      service);
  if (!started.ok()) {
    if (store.redis != nullptr) store.redis->Shutdown();
    loop.Stop();
    Die(1, started.status().message());
  }
  GrpcServer& server = **started;
  LogSecurity(options.listen_address, transport.security, authorizer,
              options.metrics_address);
  health.Attach(server.health());
  const std::string& listen = options.listen_address;
  const std::string host = listen.substr(0, listen.rfind(':'));
  // The ready line: tests and scripts wait for it. Keep its shape.
  std::fprintf(stderr, "corrald ready listen=%s:%d metrics=%s store=%s\n",
               host.c_str(), server.port(), metrics_endpoint->bound().c_str(),
               store.name.c_str());
  std::fflush(stderr);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const absl::Duration drain = namespaces.limits().drain_timeout;
  CORRAL_LOG(LogLevel::kInfo, "shutting_down", "signal=", signal_number,
             " drain_timeout=", absl::FormatDuration(drain));
  server.health()->SetServingStatus(false);
  // Near-cache streams never end by themselves: end them now (clients
  // empty their near caches) rather than at the drain deadline.
  near_cache.Shutdown();
  // Leaseholders get the drain time to fill; waiters are answered or
  // cancelled; locks still held afterwards are released.
  server.Shutdown(absl::Now() + drain);
  coordinator.Shutdown(absl::Seconds(2));
  server.Wait();
  if (store.redis != nullptr) store.redis->Shutdown();
  loop.Stop();
  // Scrapes must not reach the read cache once the store goes.
  metrics_endpoint->Stop();
  CORRAL_LOG(LogLevel::kInfo, "stopped", "");
  return 0;
}

}  // namespace corral::app
