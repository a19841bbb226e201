// Steady load on one hot key: many callers calling GetOrCompute in a loop
// through the C++ client, for a while, against one or more corralds. It
// answers the freshness questions: how many computes did the key cost, did
// two ever run at once, and how many calls had to wait for one (with early
// refresh and stale-while-revalidate, none should after the first fill).
// Used by corral-bench --mode=steady and by the end-to-end freshness tests.
#ifndef CORRAL_CLIENT_BENCH_STEADY_H_
#define CORRAL_CLIENT_BENCH_STEADY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace corral::bench {

struct SteadyOptions {
  // corrald targets; callers are spread over them round-robin.
  std::vector<std::string> targets;
  std::string ns = "bench";
  std::string key = "hot";
  int callers = 50;  // One thread each.
  absl::Duration duration = absl::Seconds(10);
  absl::Duration compute_time = absl::Milliseconds(200);
  // Pause between one caller's calls (0: back to back).
  absl::Duration pace = absl::Milliseconds(10);
  bool allow_stale = false;
  // Per-call deadline.
  absl::Duration deadline = absl::Seconds(30);
};

struct SteadyReport {
  int64_t calls = 0;
  int64_t errors = 0;
  int64_t computes = 0;
  // Of the computes: how many ran on a REFRESH lease (early or stale).
  int64_t refreshes = 0;
  // Most computes running at the same moment (1 is the promise).
  int max_concurrent_computes = 0;
  // Calls answered by waiting for someone's compute (source PEER_FILL,
  // CACHE_AFTER_LOCK or CACHE_AFTER_TIMEOUT), in all and after the first
  // fill landed.
  int64_t waited = 0;
  int64_t waited_after_first_fill = 0;
  int64_t calls_after_first_fill = 0;
  // Calls served a value past its TTL.
  int64_t stale = 0;
  // Latency of the calls that did not compute, after the first fill.
  absl::Duration p50, p99, max;
  // When each compute started, from the start of the run.
  std::vector<absl::Duration> compute_starts;
  std::string first_error;

  double WaitedFractionAfterFirstFill() const {
    return calls_after_first_fill == 0
               ? 0
               : static_cast<double>(waited_after_first_fill) /
                     calls_after_first_fill;
  }
  std::string Summary() const;
};

SteadyReport RunSteady(const SteadyOptions& options);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_STEADY_H_
