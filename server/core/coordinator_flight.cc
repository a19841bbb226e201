// The Coordinator: the flight (shared reads, one FIFO, one lock attempt at a
// time), degraded coordination and breaker refusals.
#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/coordinator.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"

namespace corral {

// ---------------------------------------------------------------------------
// The flight: shared reads, one FIFO, one lock attempt at a time
// ---------------------------------------------------------------------------

Waiter* Coordinator::FindWaiter(CallId id) {
  // Ids come from one counter: an id names a session or a lock waiter.
  if (auto it = sessions_.find(id); it != sessions_.end()) return &it->second;
  return lock_waiters_.Find(id);
}

bool Coordinator::IsWaitingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.WaitsOn(key);
}

bool Coordinator::StillHoldsLock(CallId holder, const CacheKey& key) {
  auto it = sessions_.find(holder);
  return it != sessions_.end() && HoldsKeyLock(it->second) &&
         it->second.lookup.key == key;
}

void Coordinator::OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result) {
  // read_in_flight stays set while the readers are handled, so the flight
  // cannot be retired under us.
  std::vector<CallId> readers;
  readers.swap(flights_.For(key).readers);
  std::vector<Callback<GetResult>> get_readers;
  get_readers.swap(flights_.For(key).get_readers);
  const StoredValue* found =
      result.ok() && result->value.has_value() ? &*result->value : nullptr;
  const bool hit = found != nullptr && IsFresh(*found);
  // Everyone this read serves shares one copy of the bytes.
  std::shared_ptr<const std::string> bytes;
  if (found != nullptr)
    bytes = std::make_shared<const std::string>(found->value);
  for (Callback<GetResult>& done : get_readers) {
    if (!result.ok()) {
      done(result.status());
      continue;
    }
    GetResult got;
    if (hit) {
      got.found = true;
      got.value = ViewOf(*found, Source::kCache, bytes);
    }
    done(std::move(got));
  }
  // A value past its TTL, kept for the stale window: what allow_stale
  // callers get while it is refreshed, or while the breaker refuses.
  if (found != nullptr && !hit) flights_.For(key).stale = *found;
  const bool failed = result.ok() && result->failed_until > clock_.Now();
  // One caller of this read may try to refresh the value, if no failure is
  // remembered. The lock decides whether it does: a compute or refresh under
  // way elsewhere holds it (and the attempt reads a failure remembered since).
  bool may_refresh =
      result.ok() && !failed && !flights_.For(key).refresh_attempt;

  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      continue;
    Session& s = it->second;
    observer_.OnLookup(key.ns, LookupStage::kInitial, hit);
    if (hit) {
      if (may_refresh && WantsEarlyRefresh(s, *found)) {
        may_refresh = false;
        StartRefresh(s, *found, "early");
      } else {
        SendValue(s, *found, Source::kCache, bytes);
      }
      continue;
    }
    if (found != nullptr && s.lookup.allow_stale) {
      // Stale-while-revalidate: the old value now, one caller refreshes.
      if (may_refresh && !s.half_closed) {
        may_refresh = false;
        StartRefresh(s, *found, "stale");
      } else {
        SendValue(s, *found, Source::kStale, bytes);
      }
      continue;
    }
    if (failed) {
      FailRemembered(s, result->failed_until);
      continue;
    }
    if (!result.ok() && !(absl::IsUnavailable(result.status()) &&
                          s.ns.on_store_unavailable ==
                              StoreUnavailablePolicy::kCoordinateLocally)) {
      FinishSession(s, result.status());
      continue;
    }
    if (!result.ok()) {
      // Coordinating locally: a value this replica computed during the
      // outage serves like a cache hit.
      auto local = degraded_values_.find(key);
      if (local != degraded_values_.end() && IsFresh(local->second)) {
        SendValue(s, local->second, Source::kCache);
        continue;
      }
    }
    // A miss (or, with the store down, coordination on this replica alone).
    BeginWait(s);
  }
  // A read that an event asked for (kWatching/kResync) serves the waiters.
  if (hit) ServeAll(key, *found, Source::kPeerFill, LookupStage::kAfterWait);

  flights_.EndRead(key, result.ok(), hit);
}

