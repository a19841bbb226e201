// Domain types of the coordination core: what the gRPC layer translates the
// protos into and out of. Durations a caller left unset are nullopt and take
// the namespace default.
#ifndef CORRAL_SERVER_CORE_TYPES_H_
#define CORRAL_SERVER_CORE_TYPES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"

namespace corral {

// Mirrors corral.v1.Source.
enum class Source {
  kCache = 1,
  kCacheAfterLock = 2,
  kPeerFill = 3,
  kCacheAfterTimeout = 4,
  kStale = 5,
};

// Mirrors corral.v1.LeaseMode.
enum class LeaseMode {
  kLocked = 1,
  kUnlockedTimeout = 2,
  kUnlockedDegraded = 3,
  kRefresh = 4,
};

// The mode's metric and log label.
inline absl::string_view ModeLabel(LeaseMode mode) {
  switch (mode) {
    case LeaseMode::kLocked:
      return "locked";
    case LeaseMode::kUnlockedTimeout:
      return "unlocked_timeout";
    case LeaseMode::kUnlockedDegraded:
      return "unlocked_degraded";
    case LeaseMode::kRefresh:
      return "refresh";
  }
  return "unknown";
}
// Whether a lease of this mode holds the key's fleet-wide lock (renewed
// while the stream is open, released by the fenced fill or an abandon).
inline bool HoldsLock(LeaseMode mode) {
  return mode == LeaseMode::kLocked || mode == LeaseMode::kRefresh;
}

// Mirrors corral.v1.Outcome.
enum class Outcome { kUnspecified = 0, kSuccess = 1, kFailure = 2 };

struct ValueView {
  // The value's bytes, shared (not copied) by every caller that one read or
  // one fill serves. Never null when sent.
  std::shared_ptr<const std::string> value;
  Source source = Source::kCache;
  absl::Duration age;
  absl::Duration ttl_remaining;
  bool stale = false;
  // The stored value's expiry and compute time: the near cache's grant.
  absl::Time expires_at = absl::InfinitePast();
  absl::Duration compute_time;

  const std::string& bytes() const {
    static const std::string kEmpty;
    return value ? *value : kEmpty;
  }
};

struct LeaseView {
  uint64_t fencing_token = 0;
  absl::Time deadline;
  LeaseMode mode = LeaseMode::kLocked;
  std::string current_value;
};

struct FilledView {
  bool stored = false;
  uint64_t fencing_token = 0;
  std::string reason;
};

struct LookupRequest {
  CacheKey key;
  std::optional<absl::Duration> ttl;
  std::optional<absl::Duration> wait_timeout;
  std::optional<absl::Duration> lease_ttl;
  bool allow_stale = false;
  std::string worker_id;
  // The caller's own gRPC deadline; caps every wait.
  absl::Time deadline = absl::InfiniteFuture();
  // A Get already drew the early refresh for a value expiring at or before
  // this (Lookup.refresh_due_for): do not draw again.
  absl::Time refresh_due_for = absl::InfinitePast();
};

struct FillRequest {
  std::string value;
  std::optional<absl::Duration> ttl;
};

struct AbandonRequest {
  std::string reason;
  bool upstream_failure = false;
};

struct AcquireLockRequest {
  CacheKey key;
  std::optional<absl::Duration> ttl;
  std::optional<absl::Duration> wait_timeout;
  std::string owner;
  absl::Time deadline = absl::InfiniteFuture();
};

struct LockGrant {
  bool acquired = false;
  std::string token;
  uint64_t fencing_token = 0;
  absl::Time expires_at;
  absl::Duration waited;
};

struct RenewLockRequest {
  CacheKey key;
  std::string token;
  std::optional<absl::Duration> ttl;
};

struct RenewResult {
  bool renewed = false;
  absl::Time expires_at;
};

struct ReleaseLockRequest {
  CacheKey key;
  std::string token;
  Outcome outcome = Outcome::kUnspecified;
};

struct SetRequest {
  CacheKey key;
  std::string value;
  std::optional<absl::Duration> ttl;
  std::string lock_token;
  bool release_lock = false;
};

struct GetResult {
  bool found = false;
  ValueView value;
  // Answered from the read cache: current as of the moment it was found
  // (the near cache's condition, docs/ARCHITECTURE.md 3.8).
  bool from_read_cache = false;
  // Answered by a store read the store tracked (KeyRead::tracked): no
  // change of the key reached the replica between the read's start and
  // this answer, and every later one will. The near cache's other condition.
  bool tracked_read = false;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_TYPES_H_
