#include "server/core/lock_waiters.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/token.h"
#include "server/core/validation.h"

namespace corral {

LockWaiters::LockWaiters(Executor& executor, Store& store, const Clock& clock,
                         CoordinatorObserver& observer,
                         BreakerRegistry& breakers, BudgetGate& budget,
                         FlightTable& flights, const LimitSettings& limits)
    : executor_(executor),
      store_(store),
      clock_(clock),
      observer_(observer),
      breakers_(breakers),
      budget_(budget),
      flights_(flights),
      limits_(limits) {}

void LockWaiters::Start(CallId id, AcquireLockRequest request,
                        const NamespaceSettings& settings,
                        Callback<LockGrant> done) {
  if (shutting_down_) return done(ShuttingDown());
  if (absl::Status owner = ValidateLabel("owner", request.owner); !owner.ok()) {
    return done(owner);
  }
  auto ttl = ResolveDuration("ttl", request.ttl, settings.lease_ttl,
                             DurationRule::kPositive, limits_.max_wait);
  if (!ttl.ok()) return done(ttl.status());
  auto wait = ResolveDuration("wait_timeout", request.wait_timeout,
                              settings.wait_timeout, DurationRule::kNonNegative,
                              limits_.max_wait);
  if (!wait.ok()) return done(wait.status());

  // The waiter exists from here on, so a cancellation at any point finds it.
  Entry& w = waiters_[id];
  w.owner = this;
  w.call_id = id;
  w.ttl = *ttl;
  w.token = NewLockToken();
  w.started = clock_.Now();
  w.settings = settings;
  w.done = std::move(done);
  w.request = std::move(request);
  // A lock is taken to compute: an open breaker fails it fast.
  breakers_.Admit(settings, [this, id, wait = *wait](BreakerVerdict verdict) {
    if (!waiters_.contains(id)) return;  // Cancelled meanwhile.
    if (!verdict.allowed)
      return Take(id, "").done(BreakerOpen(verdict.retry_after));
    StartWait(id, wait);
  });
}

void LockWaiters::StartWait(CallId id, absl::Duration wait) {
  Entry& w = waiters_.at(id);
  if (shutting_down_) return Take(id, "").done(ShuttingDown());
  const absl::Time now = clock_.Now();
  absl::Duration budget = std::min(wait, w.request.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Try once, outside the queue: nobody waits, so nobody is overtaken.
    CacheKey key = w.request.key;
    store_.TryLock(
        key, w.token, w.ttl,
        [this, id, key, token = w.token](absl::StatusOr<LockAttempt> r) {
          if (!waiters_.contains(id)) {
            // Cancelled while we asked: give back what we got.
            if (r.ok() && r->acquired) {
              store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                                 [](absl::StatusOr<bool>) {});
            }
            return;
          }
          // Try-once: no wait for budget either (wait_until is past).
          if (r.ok() && r->acquired) return GrantAfterBudget(id, *r, nullptr);
          Entry waiter = Take(id, r.ok() ? "contended" : "error");
          if (!r.ok()) return waiter.done(r.status());
          LockGrant grant;
          grant.acquired = false;
          waiter.done(grant);
        });
    return;
  }
  if (absl::Status admitted = flights_.Admit(w.request.key); !admitted.ok()) {
    return Take(id, "").done(admitted);
  }
  w.wait_until = now + budget;
  w.timer = executor_.RunAfter(budget, [this, id] { OnWaitTimeout(id); });
  observer_.OnWaitersChanged(w.request.key.ns, +1);
  flights_.Enqueue(w.request.key, id);
  flights_.Pump(w.request.key);
}

void LockWaiters::Cancel(CallId id) {
  if (waiters_.contains(id)) Take(id, "");
}

Waiter* LockWaiters::Find(CallId id) {
  auto it = waiters_.find(id);
  return it == waiters_.end() ? nullptr : &it->second;
}

void LockWaiters::ShutDown() {
  shutting_down_ = true;
  std::vector<CallId> ids;
  for (const auto& [id, w] : waiters_) ids.push_back(id);
  for (CallId id : ids) Take(id, "").done(ShuttingDown());
}

