// ComputeSessions: protecting the upstream (docs/ARCHITECTURE.md, section
// 3.11). A wait that times out while the key's holder is alive hedges at most
// max_hedges times per lease fleet-wide (HEDGE); every lease is charged to
// the namespace's compute budget before it is handed out.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/compute_sessions.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {

void ComputeSessions::HedgeOrWaitOn(Session& s) {
  // The caller stays in the queue while this is decided: a fill meanwhile
  // serves it, the lock may still come to it, and the flight (with its
  // subscription) stays as it is rather than going and coming back.
  s.hedge_decided = true;
  const CacheKey key = s.lookup.key;
  const CallId id = s.call_id;
  auto waiting = [this, id, key]() -> Session* {
    // Won the lock meanwhile: the budget's verdict decides what it gets.
    if (!IsWaitingSession(id, key) || sessions_.at(id).charging_lock)
      return nullptr;
    return &sessions_.at(id);
  };
  store_.Get(key, [this, key, waiting](absl::StatusOr<KeyRead> r) {
    Session* found = waiting();
    if (found == nullptr) return;  // Served, leased or gone meanwhile.
    Session& s = *found;
    const bool hit = r.ok() && r->value.has_value() && IsFresh(*r->value);
    observer_.OnLookup(key.ns, LookupStage::kAfterTimeout, hit);
    if (hit) {
      StopWaiting(s);
      return SendValue(s, *r->value, Source::kCacheAfterTimeout);
    }
    if (r.ok() && r->failed_until > clock_.Now()) {
      StopWaiting(s);
      return FailRemembered(s, r->failed_until);
    }
    // A caller that half-closed cannot fill: it only asks whether someone
    // computes (max_hedges 0), and waits on if so.
    const bool can_compute = !s.half_closed && s.sink != nullptr;
    store_.ClaimHedge(
        key, can_compute ? s.ns.max_hedges : 0, s.ns.max_compute_time,
        [this, key, can_compute, waiting](absl::StatusOr<HedgeClaim> claim) {
          Session* found = waiting();
          if (found == nullptr) return;
          Session& s = *found;
          if (!claim.ok()) {
            // The store cannot say whether anyone computes: the seed's
            // behaviour (with the store down, replicas coordinate alone).
            LOG_EVENT("hedge_claim_failed", key, "error=\"",
                      claim.status().message(), "\"");
            StopWaiting(s);
            if (!can_compute) return WaitOn(s);
            return GrantOnTimeout(s, /*hedge=*/false);
          }
          switch (claim->result) {
            case HedgeClaim::Result::kGranted:
              LOG_EVENT(
                  "hedge", key, "hedges=", claim->hedges,
                  " max_hedges=", s.ns.max_hedges, " wait_ms=",
                  absl::ToInt64Milliseconds(clock_.Now() - s.wait_started),
                  CallerField("worker_id", s.lookup.worker_id));
              StopWaiting(s);
              return GrantOnTimeout(s, /*hedge=*/true);
            case HedgeClaim::Result::kRefused:
              // The holder is alive and its hedges are taken: its fill (or
              // a hedge's) serves this caller.
              LOG_DEBUG_EVENT("wait_on", key, "hedges=", claim->hedges);
              return ArmWaitTimer(s, WaitOnFor(s));
            case HedgeClaim::Result::kNoHolder:
              // Nobody computes (the holder released, or died and its lock
              // expired). A caller that can compute stays queued for the
              // lock; one that half-closed has nobody to wait for.
              if (!can_compute) {
                return FinishSession(
                    s, WithReason(absl::DeadlineExceededError(
                                      "no value within wait_timeout, and "
                                      "nobody computes it (the stream was "
                                      "half-closed, so it could not "
                                      "compute)"),
                                  kReasonWaitTimeout));
              }
              ArmWaitTimer(s, WaitOnFor(s));
              return flights_.Wake(key);
          }
        });
  });
}

absl::Duration ComputeSessions::WaitOnFor(const Session& s) const {
  return std::min(s.ns.max_compute_time, s.lookup.deadline - clock_.Now());
}

void ComputeSessions::WaitOn(Session& s) { BeginWait(s, WaitOnFor(s)); }

