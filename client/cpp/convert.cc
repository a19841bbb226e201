#include "client/cpp/convert.h"

#include <cstdint>

namespace corral::client::internal {

google::protobuf::Duration DurationToProto(absl::Duration d) {
  // Truncation toward zero keeps seconds and nanos of the same sign, as
  // google.protobuf.Duration requires.
  const int64_t seconds = absl::ToInt64Seconds(d);
  const int64_t nanos = absl::ToInt64Nanoseconds(d - absl::Seconds(seconds));
  google::protobuf::Duration out;
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(nanos));
  return out;
}

absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

Source SourceFromProto(corral::v1::Source source) {
  switch (source) {
    case corral::v1::SOURCE_CACHE:
      return Source::kCache;
    case corral::v1::SOURCE_CACHE_AFTER_LOCK:
      return Source::kCacheAfterLock;
    case corral::v1::SOURCE_PEER_FILL:
      return Source::kPeerFill;
    case corral::v1::SOURCE_CACHE_AFTER_TIMEOUT:
      return Source::kCacheAfterTimeout;
    case corral::v1::SOURCE_STALE:
      return Source::kStale;
    default:
      return Source::kUnspecified;
  }
}

LeaseMode LeaseModeFromProto(corral::v1::LeaseMode mode) {
  switch (mode) {
    case corral::v1::LEASE_MODE_LOCKED:
      return LeaseMode::kLocked;
    case corral::v1::LEASE_MODE_UNLOCKED_TIMEOUT:
      return LeaseMode::kUnlockedTimeout;
    case corral::v1::LEASE_MODE_UNLOCKED_DEGRADED:
      return LeaseMode::kUnlockedDegraded;
    case corral::v1::LEASE_MODE_REFRESH:
      return LeaseMode::kRefresh;
    default:
      // An unknown mode still means "you hold a lease": treat it as locked.
      return LeaseMode::kLocked;
  }
}

corral::v1::Outcome OutcomeToProto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return corral::v1::OUTCOME_SUCCESS;
    case Outcome::kFailure:
      return corral::v1::OUTCOME_FAILURE;
    case Outcome::kUnspecified:
      break;
  }
  return corral::v1::OUTCOME_UNSPECIFIED;
}

BreakerState BreakerStateFromProto(corral::v1::BreakerState state) {
  switch (state) {
    case corral::v1::BREAKER_STATE_CLOSED:
      return BreakerState::kClosed;
    case corral::v1::BREAKER_STATE_OPEN:
      return BreakerState::kOpen;
    case corral::v1::BREAKER_STATE_HALF_OPEN:
      return BreakerState::kHalfOpen;
    default:
      return BreakerState::kUnspecified;
  }
}

CachedValue ValueFromProto(const corral::v1::Value& v) {
  CachedValue out;
  out.value = v.value();
  out.source = SourceFromProto(v.source());
  out.age = DurationFromProto(v.age());
  out.ttl_remaining = DurationFromProto(v.ttl_remaining());
  out.stale = v.stale();
  return out;
}

}  // namespace corral::client::internal
