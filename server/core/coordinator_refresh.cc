// The Coordinator: freshness without herds. A value past its TTL (inside the
// stale window) is served at once to callers that accept it while one
// caller, fleet-wide, refreshes it; a fresh value near its expiry is
// refreshed early with a probability that rises as expiry nears (XFetch:
// Vattani, Chierichetti, Lowenstein, VLDB 2015). Either way the refresher
// holds the key's lock, so at most one refresh per key runs in the fleet,
// and nobody waits for it.
#include <cmath>
#include <utility>

#include "absl/random/distributions.h"
#include "server/core/coordinator.h"
#include "server/core/coordinator_internal.h"
#include "server/core/log.h"

namespace corral {

using namespace coordinator_internal;  // NOLINT: this file's own helpers.

bool Coordinator::WantsEarlyRefresh(const Session& s,
                                    const StoredValue& value) {
  if (s.half_closed) return false;
  if (value.expires_at <= s.refresh_due_for) return true;  // Drawn already.
  const double u =
      early_refresh_draw_
          ? early_refresh_draw_()
          : absl::Uniform<double>(absl::IntervalOpenClosed, rng_, 0.0, 1.0);
  return EarlyRefreshDue(s.ns.early_refresh_beta, value, u);
}

bool Coordinator::EarlyRefreshDue(double beta, const StoredValue& value,
                                  double u) const {
  if (beta <= 0 || value.compute_time <= absl::ZeroDuration()) return false;
  // now - delta * beta * ln(u) >= expiry, u uniform in (0, 1].
  const absl::Duration head_start = value.compute_time * (beta * -std::log(u));
  return clock_.Now() + head_start >= value.expires_at;
}

bool Coordinator::IsReadingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.state == SessionState::kReading &&
         it->second.lookup.key == key && !shutting_down_;
}

void Coordinator::StartRefresh(Session& s, StoredValue current,
                               absl::string_view trigger) {
  const CacheKey key = s.lookup.key;
  const CallId sid = s.id;
  FlightFor(key).refresh_attempt = true;
  std::string token = NewToken();
  store_.TryLockAndRead(
      key, token, s.lease_ttl,
      [this, key, sid, token, current = std::move(current),
       trigger](absl::StatusOr<LockAttempt> attempt) mutable {
        if (auto f = flights_.find(key); f != flights_.end())
          f->second.refresh_attempt = false;
        const bool acquired = attempt.ok() && attempt->acquired;
        if (!acquired || !IsReadingSession(sid, key)) {
          // Someone else computes or refreshes it (or the caller left).
          return EndRefreshAttempt(key, sid, current, token, acquired);
        }
        // The seed's double check, made with the lock: a fill may have landed
        // since the read; then there is nothing to refresh. Nor while a failure
        // is remembered: the upstream is not asked again before it expires.
        const std::optional<KeyRead>& read = attempt->read;
        if (read.has_value() && read->value.has_value() &&
            read->value->stored_at != current.stored_at) {
          return EndRefreshAttempt(key, sid, *read->value, token,
                                   /*release=*/true);
        }
        if (!read.has_value() || read->failed_until > clock_.Now()) {
          return EndRefreshAttempt(key, sid, current, token, /*release=*/true);
        }
        const uint64_t fence = attempt->fencing_token;
        breakers_.Admit(sessions_.at(sid).ns, [this, key, sid, token, fence,
                                               current = std::move(current),
                                               trigger](
                                                  BreakerVerdict verdict) {
          // An open breaker: the upstream is not asked; the value stays. A
          // caller that half-closed meanwhile could not send the Fill.
          if (!verdict.allowed || !IsReadingSession(sid, key) ||
              sessions_.at(sid).half_closed) {
            return EndRefreshAttempt(key, sid, current, token,
                                     /*release=*/true);
          }
          Session& s = sessions_.at(sid);
          s.token = token;
          s.refresh_trigger = trigger;
          // The caller has a value to return: no wait for budget.
          ChargeForLease(
              s, s.lease_ttl, /*wait=*/false,
              [this, key, sid] {
                return IsReadingSession(sid, key) &&
                       !sessions_.at(sid).half_closed;
              },
              [this, key, sid, token, fence, current](const BudgetVerdict& v) {
                if (!v.admitted || !IsReadingSession(sid, key)) {
                  return EndRefreshAttempt(key, sid, current, token,
                                           /*release=*/true);
                }
                Session& s = sessions_.at(sid);
                s.budget_slot = v.slot;
                LOG_EVENT("refresh", key, "trigger=", s.refresh_trigger,
                          " fencing_token=", fence, " expires_in_ms=",
                          absl::ToInt64Milliseconds(current.expires_at -
                                                    clock_.Now()));
                GrantLease(s, LeaseMode::kRefresh, fence, current.value);
                MaybeRetire(key);  // The flight kept for the attempt goes.
              });
        });
      });
}

void Coordinator::EndRefreshAttempt(const CacheKey& key, CallId sid,
                                    const StoredValue& current,
                                    const std::string& token, bool release) {
  if (release) {
    store_.ReleaseLock(
        key, token, ReleaseNotice::kReleased,
        [this, key](absl::StatusOr<bool>) {
          Wake(key);  // A waiter on this replica may take the lock now.
        });
  }
  if (IsReadingSession(sid, key)) {
    SendValue(sessions_.at(sid), current,
              IsFresh(current) ? Source::kCache : Source::kStale);
  }
  MaybeRetire(key);
}

}  // namespace corral
