// Where the Redis store connects, and how patiently. Parsed from the
// --redis flag: redis://[user[:password]@]host[:port][/db], or
// redis-sentinel://[user[:password]@]host[:port][,host[:port]...]/master
// [?db=N&sentinel_password=...] for a master that Redis Sentinel names.
#ifndef CORRAL_SERVER_STORE_REDIS_URI_H_
#define CORRAL_SERVER_STORE_REDIS_URI_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/clock.h"
#include "server/core/read_cache.h"

namespace corral {

struct RedisAddress {
  std::string host;
  int port = 0;
};

struct RedisOptions {
  // The data node. With sentinels: where the latest discovery found the
  // master (until then, nothing: the store asks the sentinels first).
  std::string host = "127.0.0.1";
  int port = 6379;
  // Non-empty: Sentinel mode. The store asks these in turn which node is
  // the master named master_name, checks that node's ROLE before using it,
  // and asks again after any loss, any -READONLY/-LOADING/-MASTERDOWN, a
  // +switch-master of master_name, or a ROLE that is no longer master.
  std::vector<RedisAddress> sentinels;
  std::string master_name;
  // For the sentinels only (user/password are the data nodes'). Never log.
  std::string sentinel_password;

  // ACL user; empty: the legacy AUTH <password> form (or no AUTH at all).
  std::string user;
  // Empty: no AUTH. Never log it; use Describe().
  std::string password;
  int db = 0;

  // TCP connect plus handshake (AUTH, SELECT, SCRIPT LOAD).
  absl::Duration connect_timeout = absl::Seconds(1);
  // An unanswered command older than this means the server is hung: the
  // connection is dropped, pending commands fail, and a reconnect starts.
  absl::Duration command_timeout = absl::Seconds(2);
  absl::Duration ping_interval = absl::Seconds(1);
  // Reconnect delays grow from min to max, doubling, with jitter.
  absl::Duration reconnect_backoff_min = absl::Milliseconds(100);
  absl::Duration reconnect_backoff_max = absl::Seconds(5);

  // > 0: a grant (a lock taken, a GetOrCompute lease, a fenced write's
  // acknowledgement) is answered only once this many replicas hold it
  // (WAIT on the connection that wrote it); otherwise it is undone where
  // possible and answered StoreUnavailable. 1 for redis-sentinel:// URIs, 0
  // for redis://.
  int min_replica_acks = 0;
  // How long one WAIT may take. Below command_timeout, or a WAIT would look
  // like a hung server.
  absl::Duration replica_ack_timeout = absl::Milliseconds(500);
  // Each WAIT's outcome (how long it took; whether enough replicas acked).
  // Loop thread. May be empty.
  std::function<void(absl::Duration waited, bool acked)> on_replica_ack;

  // max_bytes > 0: keep a read cache, made coherent with Redis'
  // server-assisted client-side caching (CLIENT TRACKING, Redis >= 7).
  ReadCacheOptions read_cache;

  // Tests only: the compute budget's scripts read "now" from this clock
  // instead of Redis TIME, so that GCRA timing can be checked exactly.
  // Null in production (one clock for the fleet: Redis's).
  const Clock* budget_clock = nullptr;

  // "redis://user:***@host:port/db" or
  // "redis-sentinel://user:***@s1:p1,s2:p2/master?db=N": safe to log (the
  // passwords are masked).
  std::string Describe() const;
  bool sentinel() const { return !sentinels.empty(); }
};

// Parses redis://[user:password@]host[:port][/db] (also redis://:password@…,
// redis://user@… for an ACL user whose password is given separately, and
// [v6-address] hosts). user and password are percent-decoded. Errors are
// INVALID_ARGUMENT naming the part that is wrong; they never echo the
// password. Timeouts keep their defaults.
//
// Also parses redis-sentinel://[user[:password]@]host[:port][,host[:port]...]
// /master_name[?db=N&sentinel_password=...] (sentinel port 26379 by
// default; sentinel_password percent-decoded; unknown or repeated query
// parameters are errors).
absl::StatusOr<RedisOptions> ParseRedisUri(absl::string_view uri);

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_URI_H_
