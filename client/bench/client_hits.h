// Load through the C++ client library, as an application uses it: one
// shared Client per process (near cache and in-process single flight on
// or off), closed-loop threads.
//
// - Hot hits: `concurrency` threads call Get or GetOrCompute on one warm
//   key for `duration` (compare with `redis-benchmark -t get` at the same
//   concurrency).
// - Cold stampede: `callers` threads call GetOrCompute on one cold key at
//   once; counts computes, latency and the calls the Client sent.
#ifndef CORRAL_CLIENT_BENCH_CLIENT_HITS_H_
#define CORRAL_CLIENT_BENCH_CLIENT_HITS_H_

#include <string>

#include "absl/time/time.h"
#include "client/cpp/types.h"

namespace corral::bench {

struct ClientHitsOptions {
  std::string target = "127.0.0.1:50051";
  std::string ns = "bench";
  bool near_cache = true;
  bool get_or_compute = true;  // false: Get.
  int concurrency = 16;
  absl::Duration duration = absl::Seconds(5);
  absl::Duration warmup = absl::Milliseconds(500);
  int value_bytes = 100;
};

struct ClientHitsReport {
  long requests = 0;
  long errors = 0;
  absl::Duration measured;
  absl::Duration p50, p99;
  client::ClientStats stats;
  std::string Summary() const;
};

ClientHitsReport RunClientHits(const ClientHitsOptions& options);

struct ClientStampedeOptions {
  std::string target = "127.0.0.1:50051";
  std::string ns = "bench";
  bool near_cache = true;
  int callers = 1000;
  absl::Duration compute_time = absl::Milliseconds(500);
};

struct ClientStampedeReport {
  int computes = 0;
  int ok = 0;
  int errors = 0;
  absl::Duration p50, p99, max;
  client::ClientStats stats;
  std::string Summary() const;
};

ClientStampedeReport RunClientStampede(const ClientStampedeOptions& options);

// Coherence: a reader Client (near cache on) on `reader_target` holds a key
// in its near cache; a writer on `writer_target` Sets a new value; the
// reader Gets in a loop until it sees it. `rounds` times: the time from the
// Set's start until the reader saw the new value (an invalidation's trip
// plus the reader's one Get).
struct CoherenceOptions {
  std::string reader_target, writer_target;
  std::string ns = "bench";
  int rounds = 500;
};

struct CoherenceReport {
  int rounds = 0;
  int not_seen = 0;  // Not seen within 5 s.
  int not_near = 0;  // Rounds whose value never got into the near cache.
  absl::Duration p50, p99, max;
  std::string Summary() const;
};

CoherenceReport RunCoherence(const CoherenceOptions& options);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_CLIENT_HITS_H_