void ComputeSessions::GrantOnTimeout(Session& s, bool hedge) {
  const CallId id = s.call_id;
  const CacheKey key = s.lookup.key;
  breakers_.Admit(s.ns, [this, id, key, hedge](BreakerVerdict verdict) {
    if (!IsReadingSession(id, key)) return;
    Session& s = sessions_.at(id);
    if (!verdict.allowed) return RejectForBreaker(s, verdict);
    // An unlocked lease ends with its fill or abandon; its slot is not
    // renewed, so it is held for the longest compute.
    ChargeForLease(
        s, s.ns.max_compute_time, /*wait=*/false,
        [this, id, key] {
          return IsReadingSession(id, key) && sessions_.at(id).sink != nullptr;
        },
        [this, id, key, hedge](const BudgetVerdict& v) {
          if (v.withdrawn || !IsReadingSession(id, key)) return;
          Session& s = sessions_.at(id);
          if (!v.admitted) {
            // No hedge without budget: wait on for the holder instead.
            if (hedge) return WaitOn(s);
            return RejectForBudget(s, v);
          }
          s.budget_slot = v.slot;
          if (!hedge) {
            LOG_EVENT("unlocked_compute", key, "cause=wait_timeout wait_ms=",
                      absl::ToInt64Milliseconds(s.wait_timeout));
          }
          GrantLease(s, LeaseMode::kUnlockedTimeout, 0, "");
        });
  });
}

void ComputeSessions::ChargeForLease(
    Session& s, absl::Duration hold, bool wait,
    absl::AnyInvocable<bool()> still_wanted,
    absl::AnyInvocable<void(const BudgetVerdict&)> then) {
  // Over budget, a caller that accepts a stale value takes it at once;
  // others wait for budget up to their wait_timeout (or call deadline).
  absl::Time deadline = clock_.Now();
  if (wait) {
    const Flight* f = flights_.Find(s.lookup.key);
    const bool stale_on_hand =
        s.lookup.allow_stale && f != nullptr && f->stale.has_value();
    if (!stale_on_hand) {
      deadline = std::min(s.wait_started + s.wait_timeout, s.lookup.deadline);
    }
  }
  const std::string slot = s.token.empty() ? NewLockToken() : s.token;
  budget_.Charge(
      s.ns, slot, hold, deadline, std::move(still_wanted),
      [then = std::move(then)](BudgetVerdict v) mutable { then(v); });
}

void ComputeSessions::ChargeLockedLease(const CacheKey& key, CallId sid,
                                        uint64_t fence,
                                        const std::string& token) {
  Session& s = sessions_.at(sid);
  // While it waits for budget the caller keeps the lock (the key's other
  // callers wait for it, here and elsewhere) and renews it; the flight's
  // attempt stays in flight until then.
  auto renewed = std::make_shared<absl::Time>(clock_.Now());
  s.charging_lock = true;
  ChargeForLease(
      s, s.lease_ttl, /*wait=*/true,
      [this, key, sid, token, renewed] {
        if (!IsWaitingSession(sid, key) || sessions_.at(sid).half_closed)
          return false;
        const Session& s = sessions_.at(sid);
        if (clock_.Now() - *renewed >= s.lease_ttl / 3) {
          *renewed = clock_.Now();
          store_.RenewLock(key, token, s.lease_ttl,
                           [](absl::StatusOr<std::optional<absl::Time>>) {});
        }
        return true;
      },
      [this, key, sid, fence, token](const BudgetVerdict& v) {
        if (auto it = sessions_.find(sid); it != sessions_.end())
          it->second.charging_lock = false;
        if (v.admitted && IsWaitingSession(sid, key)) {
          Session& s = sessions_.at(sid);
          StopWaiting(s);
          s.budget_slot = v.slot;
          GrantLease(s, LeaseMode::kLocked, fence, "");
          return flights_.FinishAttempt(key, /*pump=*/true);
        }
        // The lock goes back, and the attempt ends.
        flights_.ReleaseAndFinish(key, token);
        if (!IsWaitingSession(sid, key)) return;  // It left, or was served.
        Session& s = sessions_.at(sid);
        if (v.withdrawn) {
          // It half-closed: it waits on for what is left of its wait.
          return ArmWaitTimer(s, std::nullopt);
        }
        RejectForBudget(s, v);
      });
}

void ComputeSessions::RejectForBudget(Session& s,
                                      const BudgetVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  const Flight* f = flights_.Find(key);
  if (s.lookup.allow_stale && f != nullptr && f->stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    if (s.state == SessionState::kWaiting) StopWaiting(s);
    return SendValue(s, *f->stale, Source::kStale);
  }
  observer_.OnBudgetRejected(key.ns);
  LOG_EVENT(
      "budget_exhausted", key, "limit=", verdict.limit,
      " retry_after_ms=", absl::ToInt64Milliseconds(verdict.retry_after),
      " wait_ms=", absl::ToInt64Milliseconds(clock_.Now() - s.wait_started),
      CallerField("worker_id", s.lookup.worker_id));
  FinishSession(s, ComputeBudgetExhausted(
                       absl::StrCat("no compute admitted (", verdict.limit,
                                    ") within the caller's wait"),
                       verdict.retry_after));
}

}  // namespace corral
