// Drives many concurrent GetOrCompute callers at corrald with gRPC's
// callback client API (a caller is a reactor, not a thread), so one process
// can be 10,000 workers. Used by corral-bench and by the end-to-end tests.
#ifndef CORRAL_CLIENT_BENCH_STAMPEDE_H_
#define CORRAL_CLIENT_BENCH_STAMPEDE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace corral::bench {

struct StampedeOptions {
  // corrald targets; callers are spread over them round-robin.
  std::vector<std::string> targets;
  // Separate HTTP/2 connections per target (streams are spread over them).
  int channels_per_target = 4;
  std::string ns = "bench";
  int callers = 1000;
  int keys = 1;
  // Prefix of the keys ("<prefix><index>"); pick a fresh one for cold keys.
  std::string key_prefix = "key-";
  // How long a leaseholder "computes" (a timer, no thread held).
  absl::Duration compute_time = absl::Milliseconds(200);
  // When set, a leaseholder abandons with upstream_failure instead of filling.
  bool fail_compute = false;
  // Per-call gRPC deadline.
  absl::Duration deadline = absl::Seconds(60);
  std::optional<absl::Duration> wait_timeout;
  std::optional<absl::Duration> lease_ttl;
  // The value a leaseholder fills for key index `k` (default "value-<k>").
  std::function<std::string(int)> value_for;
  // Delay between starting consecutive callers (0: all at once).
  absl::Duration spread = absl::ZeroDuration();
  // When set, a leaseholder fills (or abandons) only once this is notified
  // and compute_time has passed: the driver decides when everyone waits.
  const absl::Notification* fill_gate = nullptr;
};

struct CallerResult {
  int key = 0;
  int target = 0;         // Index into StampedeOptions::targets.
  absl::Status status;    // The call's final status.
  std::string reason;     // corral-reason trailer, if any.
  bool computed = false;  // This caller held a lease and filled/abandoned.
  int lease_mode = 0;     // corral.v1.LeaseMode of its lease (0: none).
  uint64_t fencing_token = 0;
  bool stored = false;        // Its Filled.stored.
  std::string value;          // The value it ended with.
  int source = 0;             // corral.v1.Source of a Value answer.
  absl::Duration latency;     // Start of call to its end.
  absl::Time lease_received;  // When a leaseholder got its Lease.
  absl::Time fill_sent;       // When a leaseholder wrote its Fill/Abandon.
  absl::Time done;            // When the call ended.
};

struct StampedeReport {
  std::vector<CallerResult> callers;
  absl::Duration elapsed;
  int computes() const;
  int ok() const;
  // Latency percentile over all callers (q in [0, 1]).
  absl::Duration Percentile(double q) const;
  // One human-readable paragraph.
  std::string Summary() const;
};

// Runs the stampede to completion (every caller answered or past its
// deadline). Blocks the calling thread.
StampedeReport RunStampede(const StampedeOptions& options);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_STAMPEDE_H_
