// Plain results of corral calls: what the client library hands back instead of
// raw protos, with durations and instants as absl types.
#ifndef CORRAL_CLIENT_CPP_TYPES_H_
#define CORRAL_CLIENT_CPP_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace corral::client {

// Where a value came from. Mirrors corral.v1.Source (same numbers), plus
// kComputed, which never travels on the wire: this caller ran compute.
enum class Source {
  kUnspecified = 0,
  kCache = 1,
  kCacheAfterLock = 2,
  kPeerFill = 3,
  kCacheAfterTimeout = 4,
  kStale = 5,
  kComputed = 100,
  // Never on the wire either: served from this process's near cache.
  kNearCache = 101,
};

// Why this caller was asked to compute. Mirrors corral.v1.LeaseMode.
enum class LeaseMode {
  kNone = 0,  // No lease: the value came from the server.
  kLocked = 1,
  kUnlockedTimeout = 2,
  kUnlockedDegraded = 3,
  kRefresh = 4,
};

// Fed to the namespace's circuit breaker. Mirrors corral.v1.Outcome.
enum class Outcome { kUnspecified = 0, kSuccess = 1, kFailure = 2 };

// Mirrors corral.v1.BreakerState.
enum class BreakerState {
  kUnspecified = 0,
  kClosed = 1,
  kOpen = 2,
  kHalfOpen = 3
};

// Lower-case names for logs and corralctl ("peer_fill", "locked", ...).
absl::string_view SourceName(Source source);
absl::string_view LeaseModeName(LeaseMode mode);
absl::string_view BreakerStateName(BreakerState state);

// A cached value as the server describes it.
struct CachedValue {
  std::string value;
  Source source = Source::kUnspecified;
  absl::Duration age = absl::ZeroDuration();
  absl::Duration ttl_remaining = absl::ZeroDuration();
  bool stale = false;
};

// Get: `found` false means a miss (not an error).
struct GetResult {
  bool found = false;
  CachedValue value;
};

struct AcquireLockResult {
  bool acquired = false;
  std::string token;
  uint64_t fencing_token = 0;
  absl::Time expires_at = absl::InfinitePast();
  absl::Duration waited = absl::ZeroDuration();
};

struct RenewLockResult {
  bool renewed = false;
  absl::Time expires_at = absl::InfinitePast();
};

struct BreakerInfo {
  std::string ns;
  BreakerState state = BreakerState::kUnspecified;
  absl::Time since = absl::InfinitePast();
  absl::Duration retry_after = absl::ZeroDuration();
  uint64_t recent_failures = 0;
  uint64_t recent_successes = 0;
};

// grpc.health.v1 serving status (same numbers as HealthCheckResponse).
enum class HealthStatus {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3,
};
absl::string_view HealthStatusName(HealthStatus status);

// What GetOrCompute hands back.
struct GetOrComputeResult {
  std::string value;
  // kComputed when this caller's compute produced `value`; for a refresh
  // whose compute failed, kStale (the value being refreshed is served).
  Source source = Source::kUnspecified;
  bool stale = false;
  absl::Duration age = absl::ZeroDuration();
  absl::Duration ttl_remaining = absl::ZeroDuration();
  // This caller held a lease and ran compute (successfully or not).
  bool computed = false;
  LeaseMode lease_mode = LeaseMode::kNone;
  uint64_t fencing_token = 0;
  // The server stored the computed value (Filled.stored).
  bool stored = false;
  // Why the computed value was not stored: Filled.reason ("lease-revoked"),
  // or the status of a Fill that never got its answer.
  std::string not_stored_reason;
  // Set for a refresh lease whose compute failed: `value` is the current
  // (old) value and this is the compute's error.
  absl::Status refresh_error;
  // Attempts made (> 1 after transport-level retries).
  int attempts = 1;
  // Answered by another caller's GetOrCompute of the same key in this
  // process (in-process single flight): this caller sent nothing.
  bool shared = false;
};

// What a Client did, for tests and benchmarks.
struct ClientStats {
  uint64_t get_rpcs = 0;                // Unary Gets sent (retries included).
  uint64_t get_or_compute_streams = 0;  // GetOrCompute streams opened.
  uint64_t shared_calls = 0;  // GetOrComputes answered by another's call.
  // The near cache (zero when off).
  uint64_t near_hits = 0;
  uint64_t near_planted = 0;
  uint64_t near_refused = 0;  // Answers not kept: invalidated meanwhile.
  uint64_t near_invalidations = 0;
  uint64_t near_resets = 0;
  uint64_t near_sessions = 0;  // NearCache streams started.
  size_t near_entries = 0;
  size_t near_bytes = 0;
};

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_TYPES_H_