void Coordinator::BeginWait(Session& s, std::optional<absl::Duration> wait) {
  // A miss. While the breaker is open it fails fast (no wait for a compute
  // that would be refused).
  if (auto verdict = breakers_.Peek(s.ns);
      verdict.has_value() && !verdict->allowed) {
    return RejectForBreaker(s, *verdict);
  }
  // Wait in line for the lock (or for someone else's fill).
  const CacheKey& key = s.lookup.key;
  if (absl::Status admitted = flights_.Admit(key); !admitted.ok()) {
    return FinishSession(s, admitted);
  }
  s.state = SessionState::kWaiting;
  observer_.OnWaitersChanged(key.ns, +1);
  flights_.Enqueue(key, s.call_id);
  ArmWaitTimer(s, wait.value_or(s.wait_timeout));
}

void Coordinator::ArmWaitTimer(Session& s, std::optional<absl::Duration> wait) {
  const absl::Time now = clock_.Now();
  const absl::Duration budget =
      std::min(wait.value_or(s.wait_timeout - (now - s.wait_started)),
               s.lookup.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Zero wait (or none left): straight to the timeout policy.
    OnWaitTimeout(s.call_id);
    return;
  }
  const CallId sid = s.call_id;
  s.wait_timer =
      executor_.RunAfter(budget, [this, sid] { OnWaitTimeout(sid); });
}

bool Coordinator::HoldsKeyLock(const Session& s) {
  // Until its fill is answered the lock is held: the fill releases it.
  return s.state == SessionState::kLeased && HoldsLock(s.mode) && !s.revoked;
}

bool Coordinator::OnSessionAttemptFailed(Session& s, const CacheKey& key,
                                         const absl::Status& error) {
  if (absl::IsUnavailable(error) &&
      s.ns.on_store_unavailable == StoreUnavailablePolicy::kCoordinateLocally) {
    ComputeDegraded(key, s.call_id);
    return false;
  }
  // FAIL policy: every compute waiter of the key gets the error.
  EndWaiters(key, [this, &error](Session& s) { FinishSession(s, error); });
  return true;
}

void Coordinator::OnSessionWonLock(Session& s, const CacheKey& key,
                                   std::string token,
                                   const LockAttempt& attempt) {
  // A GetOrCompute waiter took the lock, with a read of the key: a fill may
  // have landed between its miss and now (the seed's double check).
  executor_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  s.token = token;
  observer_.OnLockAcquisition(key.ns, "acquired");
  const CallId sid = s.call_id;
  const uint64_t fence = attempt.fencing_token;
  auto release = [this, key, token] { flights_.ReleaseAndFinish(key, token); };
  if (!attempt.read.has_value()) {
    // A store that broke TryLockAndRead's contract.
    release();
    return FinishSession(
        s, absl::InternalError("the store took the lock without the read"));
  }
  const KeyRead& read = *attempt.read;
  const bool hit = read.value.has_value() && IsFresh(*read.value);
  observer_.OnLookup(key.ns, LookupStage::kAfterLock, hit);
  if (read.failed_until > clock_.Now()) {
    // The last compute failed, and that is remembered: nobody here
    // computes against it now.
    release();
    const absl::Time until = read.failed_until;
    EndWaiters(key, [this, until](Session& s) { FailRemembered(s, until); });
    return;
  }
  if (hit) {
    // Nothing to compute: the lock goes back.
    release();
    StopWaiting(s);
    SendValue(s, *read.value, Source::kCacheAfterLock);
    ServeAll(key, *read.value, Source::kPeerFill, LookupStage::kAfterLock);
    return;
  }
  if (read.value.has_value()) flights_.For(key).stale = *read.value;
  // The compute is about to start: the breaker has the last word.
  breakers_.Admit(
      s.ns, [this, key, sid, fence, release](BreakerVerdict verdict) {
        // A caller that half-closed while the lock was asked for cannot send a
        // Fill: the lock goes back and it waits on as a reader.
        const bool waiting = IsWaitingSession(sid, key);
        if (waiting && verdict.allowed && !sessions_.at(sid).half_closed) {
          Session& s = sessions_.at(sid);
          StopWaiting(s);
          GrantLease(s, LeaseMode::kLocked, fence, "");
          return flights_.FinishAttempt(key, /*pump=*/true);
        }
        release();
        if (!verdict.allowed) {
          // Everyone here would be refused the same way.
          EndWaiters(key, [this, &verdict](Session& s) {
            RejectForBreaker(s, verdict);
          });
        } else if (waiting) {
          // It half-closed: it waits on for what is left of its wait (its timer
          // was stopped when the lock came).
          ArmWaitTimer(sessions_.at(sid), std::nullopt);
        }
      });
}

