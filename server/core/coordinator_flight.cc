// The Coordinator: the flight (shared reads, one FIFO, one lock attempt at a
// time), degraded coordination and breaker refusals.
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
// The flight: shared reads, one FIFO, one lock attempt at a time
// ---------------------------------------------------------------------------

void Coordinator::Read(const CacheKey& key) {
  Flight& f = FlightFor(key);
  // A caller that arrives while a read is under way shares it. A fill that
  // read missed cannot strand it: the caller then waits, and a wait ends in
  // a read after the lock is taken, or after the subscription is confirmed.
  if (f.read_in_flight) return;
  f.read_in_flight = true;
  store_.Get(key, [this, key](absl::StatusOr<KeyRead> r) {
    OnRead(key, std::move(r));
  });
}

void Coordinator::ReadAgain(const CacheKey& key) {
  Flight& f = FlightFor(key);
  if (f.read_in_flight) {
    f.reread = true;
    return;
  }
  Read(key);
}

void Coordinator::OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result) {
  // read_in_flight stays set while the readers are handled, so the flight
  // cannot be retired under us.
  std::vector<CallId> readers;
  readers.swap(FlightFor(key).readers);
  std::vector<Callback<GetResult>> get_readers;
  get_readers.swap(FlightFor(key).get_readers);
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
  if (found != nullptr && !hit) FlightFor(key).stale = *found;
  const bool failed = result.ok() && result->failed_until > clock_.Now();
  // One caller of this read may try to refresh the value, if no failure is
  // remembered. The lock decides whether it does: a compute or refresh under
  // way elsewhere holds it (and the attempt reads a failure remembered since).
  bool may_refresh = result.ok() && !failed && !FlightFor(key).refresh_attempt;

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

  Flight& f = FlightFor(key);
  f.read_in_flight = false;
  if (result.ok()) f.known_miss = !hit;
  if (f.reread) {
    f.reread = false;
    Read(key);
  }
  Pump(key);
  MaybeRetire(key);
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
  if (absl::Status admitted = AdmitWaiter(key); !admitted.ok()) {
    return FinishSession(s, admitted);
  }
  s.state = SessionState::kWaiting;
  observer_.OnWaitersChanged(key.ns, +1);
  Enqueue(key, QueueEntry{false, s.id});
  ArmWaitTimer(s, wait.value_or(s.wait_timeout));
}

void Coordinator::ArmWaitTimer(Session& s, std::optional<absl::Duration> wait) {
  const absl::Time now = clock_.Now();
  const absl::Duration budget =
      std::min(wait.value_or(s.wait_timeout - (now - s.wait_started)),
               s.lookup.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Zero wait (or none left): straight to the timeout policy.
    OnWaitTimeout(s.id);
    return;
  }
  const CallId sid = s.id;
  s.wait_timer =
      executor_.RunAfter(budget, [this, sid] { OnWaitTimeout(sid); });
}

absl::Status Coordinator::AdmitWaiter(const CacheKey& key) {
  // The first caller of a key is the one that will compute; the limits are
  // about callers piling up behind it.
  if (FlightFor(key).waiting == 0) return absl::OkStatus();
  const LimitSettings& limits = registry_.limits();
  if (total_waiting_ >= static_cast<int>(limits.max_waiters)) {
    return TooManyWaiters("on this server", limits.max_waiters);
  }
  if (FlightFor(key).waiting >= static_cast<int>(limits.max_waiters_per_key)) {
    return TooManyWaiters("for this key", limits.max_waiters_per_key);
  }
  return absl::OkStatus();
}

void Coordinator::Enqueue(const CacheKey& key, QueueEntry entry) {
  Flight& f = FlightFor(key);
  f.queue.push_back(entry);
  ++f.waiting;
  ++total_waiting_;
}

