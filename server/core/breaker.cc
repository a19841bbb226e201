#include "server/core/breaker.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace corral {
namespace {

absl::Duration BucketWidth(const BreakerSettings& s) {
  return std::max(absl::Milliseconds(1), s.window / BreakerSnapshot::kBuckets);
}

int64_t BucketId(const BreakerSettings& s, absl::Time now) {
  return absl::ToUnixNanos(now) / absl::ToInt64Nanoseconds(BucketWidth(s));
}

void Enter(BreakerSnapshot& snapshot, BreakerState state, absl::Time now) {
  snapshot.state = state;
  snapshot.since = now;
  snapshot.probes_granted = 0;
  snapshot.consecutive_failures = 0;
  // A fresh state judges fresh outcomes. OPEN judges none (it only waits
  // out open_duration), so it keeps the window that opened it: GetBreaker
  // then reports the failures that tripped it, not zero.
  if (state == BreakerState::kOpen) return;
  for (auto& b : snapshot.buckets) b = BreakerSnapshot::Bucket{};
}

bool Trips(const BreakerSnapshot& snapshot, const BreakerSettings& s,
           absl::Time now) {
  if (s.consecutive_failures > 0 &&
      snapshot.consecutive_failures >= s.consecutive_failures) {
    return true;
  }
  const BreakerSnapshot::Totals t = snapshot.InWindow(s, now);
  const uint64_t calls = t.successes + t.failures;
  if (calls < s.minimum_calls || calls == 0) return false;
  if (static_cast<double>(t.failures) / static_cast<double>(calls) >=
      s.failure_rate) {
    return true;
  }
  if (s.slow_call_rate.has_value() &&
      static_cast<double>(t.slow) / static_cast<double>(calls) >=
          *s.slow_call_rate) {
    return true;
  }
  return false;
}

}  // namespace

absl::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

std::string BreakerSnapshot::Encode() const {
  // v1 <state> <since_ns> <consecutive> <probes> then id:s:f:slow per bucket.
  std::string out = absl::StrCat("v1 ", static_cast<int>(state), " ",
                                 absl::ToUnixNanos(since), " ",
                                 consecutive_failures, " ", probes_granted);
  for (const Bucket& b : buckets) {
    absl::StrAppend(&out, " ", b.id, ":", b.successes, ":", b.failures, ":",
                    b.slow);
  }
  return out;
}

absl::StatusOr<BreakerSnapshot> BreakerSnapshot::Decode(
    absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ' ');
  auto bad = [&] {
    return absl::DataLossError(
        absl::StrCat("undecodable breaker state: ", text.substr(0, 64)));
  };
  if (parts.size() != 5 + kBuckets || parts[0] != "v1") return bad();
  BreakerSnapshot s;
  int state = 0;
  int64_t since_ns = 0;
  if (!absl::SimpleAtoi(parts[1], &state) || state < 1 || state > 3 ||
      !absl::SimpleAtoi(parts[2], &since_ns) ||
      !absl::SimpleAtoi(parts[3], &s.consecutive_failures) ||
      !absl::SimpleAtoi(parts[4], &s.probes_granted)) {
    return bad();
  }
  s.state = static_cast<BreakerState>(state);
  s.since = absl::FromUnixNanos(since_ns);
  for (int i = 0; i < kBuckets; ++i) {
    std::vector<absl::string_view> f = absl::StrSplit(parts[5 + i], ':');
    Bucket& b = s.buckets[i];
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &b.id) ||
        !absl::SimpleAtoi(f[1], &b.successes) ||
        !absl::SimpleAtoi(f[2], &b.failures) ||
        !absl::SimpleAtoi(f[3], &b.slow)) {
      return bad();
    }
  }
  return s;
}

BreakerSnapshot::Totals BreakerSnapshot::InWindow(
    const BreakerSettings& settings, absl::Time now) const {
  const int64_t current = BucketId(settings, now);
  Totals t;
  for (const Bucket& b : buckets) {
    if (b.id < 0 || b.id <= current - kBuckets || b.id > current) continue;
    t.successes += b.successes;
    t.failures += b.failures;
    t.slow += b.slow;
  }
  return t;
}

BreakerDecision Admit(const BreakerSnapshot& snapshot,
                      const BreakerSettings& settings, absl::Time now) {
  switch (snapshot.state) {
    case BreakerState::kClosed:
      return {BreakerDecision::kAllow, absl::ZeroDuration()};
    case BreakerState::kOpen: {
      const absl::Time reopens = snapshot.since + settings.open_duration;
      if (now < reopens) return {BreakerDecision::kReject, reopens - now};
      return {BreakerDecision::kNeedProbe, absl::ZeroDuration()};
    }
    case BreakerState::kHalfOpen: {
      // A probe that never reports (abandoned, its worker gone) must not
      // keep the breaker half-open for ever: permits renew after
      // open_duration.
      const absl::Time renews = snapshot.since + settings.open_duration;
      if (snapshot.probes_granted >= settings.half_open_probes &&
          now < renews) {
        return {BreakerDecision::kReject,
                std::min(renews - now, absl::Seconds(1))};
      }
      return {BreakerDecision::kNeedProbe, absl::ZeroDuration()};
    }
  }
  return {BreakerDecision::kAllow, absl::ZeroDuration()};
}

bool TakeProbe(BreakerSnapshot& snapshot, const BreakerSettings& settings,
               absl::Time now) {
  if (snapshot.state == BreakerState::kClosed) return true;
  if (snapshot.state == BreakerState::kOpen) {
    if (now < snapshot.since + settings.open_duration) return false;
    Enter(snapshot, BreakerState::kHalfOpen, now);
  } else if (snapshot.probes_granted >= settings.half_open_probes &&
             now >= snapshot.since + settings.open_duration) {
    Enter(snapshot, BreakerState::kHalfOpen, now);  // Lost probes: new permits.
  }
  if (snapshot.probes_granted >= settings.half_open_probes) return false;
  ++snapshot.probes_granted;
  return true;
}

bool RecordOutcome(BreakerSnapshot& snapshot, const BreakerSettings& settings,
                   ComputeOutcome outcome, absl::Time now) {
  const bool failure = outcome == ComputeOutcome::kFailure;
  switch (snapshot.state) {
    case BreakerState::kOpen:
      return false;  // Stragglers from before it opened change nothing.
    case BreakerState::kHalfOpen:
      Enter(snapshot, failure ? BreakerState::kOpen : BreakerState::kClosed,
            now);
      return true;
    case BreakerState::kClosed:
      break;
  }
  const int64_t id = BucketId(settings, now);
  BreakerSnapshot::Bucket& bucket =
      snapshot.buckets[static_cast<size_t>(id % BreakerSnapshot::kBuckets)];
  if (bucket.id != id) bucket = BreakerSnapshot::Bucket{id, 0, 0, 0};
  if (failure) {
    ++bucket.failures;
    ++snapshot.consecutive_failures;
  } else {
    ++bucket.successes;
    if (outcome == ComputeOutcome::kSlowSuccess) ++bucket.slow;
    snapshot.consecutive_failures = 0;
  }
  if (Trips(snapshot, settings, now)) {
    Enter(snapshot, BreakerState::kOpen, now);
    return true;
  }
  return false;
}

}  // namespace corral
