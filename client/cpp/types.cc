#include "client/cpp/types.h"

namespace corral::client {

absl::string_view SourceName(Source source) {
  switch (source) {
    case Source::kUnspecified:
      return "unspecified";
    case Source::kCache:
      return "cache";
    case Source::kCacheAfterLock:
      return "cache_after_lock";
    case Source::kPeerFill:
      return "peer_fill";
    case Source::kCacheAfterTimeout:
      return "cache_after_timeout";
    case Source::kStale:
      return "stale";
    case Source::kComputed:
      return "computed";
    case Source::kNearCache:
      return "near_cache";
  }
  return "unknown";
}

absl::string_view LeaseModeName(LeaseMode mode) {
  switch (mode) {
    case LeaseMode::kNone:
      return "none";
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

absl::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kUnspecified:
      return "UNSPECIFIED";
    case BreakerState::kClosed:
      return "CLOSED";
    case BreakerState::kOpen:
      return "OPEN";
    case BreakerState::kHalfOpen:
      return "HALF_OPEN";
  }
  return "UNKNOWN";
}

absl::string_view HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kUnknown:
      return "UNKNOWN";
    case HealthStatus::kServing:
      return "SERVING";
    case HealthStatus::kNotServing:
      return "NOT_SERVING";
    case HealthStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

}  // namespace corral::client
