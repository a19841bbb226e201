// Hot hits: C closed-loop callers asking corrald for one warm key, for
// comparison with `redis-benchmark -t get` at the same concurrency.
#ifndef CORRAL_CLIENT_BENCH_HOT_HITS_H_
#define CORRAL_CLIENT_BENCH_HOT_HITS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace corral::bench {

enum class HitRpc { kGet, kGetOrCompute };

struct HotHitsOptions {
  std::vector<std::string> targets;
  // HTTP/2 connections per target; the callers are spread over them.
  int channels_per_target = 4;
  std::string ns = "bench";
  HitRpc rpc = HitRpc::kGetOrCompute;
  int concurrency = 16;
  absl::Duration duration = absl::Seconds(5);
  // Answers in the first `warmup` are not counted.
  absl::Duration warmup = absl::Milliseconds(500);
  int value_bytes = 100;
};

struct HotHitsReport {
  long requests = 0;  // Answered with the value, after the warm-up.
  long errors = 0;    // Failed, or answered without the value.
  absl::Duration measured;
  absl::Duration p50, p99;
  double per_second() const;
  std::string Summary() const;
};

// Stores the value with Set (a fresh key), then runs the callers (gRPC
// callback API: each caller is one call in flight at a time) for
// warmup + duration. Blocks.
HotHitsReport RunHotHits(const HotHitsOptions& options);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_HOT_HITS_H_