void LockWaiters::AddNamespaces(absl::flat_hash_set<std::string>& into) const {
  for (const auto& [id, w] : waiters_) into.insert(w.request.key.ns);
}

LockWaiters::Entry LockWaiters::Take(CallId id, absl::string_view outcome) {
  auto it = waiters_.find(id);
  Entry w = std::move(it->second);
  waiters_.erase(it);
  StopWaiting(w, outcome);
  return w;
}

void LockWaiters::StopWaiting(Entry& w, absl::string_view outcome) {
  const std::string& ns = w.request.key.ns;
  if (w.timer != 0) {
    // It was queued: it stops waiting now.
    executor_.Cancel(w.timer);
    w.timer = 0;
    observer_.OnWaitersChanged(ns, -1);
    observer_.OnWaitEnded(ns, clock_.Now() - w.started);
    flights_.Leave(w.request.key);
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
}

void LockWaiters::OnWaitTimeout(CallId id) {
  if (!waiters_.contains(id)) return;
  Entry w = Take(id, "timeout");
  LockGrant grant;
  grant.acquired = false;
  grant.waited = clock_.Now() - w.started;
  w.done(grant);
}

void LockWaiters::Entry::OnLockWon(const CacheKey& key, std::string won_token,
                                   const LockAttempt& attempt) {
  (void)won_token;  // Its own token.
  LockWaiters* waiters = owner;
  // The attempt stays in flight (the key's queue waits) until the budget
  // has its say.
  waiters->GrantAfterBudget(call_id, attempt, [waiters, key] {
    waiters->flights_.FinishAttempt(key, /*pump=*/true);
  });
}

void LockWaiters::GrantAfterBudget(CallId id, const LockAttempt& attempt,
                                   absl::AnyInvocable<void()> finished) {
  Entry& w = waiters_.at(id);
  // Out of the queue first (`won` makes it no longer wait there).
  w.won = true;
  StopWaiting(w, "acquired");
  const CacheKey key = w.request.key;
  const std::string token = w.token;
  const absl::Duration ttl = w.ttl;
  auto renewed = std::make_shared<absl::Time>(clock_.Now());
  // A namespace without a budget answers inline.
  budget_.Charge(
      w.settings, token, ttl, w.wait_until,
      [this, id, key, token, ttl, renewed] {
        // Cancelled (or shut down) meanwhile: the grant is not wanted.
        if (!waiters_.contains(id)) return false;
        // The lock is held while the grant waits for budget.
        if (clock_.Now() - *renewed >= ttl / 3) {
          *renewed = clock_.Now();
          store_.RenewLock(key, token, ttl,
                           [](absl::StatusOr<std::optional<absl::Time>>) {});
        }
        return true;
      },
      [this, id, key, token, attempt,
       finished = std::move(finished)](BudgetVerdict v) mutable {
        const bool wanted = waiters_.contains(id);
        if (v.admitted && wanted) {
          Entry w = Take(id, "");
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
        if (wanted) {
          Entry w = Take(id, "");
          observer_.OnBudgetRejected(key.ns);
          LOG_EVENT(
              "budget_exhausted", key, "limit=", v.limit,
              " retry_after_ms=", absl::ToInt64Milliseconds(v.retry_after),
              CallerField("owner", w.request.owner));
          w.done(ComputeBudgetExhausted(
              absl::StrCat("no lock grant admitted (", v.limit,
                           ") within the caller's wait"),
              v.retry_after));
        }
        // Refused, or nobody wants it any more: the lock goes back.
        store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                           [this, key, finished = std::move(finished)](
                               absl::StatusOr<bool>) mutable {
                             if (finished) {
                               finished();
                             } else {
                               flights_.Wake(key);
                             }
                           });
      });
}

void LockWaiters::Entry::OnLockUnavailable(const absl::Status& error) {
  // Nobody can be promised the fleet-wide lock now: the caller hears it at
  // once rather than at its timeout.
  owner->Take(call_id, "error").done(error);  // Erased: `this` is gone.
}

}  // namespace corral
