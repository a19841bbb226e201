#include "server/app/store_factory.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/app/secrets.h"
#include "server/core/log.h"
#include "server/store/embedded_store.h"
#include "server/store/redis_cluster_store.h"

namespace corral::app {

absl::StatusOr<RedisOptions> RedisOptionsFor(
    const Options& options, const ReadCacheOptions& read_cache) {
  absl::StatusOr<RedisOptions> parsed = ParseRedisUri(options.redis_uri);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis: ", parsed.status().message()));
  }
  if (absl::Status password =
          ResolveRedisPassword(options.redis_password_file, *parsed);
      !password.ok()) {
    return password;
  }
  parsed->read_cache = read_cache;
  const int acks = options.redis_min_replica_acks;
  if (acks < -1 || acks > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis_min_replica_acks: ", acks,
                     " is not -1 (by URI) or a replica count in 0..64"));
  }
  if (acks >= 0) parsed->min_replica_acks = acks;
  const absl::Duration ack_timeout = options.redis_replica_ack_timeout;
  if (ack_timeout < absl::Milliseconds(1) ||
      ack_timeout >= parsed->command_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_replica_ack_timeout: ", absl::FormatDuration(ack_timeout),
        " is not between 1ms and ",
        absl::FormatDuration(parsed->command_timeout)));
  }
  parsed->replica_ack_timeout = ack_timeout;
  return parsed;
}

std::string RedisStoreName(const RedisOptions& options) {
  if (options.sentinel()) {
    return absl::StrCat("redis-sentinel://.../", options.master_name,
                        "?db=", options.db);
  }
  if (options.cluster()) {
    std::vector<std::string> nodes;
    for (const RedisAddress& node : options.cluster_nodes)
      nodes.push_back(absl::StrCat(node.host, ":", node.port));
    return absl::StrCat("redis-cluster://", absl::StrJoin(nodes, ","));
  }
  return absl::StrCat("redis://", options.host, ":", options.port, "/",
                      options.db);
}

SelectedStore MakeStore(EventLoop& loop, const Clock& clock, Metrics& metrics,
                        std::optional<RedisOptions> redis,
                        const ReadCacheOptions& read_cache) {
  SelectedStore selected;
  if (!redis.has_value()) {
    selected.store = std::make_unique<EmbeddedStore>(loop, clock, read_cache);
    selected.name = "embedded";
    return selected;
  }
  redis->on_replica_ack = [&metrics](absl::Duration waited, bool acked) {
    metrics.OnReplicaAck(waited, acked);
  };
  selected.name = RedisStoreName(*redis);
  if (redis->cluster()) {
    auto store = std::make_unique<RedisClusterStore>(loop, *std::move(redis));
    selected.redis = store.get();
    selected.store = std::move(store);
    return selected;
  }
  auto store = std::make_unique<RedisStore>(loop, *std::move(redis));
  selected.redis = store.get();
  selected.store = std::move(store);
  return selected;
}

bool IsFatalConnectError(const absl::Status& status) {
  return absl::IsPermissionDenied(status) || absl::IsUnauthenticated(status) ||
         absl::IsInvalidArgument(status);
}

absl::Status ConnectAtStart(RedisBackedStore& redis,
                            absl::string_view store_name, absl::Duration wait) {
  redis.Start();
  absl::Status connected = redis.WaitUntilConnected(wait);
  if (connected.ok() || IsFatalConnectError(connected)) return connected;
  // Redis may come up after us: serve (store-unavailable) and reconnect.
  CORRAL_LOG(LogLevel::kWarning, "store_unreachable_at_start",
             "store=", store_name, " error=\"", connected.message(),
             "\" (serving; reconnecting in the background)");
  return absl::OkStatus();
}

}  // namespace corral::app
