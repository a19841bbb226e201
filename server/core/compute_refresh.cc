// ComputeSessions: freshness without herds (docs/ARCHITECTURE.md, section
// 2, Step 10). A value past its TTL (inside the stale window) is served at
// once to callers that accept it while one caller, fleet-wide, refreshes it;
// a fresh value near its expiry is refreshed early (early_refresh.h).
// Either way the refresher holds the key's lock, so at most one refresh per
// key runs in the fleet, and nobody waits for it.
#include <utility>

#include "absl/random/distributions.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/compute_sessions.h"
#include "server/core/early_refresh.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"
#include "server/core/value_view.h"

namespace corral {

bool ComputeSessions::WantsEarlyRefresh(const Session& s,
                                        const StoredValue& value) {
  if (s.half_closed) return false;
  if (value.expires_at <= s.refresh_due_for) return true;  // Drawn already.
  const double u =
      early_refresh_draw_
          ? early_refresh_draw_()
          : absl::Uniform<double>(absl::IntervalOpenClosed, rng_, 0.0, 1.0);
  return EarlyRefreshDue(clock_.Now(), s.ns.early_refresh_beta, value, u);
}

bool ComputeSessions::IsReadingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.state == SessionState::kReading &&
         it->second.lookup.key == key && !shutting_down_;
}

void ComputeSessions::StartRefresh(Session& s, StoredValue current,
                                   absl::string_view trigger) {
  const CacheKey key = s.lookup.key;
  const CallId sid = s.call_id;
  flights_.For(key).refresh_attempt = true;
  std::string token = NewLockToken();
  store_.TryLockAndRead(
      key, token, s.lease_ttl,
      [this, key, sid, token, current = std::move(current),
       trigger](absl::StatusOr<LockAttempt> attempt) mutable {
        if (Flight* f = flights_.Find(key)) f->refresh_attempt = false;
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
                flights_.MaybeRetire(
                    key);  // The flight kept for the attempt goes.
              });
        });
      });
}

void ComputeSessions::EndRefreshAttempt(const CacheKey& key, CallId sid,
                                        const StoredValue& current,
                                        const std::string& token,
                                        bool release) {
  if (release) {
    store_.ReleaseLock(
        key, token, ReleaseNotice::kReleased,
        [this, key](absl::StatusOr<bool>) {
          flights_.Wake(
              key);  // A waiter on this replica may take the lock now.
        });
  }
  if (IsReadingSession(sid, key)) {
    SendValue(sessions_.at(sid), current,
              IsFresh(current) ? Source::kCache : Source::kStale);
  }
  flights_.MaybeRetire(key);
}

}  // namespace corral