void Coordinator::LeaveQueue(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  --f.waiting;
  --total_waiting_;
  // Drop skipped entries at the front now, the rest when they come up.
  while (!f.queue.empty()) {
    const QueueEntry& e = f.queue.front();
    bool live =
        e.is_lock ? lock_waiters_.contains(e.id) : IsWaitingSession(e.id, key);
    if (live) break;
    f.queue.pop_front();
  }
  // A queue mostly made of departed callers is compacted.
  if (f.queue.size() > 64 &&
      f.queue.size() > 4 * static_cast<size_t>(f.waiting)) {
    std::deque<QueueEntry> kept;
    for (const QueueEntry& e : f.queue) {
      bool live = e.is_lock ? lock_waiters_.contains(e.id)
                            : IsWaitingSession(e.id, key);
      if (live) kept.push_back(e);
    }
    f.queue.swap(kept);
  }
  MaybeRetire(key);
}

bool Coordinator::IsWaitingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.state == SessionState::kWaiting &&
         it->second.lookup.key == key;
}

void Coordinator::Pump(const CacheKey& key) {
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  Flight& f = fit->second;
  if (f.waiting == 0 || f.held_elsewhere || f.attempt_in_flight ||
      f.degraded_holder != 0 || HoldsLockHere(f, key)) {
    return;
  }
  // The head: the first live waiter that can take the lock. A GetOrCompute
  // waiter that half-closed cannot send a Fill, so it only waits for one.
  std::optional<QueueEntry> head;
  while (!f.queue.empty()) {
    const QueueEntry& e = f.queue.front();
    bool live =
        e.is_lock ? lock_waiters_.contains(e.id) : IsWaitingSession(e.id, key);
    if (!live) {
      f.queue.pop_front();
      continue;
    }
    break;
  }
  for (const QueueEntry& e : f.queue) {
    if (e.is_lock) {
      if (lock_waiters_.contains(e.id)) {
        head = e;
        break;
      }
    } else if (IsWaitingSession(e.id, key) && !sessions_.at(e.id).half_closed) {
      head = e;
      break;
    }
  }
  if (!head) {
    // Everyone here half-closed: nobody may take the lock, but each still
    // gets the value of whoever fills it, so the key is watched.
    if (f.waiting > 0) EnsureWatching(key);
    return;
  }
  std::string token;
  absl::Duration ttl;
  if (head->is_lock) {
    const LockWaiter& w = lock_waiters_.at(head->id);
    token = w.token;
    ttl = w.ttl;
  } else {
    token = NewToken();
    ttl = sessions_.at(head->id).lease_ttl;
  }
  f.attempt_in_flight = true;
  f.repump = false;
  auto on_attempt = [this, key, h = *head, token,
                     ttl](absl::StatusOr<LockAttempt> r) mutable {
    OnAttempt(key, h, std::move(token), ttl, std::move(r));
  };
  // A compute reads the key with the lock (the seed's double check).
  if (head->is_lock) {
    store_.TryLock(key, token, ttl, std::move(on_attempt));
  } else {
    store_.TryLockAndRead(key, token, ttl, std::move(on_attempt));
  }
}

bool Coordinator::HoldsKeyLock(const Session& s) {
  // Until its fill is answered the lock is held: the fill releases it.
  return s.state == SessionState::kLeased && HoldsLock(s.mode) && !s.revoked;
}

bool Coordinator::HoldsLockHere(Flight& f, const CacheKey& key) {
  if (f.lease_holder == 0) return false;
  auto it = sessions_.find(f.lease_holder);
  if (it != sessions_.end() && HoldsKeyLock(it->second) &&
      it->second.lookup.key == key) {
    return true;
  }
  f.lease_holder = 0;
  return false;
}

void Coordinator::Wake(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  f.held_elsewhere = false;
  if (f.attempt_in_flight) {
    f.repump = true;  // The attempt under way may predate the wake-up.
    return;
  }
  Pump(key);
}

void Coordinator::FinishAttempt(const CacheKey& key, bool pump) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  f.attempt_in_flight = false;
  pump = pump || f.repump;
  f.repump = false;
  if (pump) Pump(key);
  MaybeRetire(key);
}

