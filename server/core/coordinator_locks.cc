// The Coordinator: AcquireLock waits.
#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/coordinator.h"
#include "server/core/coordinator_internal.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"

namespace corral {

using namespace coordinator_internal;  // NOLINT: this file's own helpers.

// ---------------------------------------------------------------------------
// AcquireLock
// ---------------------------------------------------------------------------

Coordinator::CallId Coordinator::AcquireLock(AcquireLockRequest request,
                                             Callback<LockGrant> done) {
  CallId id = next_id_.fetch_add(1);
  executor_.Post([this, id, request = std::move(request),
                  done = std::move(done)]() mutable {
    DoAcquireLock(id, std::move(request), std::move(done));
  });
  return id;
}

void Coordinator::DoAcquireLock(CallId id, AcquireLockRequest request,
                                Callback<LockGrant> done) {
  if (shutting_down_) return done(ShuttingDown());
  auto settings = Settings(request.key);
  if (!settings.ok()) return done(settings.status());
  if (absl::Status owner = ValidateLabel("owner", request.owner); !owner.ok()) {
    return done(owner);
  }
  const LimitSettings& limits = registry_.limits();
  auto ttl = ResolveDuration("ttl", request.ttl, settings->lease_ttl,
                             DurationRule::kPositive, limits.max_wait);
  if (!ttl.ok()) return done(ttl.status());
  auto wait = ResolveDuration("wait_timeout", request.wait_timeout,
                              settings->wait_timeout,
                              DurationRule::kNonNegative, limits.max_wait);
  if (!wait.ok()) return done(wait.status());

  // The waiter exists from here on, so a cancellation at any point finds it.
  const absl::Time now = clock_.Now();
  LockWaiter& w = lock_waiters_[id];
  w.id = id;
  w.ttl = *ttl;
  w.token = NewToken();
  w.started = now;
  w.done = std::move(done);
  w.request = std::move(request);
  // A lock is taken to compute: an open breaker fails it fast.
  breakers_.Admit(*settings, [this, id, wait = *wait](BreakerVerdict verdict) {
    auto it = lock_waiters_.find(id);
    if (it == lock_waiters_.end()) return;  // Cancelled meanwhile.
    if (!verdict.allowed)
      return TakeLockWaiter(id, "").done(BreakerOpen(verdict.retry_after));
    StartLockWait(id, wait);
  });
}

void Coordinator::StartLockWait(CallId id, absl::Duration wait) {
  LockWaiter& w = lock_waiters_.at(id);
  if (shutting_down_) return TakeLockWaiter(id, "").done(ShuttingDown());
  const absl::Time now = clock_.Now();
  absl::Duration budget = std::min(wait, w.request.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Try once, outside the queue: nobody waits, so nobody is overtaken.
    CacheKey key = w.request.key;
    store_.TryLock(
        key, w.token, w.ttl,
        [this, id, key, token = w.token](absl::StatusOr<LockAttempt> r) {
          if (!lock_waiters_.contains(id)) {
            // Cancelled while we asked: give back what we got.
            if (r.ok() && r->acquired) {
              store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                                 [](absl::StatusOr<bool>) {});
            }
            return;
          }
          LockWaiter waiter = TakeLockWaiter(id, !r.ok()       ? "error"
                                                 : r->acquired ? "acquired"
                                                               : "contended");
          if (!r.ok()) return waiter.done(r.status());
          if (r->acquired) {
            // Try-once: no wait for budget either.
            return GrantLockAfterBudget(std::move(waiter), *r, clock_.Now(),
                                        nullptr);
          }
          LockGrant grant;
          grant.acquired = false;
          waiter.done(grant);
        });
    return;
  }
  if (absl::Status admitted = AdmitWaiter(w.request.key); !admitted.ok()) {
    return TakeLockWaiter(id, "").done(admitted);
  }
  w.wait_until = now + budget;
  w.timer = executor_.RunAfter(budget, [this, id] { OnLockWaitTimeout(id); });
  observer_.OnWaitersChanged(w.request.key.ns, +1);
  Enqueue(w.request.key, QueueEntry{true, id});
  Pump(w.request.key);
}

