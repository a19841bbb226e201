// AcquireLock + ReleaseLock cycles against corrald, for corral-bench.
#ifndef CORRAL_CLIENT_BENCH_LOCK_CYCLES_H_
#define CORRAL_CLIENT_BENCH_LOCK_CYCLES_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace corral::bench {

struct LockCyclesOptions {
  std::vector<std::string> targets;
  std::string ns = "bench";
  int workers = 1;
  // true: all workers cycle on one key (contended, each waits its turn);
  // false: each worker on its own key.
  bool contended = false;
  absl::Duration duration = absl::Seconds(5);
};

struct LockCyclesReport {
  long cycles = 0;
  long errors = 0;
  absl::Duration elapsed;
  absl::Duration p50, p99;  // One acquire+release cycle.
  std::string Summary() const;
};

// Each worker is a thread with a blocking stub: a cycle is one AcquireLock
// (try once uncontended; wait up to 10 s contended) and one ReleaseLock.
LockCyclesReport RunLockCycles(const LockCyclesOptions& options);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_LOCK_CYCLES_H_
