// The store corrald serves from: the embedded store, or Redis (redis://,
// redis-sentinel:// or redis-cluster://) with its replica-ack settings, and the
// policy for a Redis that cannot be reached at start.
#ifndef CORRAL_SERVER_APP_STORE_FACTORY_H_
#define CORRAL_SERVER_APP_STORE_FACTORY_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/app/options.h"
#include "server/core/clock.h"
#include "server/core/event_loop.h"
#include "server/core/read_cache.h"
#include "server/core/store.h"
#include "server/metrics/metrics.h"
#include "server/store/redis_backed_store.h"
#include "server/store/redis_store.h"
#include "server/store/redis_uri.h"

namespace corral::app {

// The Redis options for `options.redis_uri` (which must not be empty): the
// parsed URI, its password (secrets.h), the read cache, and the replica acks
// (-1 keeps the URI's default; else 0..64) and their timeout (1ms up to the
// command timeout). Errors are bad flags, their messages corrald's exit-2
// lines. May log a secret-file warning.
absl::StatusOr<RedisOptions> RedisOptionsFor(
    const Options& options, const ReadCacheOptions& read_cache);

// How the ready line and the logs name a Redis store, without credentials:
// redis://HOST:PORT/DB, redis-sentinel://.../MASTER?db=DB or
// redis-cluster://HOST:PORT,....
std::string RedisStoreName(const RedisOptions& options);

// The store a corrald serves from, and what the rest of startup needs to
// know about it.
struct SelectedStore {
  std::unique_ptr<Store> store;
  // `store`, when it is Redis (one master, Sentinel or Cluster); else null.
  RedisBackedStore* redis = nullptr;
  std::string name;  // For the ready line: "embedded" or RedisStoreName().
};

// Redis when `redis` is set (its replica acks reported to `metrics`), else
// the embedded store with `read_cache`. Neither is started. `loop`, `clock`
// and `metrics` must outlive the store.
SelectedStore MakeStore(EventLoop& loop, const Clock& clock, Metrics& metrics,
                        std::optional<RedisOptions> redis,
                        const ReadCacheOptions& read_cache);

// Whether a failure to reach Redis at start is a configuration error (a bad
// password, an unknown user, a master name Sentinel does not know) rather
// than a Redis that may come up later.
bool IsFatalConnectError(const absl::Status& status);

// Starts `redis` and waits up to `wait` for it. Returns a fatal error
// (IsFatalConnectError) for the caller to exit on; any other failure is
// logged (`store_unreachable_at_start`) and OK is returned: corrald serves
// store-unavailable and reconnects in the background. Call with the loop
// running.
absl::Status ConnectAtStart(RedisBackedStore& redis,
                            absl::string_view store_name, absl::Duration wait);

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_STORE_FACTORY_H_
