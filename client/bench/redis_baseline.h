// The stampede without corral, for comparison: N callers, each with its own
// Redis connection (as real workers have), on one cold key, straight
// against Redis. Two client-side patterns:
//  - kCacheAside: GET; on a miss compute, then SET. No coordination.
//  - kClientLock: the seed's pattern with python-redis-lock's protocol:
//    GET; on a miss SET lock token NX PX 30000; the holder re-GETs (double
//    check), computes, SETs and releases with a compare-and-delete script
//    that also pushes one element onto a signal list; the others BLPOP the
//    signal list (timeout = the seed's 15 s lock wait) and try SET NX again.
//    A caller whose lock wait times out re-GETs and, still missing,
//    computes without the lock (the seed's fallback).
#ifndef CORRAL_CLIENT_BENCH_REDIS_BASELINE_H_
#define CORRAL_CLIENT_BENCH_REDIS_BASELINE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace corral::bench {

enum class BaselinePattern { kCacheAside, kClientLock };

struct BaselineOptions {
  BaselinePattern pattern = BaselinePattern::kClientLock;
  std::string host = "127.0.0.1";
  int port = 6379;
  int callers = 1000;
  absl::Duration compute_time = absl::Milliseconds(200);
  // The seed's lock wait (python-redis-lock acquire timeout) and expiry.
  absl::Duration lock_wait = absl::Seconds(15);
  absl::Duration lock_expire = absl::Seconds(30);
  // python-redis-lock's signal_expire.
  absl::Duration signal_expire = absl::Milliseconds(1000);
  absl::Duration value_ttl = absl::Hours(24);
  // Connections opened at once while setting up (a connect storm beyond the
  // listen backlog costs SYN retransmits, which real pooled workers don't pay).
  int connect_parallel = 256;
  // Give up on callers still running after this long.
  absl::Duration deadline = absl::Seconds(120);
};

struct BaselineReport {
  int callers = 0;  // Callers that connected and ran.
  int connect_failures = 0;
  int errors = 0;  // Callers that ended on a Redis error or the deadline.
  int computes = 0;
  int unlocked_computes = 0;  // Computes after a lock-wait timeout.
  int lock_timeouts = 0;
  absl::Duration connect_time;  // Opening all connections (not in latencies).
  absl::Duration elapsed;       // First caller's start to last caller's end.
  absl::Duration p50, p99, max;
  std::string Summary() const;
};

// Connects every caller, then starts them all at once on one libevent loop
// and runs until each has its value. Blocks. Redis command counts are the
// caller's business (see probes.h): nothing but the callers' commands runs
// between the return of `on_ready` and the return of this function.
BaselineReport RunRedisBaseline(const BaselineOptions& options,
                                const std::function<void()>& on_ready);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_REDIS_BASELINE_H_