void Coordinator::OnAttempt(const CacheKey& key, QueueEntry head,
                            std::string token, absl::Duration ttl,
                            absl::StatusOr<LockAttempt> result) {
  // attempt_in_flight stays set until FinishAttempt, so the flight stays.
  (void)ttl;
  const bool head_live = head.is_lock ? lock_waiters_.contains(head.id)
                                      : IsWaitingSession(head.id, key);
  if (!result.ok()) {
    LOG_EVENT("lock_attempt_failed", key, "error=\"", result.status().message(),
              "\"");
    // Nobody can be promised the fleet-wide lock now: lock callers get the
    // error at once rather than at their timeout.
    std::vector<CallId> lock_ids;
    for (const QueueEntry& e : FlightFor(key).queue) {
      if (e.is_lock && lock_waiters_.contains(e.id)) lock_ids.push_back(e.id);
    }
    for (CallId id : lock_ids)
      TakeLockWaiter(id, "error").done(result.status());
    if (!head.is_lock && IsWaitingSession(head.id, key)) {
      Session& s = sessions_.at(head.id);
      if (absl::IsUnavailable(result.status()) &&
          s.ns.on_store_unavailable ==
              StoreUnavailablePolicy::kCoordinateLocally) {
        ComputeDegraded(key, s.id);
        return FinishAttempt(key, /*pump=*/false);
      }
      // FAIL policy: every compute waiter of the key gets the error.
      const absl::Status error = result.status();
      EndWaiters(key, [this, &error](Session& s) { FinishSession(s, error); });
    }
    return FinishAttempt(key, /*pump=*/true);
  }
  if (result->acquired && !head_live) {
    // The caller left while we asked; give the lock straight back.
    store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                       [this, key](absl::StatusOr<bool>) {
                         FinishAttempt(key, /*pump=*/true);
                       });
    return;
  }
  if (!result->acquired) {
    // Someone else holds the lock. Listen for its release or fill, and come
    // back when it would expire if no word comes (its holder may have died).
    EnsureWatching(key);
    Flight& f = FlightFor(key);
    // Unless a wake-up came while we asked, the lock stays held until an
    // event or the holder's expiry says otherwise.
    if (!f.repump) f.held_elsewhere = true;
    RetryAt(key, result->expires_at);
    // Tries again at once only if a wake-up came while we asked.
    return FinishAttempt(key, /*pump=*/false);
  }
  if (head.is_lock) {
    LockWaiter w = TakeLockWaiter(head.id, "acquired");
    const absl::Time wait_until = w.wait_until;
    // The attempt stays in flight (the key's queue waits) until the budget
    // has its say.
    return GrantLockAfterBudget(std::move(w), *result, wait_until, [this, key] {
      FinishAttempt(key, /*pump=*/true);
    });
  }
  // A GetOrCompute waiter took the lock, with a read of the key: a fill may
  // have landed between its miss and now (the seed's double check).
  Session& s = sessions_.at(head.id);
  executor_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  s.token = token;
  observer_.OnLockAcquisition(key.ns, "acquired");
  const CallId sid = s.id;
  const uint64_t fence = result->fencing_token;
  auto release = [this, key, token] {
    store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                       [this, key](absl::StatusOr<bool>) {
                         FinishAttempt(key, /*pump=*/true);
                       });
  };
  if (!result->read
           .has_value()) {  // A store that broke TryLockAndRead's contract.
    release();
    return FinishSession(
        s, absl::InternalError("the store took the lock without the read"));
  }
  const KeyRead& read = *result->read;
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
  if (read.value.has_value()) FlightFor(key).stale = *read.value;
  // The compute is about to start: the breaker has the last word.
  breakers_.Admit(
      s.ns, [this, key, sid, fence, release](BreakerVerdict verdict) {
        // A caller that half-closed while the lock was asked for cannot send a
        // Fill: the lock goes back and it waits on as a reader.
        const bool waiting = IsWaitingSession(sid, key);
        if (waiting && verdict.allowed && !sessions_.at(sid).half_closed) {
          return ChargeLockedLease(key, sid, fence, release);
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

void Coordinator::ChargeLockedLease(const CacheKey& key, CallId sid,
                                    uint64_t fence,
                                    absl::AnyInvocable<void()> release) {
  Session& s = sessions_.at(sid);
  // While it waits for budget the caller keeps the lock (the key's other
  // callers wait for it, here and elsewhere) and renews it.
  auto renewed = std::make_shared<absl::Time>(clock_.Now());
  const std::string token = s.token;
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
      [this, key, sid, fence,
       release = std::move(release)](const BudgetVerdict& v) mutable {
        if (v.admitted && IsWaitingSession(sid, key)) {
          Session& s = sessions_.at(sid);
          StopWaiting(s);
          s.budget_slot = v.slot;
          GrantLease(s, LeaseMode::kLocked, fence, "");
          return FinishAttempt(key, /*pump=*/true);
        }
        // The lock goes back (FinishAttempt follows the release).
        release();
        if (!IsWaitingSession(sid, key)) return;  // It left, or was served.
        Session& s = sessions_.at(sid);
        if (v.withdrawn) {
          // It half-closed: it waits on for what is left of its wait.
          return ArmWaitTimer(s, std::nullopt);
        }
        RejectForBudget(s, v);
      });
}

void Coordinator::RetryAt(const CacheKey& key, absl::Time when) {
  Flight& f = FlightFor(key);
  // A small margin so the holder's key has really expired in the store.
  when += absl::Milliseconds(5);
  if (f.retry_timer != 0 && f.retry_at <= when) return;
  if (f.retry_timer != 0) executor_.Cancel(f.retry_timer);
  f.retry_at = when;
  f.retry_timer = executor_.RunAfter(when - clock_.Now(), [this, key] {
    auto it = flights_.find(key);
    if (it == flights_.end()) return;
    it->second.retry_timer = 0;
    it->second.retry_at = absl::InfiniteFuture();
    Wake(key);
  });
}

void Coordinator::EnsureWatching(const CacheKey& key) {
  Flight& f = FlightFor(key);
  if (f.watching) return;
  f.watching = true;
  store_.Watch(key);
}

void Coordinator::MaybeRetire(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  if (f.waiting > 0 || !f.readers.empty() || !f.get_readers.empty() ||
      f.read_in_flight || f.attempt_in_flight || f.refresh_attempt ||
      f.degraded_holder != 0 || HoldsLockHere(f, key)) {
    return;
  }
  if (f.watching) store_.Unwatch(key);
  if (f.retry_timer != 0) executor_.Cancel(f.retry_timer);
  flights_.erase(it);
}

void Coordinator::ServeAll(const CacheKey& key, const StoredValue& value,
                           Source source, LookupStage stage) {
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  auto bytes =
      std::make_shared<const std::string>(value.value);  // One copy for all.
  // Readers still waiting on a store read can take the value too.
  std::vector<CallId> readers;
  readers.swap(fit->second.readers);
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
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  Flight& f = fit->second;
  std::deque<QueueEntry> kept;
  std::vector<CallId> ending;
  for (const QueueEntry& e : f.queue) {
    if (e.is_lock) {
      if (lock_waiters_.contains(e.id)) kept.push_back(e);
      continue;
    }
    if (IsWaitingSession(e.id, key)) ending.push_back(e.id);
  }
  f.queue.swap(kept);
  f.waiting -= static_cast<int>(ending.size());
  total_waiting_ -= static_cast<int>(ending.size());
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
  MaybeRetire(key);
}

void Coordinator::FailWaiters(const CacheKey& key, const absl::Status& status) {
  EndWaiters(key, [this, &status](Session& s) { FinishSession(s, status); });
}

void Coordinator::ComputeDegraded(const CacheKey& key, CallId sid) {
  FlightFor(key).degraded_holder = sid;  // Pump stays away until it ends.
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
  LeaveQueue(s.lookup.key);
}

void Coordinator::EndDegraded(const CacheKey& key, CallId sid) {
  auto it = flights_.find(key);
  if (it == flights_.end() || it->second.degraded_holder != sid) return;
  it->second.degraded_holder = 0;
  Wake(key);
  MaybeRetire(key);
}

void Coordinator::RejectForBreaker(Session& s, const BreakerVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  auto fit = flights_.find(key);
  if (s.lookup.allow_stale && fit != flights_.end() &&
      fit->second.stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    return SendValue(s, *fit->second.stale, Source::kStale);
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