void Coordinator::ServeAll(const CacheKey& key, const StoredValue& value,
                           Source source, LookupStage stage) {
  Flight* f = flights_.Find(key);
  if (f == nullptr) return;
  auto bytes =
      std::make_shared<const std::string>(value.value);  // One copy for all.
  // Readers still waiting on a store read can take the value too.
  std::vector<CallId> readers;
  readers.swap(f->readers);
  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      continue;
    observer_.OnLookup(key.ns, LookupStage::kInitial, true);
    SendValue(it->second, value, Source::kCache, bytes);
  }
  EndWaiters(key, [&](Session& s) {
    observer_.OnLookup(key.ns, stage, true);
    SendValue(s, value, source, bytes);
  });
}

void Coordinator::EndWaiters(const CacheKey& key,
                             const std::function<void(Session&)>& end) {
  if (flights_.Find(key) == nullptr) return;
  std::vector<CallId> ending = flights_.TakeFillWaiters(key);
  if (!ending.empty())
    observer_.OnWaitersChanged(key.ns, -static_cast<int>(ending.size()));
  const absl::Time now = clock_.Now();
  for (CallId id : ending) {
    Session& s = sessions_.at(id);
    executor_.Cancel(s.wait_timer);
    s.wait_timer = 0;
    observer_.OnWaitEnded(key.ns, now - s.wait_started);
    s.state = SessionState::kReading;  // Out of the queue; `end` finishes it.
    end(s);
  }
  flights_.MaybeRetire(key);
}

void Coordinator::FailWaiters(const CacheKey& key, const absl::Status& status) {
  EndWaiters(key, [this, &status](Session& s) { FinishSession(s, status); });
}

void Coordinator::ComputeDegraded(const CacheKey& key, CallId sid) {
  flights_.For(key).degraded_holder = sid;  // Pump stays away until it ends.
  // The seed's last-chance check before an unlocked compute.
  store_.Get(key, [this, key, sid](absl::StatusOr<KeyRead> r) {
    std::optional<StoredValue> found;
    if (r.ok() && r->value.has_value() && IsFresh(*r->value)) found = *r->value;
    if (auto local = degraded_values_.find(key);
        !found && local != degraded_values_.end() && IsFresh(local->second)) {
      found = local->second;
    }
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, found.has_value());
    if (found || !IsWaitingSession(sid, key)) {
      if (found)
        ServeAll(key, *found, Source::kPeerFill, LookupStage::kBeforeFallback);
      return EndDegraded(key, sid);
    }
    breakers_.Admit(
        sessions_.at(sid).ns, [this, key, sid](BreakerVerdict verdict) {
          // A caller that half-closed meanwhile cannot send a Fill: it waits
          // on.
          if (!IsWaitingSession(sid, key) || sessions_.at(sid).half_closed) {
            return EndDegraded(key, sid);
          }
          if (!verdict.allowed) {
            EndWaiters(key, [this, &verdict](Session& s) {
              RejectForBreaker(s, verdict);
            });
            return EndDegraded(key, sid);
          }
          Session& s = sessions_.at(sid);
          StopWaiting(s);
          LOG_EVENT("unlocked_compute", key,
                    "cause=store_unavailable scope=this_replica");
          GrantLease(s, LeaseMode::kUnlockedDegraded, 0, "");
        });
  });
}

void Coordinator::StopWaiting(Session& s) {
  executor_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  observer_.OnWaitersChanged(s.lookup.key.ns, -1);
  observer_.OnWaitEnded(s.lookup.key.ns, clock_.Now() - s.wait_started);
  s.state = SessionState::kReading;
  flights_.Leave(s.lookup.key);
}

void Coordinator::EndDegraded(const CacheKey& key, CallId sid) {
  Flight* f = flights_.Find(key);
  if (f == nullptr || f->degraded_holder != sid) return;
  f->degraded_holder = 0;
  flights_.Wake(key);
  flights_.MaybeRetire(key);
}

void Coordinator::RejectForBreaker(Session& s, const BreakerVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  Flight* f = flights_.Find(key);
  if (s.lookup.allow_stale && f != nullptr && f->stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    return SendValue(s, *f->stale, Source::kStale);
  }
  // Still queued unless it failed fast at the miss.
  if (s.state == SessionState::kWaiting) StopWaiting(s);
  FinishSession(s, BreakerOpen(verdict.retry_after));
}

void Coordinator::RecordOutcome(const NamespaceSettings& ns,
                                ComputeOutcome outcome) {
  breakers_.Record(ns, outcome);
}

}  // namespace corral