void Coordinator::GrantLockAfterBudget(LockWaiter w, const LockAttempt& attempt,
                                       absl::Time wait_until,
                                       absl::AnyInvocable<void()> finished) {
  auto settings = Settings(w.request.key);
  if (!settings.ok() || !settings->compute_budget.enabled()) {
    LockGrant grant;
    grant.acquired = true;
    grant.token = w.token;
    grant.fencing_token = attempt.fencing_token;
    grant.expires_at = attempt.expires_at;
    grant.waited = clock_.Now() - w.started;
    w.done(grant);
    if (finished) finished();
    return;
  }
  // The lock is held while the grant waits for budget; renewed if that takes
  // a third of its ttl.
  const CacheKey key = w.request.key;
  const std::string token = w.token;
  const absl::Duration ttl = w.ttl;
  auto renewed = std::make_shared<absl::Time>(clock_.Now());
  auto waiter = std::make_shared<LockWaiter>(std::move(w));
  budget_.Charge(
      *settings, token, ttl, wait_until,
      [this, key, token, ttl, renewed] {
        if (clock_.Now() - *renewed >= ttl / 3) {
          *renewed = clock_.Now();
          store_.RenewLock(key, token, ttl,
                           [](absl::StatusOr<std::optional<absl::Time>>) {});
        }
        return true;
      },
      [this, key, waiter, attempt,
       finished = std::move(finished)](BudgetVerdict v) mutable {
        LockWaiter& w = *waiter;
        if (v.admitted) {
          LockGrant grant;
          grant.acquired = true;
          grant.token = w.token;
          grant.fencing_token = attempt.fencing_token;
          grant.expires_at = attempt.expires_at;
          grant.waited = clock_.Now() - w.started;
          w.done(grant);
          if (finished) finished();
          return;
        }
        observer_.OnBudgetRejected(key.ns);
        LOG_EVENT("budget_exhausted", key, "limit=", v.limit,
                  " retry_after_ms=", absl::ToInt64Milliseconds(v.retry_after),
                  CallerField("owner", w.request.owner));
        w.done(ComputeBudgetExhausted(
            absl::StrCat("no lock grant admitted (", v.limit,
                         ") within the caller's wait"),
            v.retry_after));
        store_.ReleaseLock(key, w.token, ReleaseNotice::kReleased,
                           [this, key, finished = std::move(finished)](
                               absl::StatusOr<bool>) mutable {
                             if (finished) finished();
                             Wake(key);
                           });
      });
}

void Coordinator::CancelAcquire(CallId id) {
  executor_.Post([this, id] {
    if (lock_waiters_.contains(id)) TakeLockWaiter(id, "");
  });
}

Coordinator::LockWaiter Coordinator::TakeLockWaiter(CallId id,
                                                    absl::string_view outcome) {
  auto it = lock_waiters_.find(id);
  LockWaiter w = std::move(it->second);
  lock_waiters_.erase(it);
  const std::string& ns = w.request.key.ns;
  if (w.timer != 0) {
    // It was queued: it stops waiting now.
    executor_.Cancel(w.timer);
    observer_.OnWaitersChanged(ns, -1);
    observer_.OnWaitEnded(ns, clock_.Now() - w.started);
    LeaveQueue(w.request.key);
  }
  if (!outcome.empty()) {
    observer_.OnLockAcquisition(ns, outcome);
    // Every grant and timeout, with who asked: a timeout at info (someone
    // held the lock too long), the rest per call, at debug.
    if (outcome == "timeout") {
      LOG_EVENT("lock_wait_timeout", w.request.key, "waited_ms=",
                absl::ToInt64Milliseconds(clock_.Now() - w.started),
                CallerField("owner", w.request.owner));
    } else {
      LOG_DEBUG_EVENT("lock_attempt", w.request.key, "outcome=", outcome,
                      CallerField("owner", w.request.owner));
    }
  }
  return w;
}

void Coordinator::OnLockWaitTimeout(CallId id) {
  if (!lock_waiters_.contains(id)) return;
  LockWaiter w = TakeLockWaiter(id, "timeout");
  LockGrant grant;
  grant.acquired = false;
  grant.waited = clock_.Now() - w.started;
  w.done(grant);
}

}  // namespace corral
