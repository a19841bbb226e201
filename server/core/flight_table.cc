#include "server/core/flight_table.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {

FlightTable::FlightTable(Executor& executor, Store& store, const Clock& clock,
                         const LimitSettings& limits, Owner& owner)
    : executor_(executor),
      store_(store),
      clock_(clock),
      limits_(limits),
      owner_(owner) {}

Flight* FlightTable::Find(const CacheKey& key) {
  auto it = flights_.find(key);
  return it == flights_.end() ? nullptr : &it->second;
}

std::vector<CacheKey> FlightTable::Keys() const {
  std::vector<CacheKey> keys;
  keys.reserve(flights_.size());
  for (const auto& [key, flight] : flights_) keys.push_back(key);
  return keys;
}

// ---------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------

Waiter* FlightTable::LiveWaiter(CallId id, const CacheKey& key) {
  Waiter* w = owner_.FindWaiter(id);
  return w != nullptr && w->WaitsOn(key) ? w : nullptr;
}

absl::Status FlightTable::Admit(const CacheKey& key) {
  // The first caller of a key is the one that will compute; the limits are
  // about callers piling up behind it.
  if (For(key).waiting == 0) return absl::OkStatus();
  if (total_waiting_ >= static_cast<int>(limits_.max_waiters)) {
    return TooManyWaiters("on this server", limits_.max_waiters);
  }
  if (For(key).waiting >= static_cast<int>(limits_.max_waiters_per_key)) {
    return TooManyWaiters("for this key", limits_.max_waiters_per_key);
  }
  return absl::OkStatus();
}

void FlightTable::Enqueue(const CacheKey& key, CallId id) {
  Flight& f = For(key);
  f.queue.push_back(id);
  ++f.waiting;
  ++total_waiting_;
}

void FlightTable::Leave(const CacheKey& key) {
  Flight* f = Find(key);
  if (f == nullptr) return;
  --f->waiting;
  --total_waiting_;
  // Drop skipped entries at the front now, the rest when they come up.
  while (!f->queue.empty() && LiveWaiter(f->queue.front(), key) == nullptr) {
    f->queue.pop_front();
  }
  // A queue mostly made of departed callers is compacted.
  if (f->queue.size() > 64 &&
      f->queue.size() > 4 * static_cast<size_t>(f->waiting)) {
    std::deque<CallId> kept;
    for (CallId id : f->queue) {
      if (LiveWaiter(id, key) != nullptr) kept.push_back(id);
    }
    f->queue.swap(kept);
  }
  MaybeRetire(key);
}

std::vector<CallId> FlightTable::TakeFillWaiters(const CacheKey& key) {
  std::vector<CallId> taken;
  Flight* f = Find(key);
  if (f == nullptr) return taken;
  std::deque<CallId> kept;
  // A caller that left and came back (a returned lease) may be named twice.
  absl::flat_hash_set<CallId> seen;
  for (CallId id : f->queue) {
    Waiter* w = LiveWaiter(id, key);
    if (w == nullptr) continue;
    if (!w->ServedByFill()) {
      kept.push_back(id);
    } else if (seen.insert(id).second) {
      taken.push_back(id);
    }
  }
  f->queue.swap(kept);
  f->waiting -= static_cast<int>(taken.size());
  total_waiting_ -= static_cast<int>(taken.size());
  return taken;
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

void FlightTable::Read(const CacheKey& key) {
  Flight& f = For(key);
  // A caller that arrives while a read is under way shares it. A fill that
  // read missed cannot strand it: the caller then waits, and a wait ends in
  // a read after the lock is taken, or after the subscription is confirmed.
  if (f.read_in_flight) return;
  f.read_in_flight = true;
  store_.Get(key, [this, key](absl::StatusOr<KeyRead> r) {
    owner_.OnRead(key, std::move(r));
  });
}

void FlightTable::ReadAgain(const CacheKey& key) {
  Flight& f = For(key);
  if (f.read_in_flight) {
    f.reread = true;
    return;
  }
  Read(key);
}

void FlightTable::EndRead(const CacheKey& key, bool read_ok, bool hit) {
  Flight& f = For(key);
  f.read_in_flight = false;
  if (read_ok) f.known_miss = !hit;
  if (f.reread) {
    f.reread = false;
    Read(key);
  }
  Pump(key);
  MaybeRetire(key);
}

// ---------------------------------------------------------------------------
// The lock: one attempt at a time
// ---------------------------------------------------------------------------

void FlightTable::Pump(const CacheKey& key) {
  Flight* f = Find(key);
  if (f == nullptr) return;
  if (f->waiting == 0 || f->held_elsewhere || f->attempt_in_flight ||
      f->degraded_holder != 0 || HoldsLockHere(*f, key)) {
    return;
  }
  while (!f->queue.empty() && LiveWaiter(f->queue.front(), key) == nullptr) {
    f->queue.pop_front();
  }
  // The head: the first live waiter that can take the lock.
  Waiter* head = nullptr;
  for (CallId id : f->queue) {
    Waiter* w = LiveWaiter(id, key);
    if (w != nullptr && w->MayTakeLock()) {
      head = w;
      break;
    }
  }
  if (head == nullptr) {
    // Everyone here half-closed: nobody may take the lock, but each still
    // gets the value of whoever fills it, so the key is watched.
    if (f->waiting > 0) EnsureWatching(key);
    return;
  }
  Waiter::LockTry attempt = head->PrepareLockTry();
  f->attempt_in_flight = true;
  f->repump = false;
  auto on_attempt = [this, key, id = head->id(), token = attempt.token](
                        absl::StatusOr<LockAttempt> r) mutable {
    OnAttempt(key, id, std::move(token), std::move(r));
  };
  // A compute reads the key with the lock (the seed's double check).
  if (attempt.read_with_lock) {
    store_.TryLockAndRead(key, attempt.token, attempt.ttl,
                          std::move(on_attempt));
  } else {
    store_.TryLock(key, attempt.token, attempt.ttl, std::move(on_attempt));
  }
}

void FlightTable::OnAttempt(const CacheKey& key, CallId head, std::string token,
                            absl::StatusOr<LockAttempt> result) {
  // attempt_in_flight stays set until FinishAttempt, so the flight stays.
  if (!result.ok()) {
    LOG_EVENT("lock_attempt_failed", key, "error=\"", result.status().message(),
              "\"");
    // Nobody can be promised the fleet-wide lock now: every waiter hears it
    // (lock callers get the error at once rather than at their timeout).
    std::vector<CallId> queued(For(key).queue.begin(), For(key).queue.end());
    for (CallId id : queued) {
      if (Waiter* w = LiveWaiter(id, key))
        w->OnLockUnavailable(result.status());
    }
    bool pump = true;
    if (Waiter* w = LiveWaiter(head, key))
      pump = w->OnOwnAttemptFailed(key, result.status());
    return FinishAttempt(key, pump);
  }
  Waiter* winner = LiveWaiter(head, key);
  if (result->acquired && winner == nullptr) {
    // The caller left while we asked; give the lock straight back.
    return ReleaseAndFinish(key, token);
  }
  if (!result->acquired) {
    // Someone else holds the lock. Listen for its release or fill, and come
    // back when it would expire if no word comes (its holder may have died).
    EnsureWatching(key);
    Flight& f = For(key);
    // Unless a wake-up came while we asked, the lock stays held until an
    // event or the holder's expiry says otherwise.
    if (!f.repump) f.held_elsewhere = true;
    RetryAt(key, result->expires_at);
    // Tries again at once only if a wake-up came while we asked.
    return FinishAttempt(key, /*pump=*/false);
  }
  winner->OnLockWon(key, std::move(token), *result);
}

void FlightTable::ReleaseAndFinish(const CacheKey& key,
                                   const std::string& token) {
  store_.ReleaseLock(
      key, token, ReleaseNotice::kReleased,
      [this, key](absl::StatusOr<bool>) { FinishAttempt(key, /*pump=*/true); });
}

bool FlightTable::HoldsLockHere(Flight& f, const CacheKey& key) {
  if (f.lease_holder == 0) return false;
  if (owner_.StillHoldsLock(f.lease_holder, key)) return true;
  f.lease_holder = 0;
  return false;
}

void FlightTable::Wake(const CacheKey& key) {
  Flight* f = Find(key);
  if (f == nullptr) return;
  f->held_elsewhere = false;
  if (f->attempt_in_flight) {
    f->repump = true;  // The attempt under way may predate the wake-up.
    return;
  }
  Pump(key);
}

void FlightTable::FinishAttempt(const CacheKey& key, bool pump) {
  Flight* f = Find(key);
  if (f == nullptr) return;
  f->attempt_in_flight = false;
  pump = pump || f->repump;
  f->repump = false;
  if (pump) Pump(key);
  MaybeRetire(key);
}

// ---------------------------------------------------------------------------
// Watching and retiring
// ---------------------------------------------------------------------------

void FlightTable::RetryAt(const CacheKey& key, absl::Time when) {
  Flight& f = For(key);
  // A small margin so the holder's key has really expired in the store.
  when += absl::Milliseconds(5);
  if (f.retry_timer != 0 && f.retry_at <= when) return;
  if (f.retry_timer != 0) executor_.Cancel(f.retry_timer);
  f.retry_at = when;
  f.retry_timer = executor_.RunAfter(when - clock_.Now(), [this, key] {
    Flight* f = Find(key);
    if (f == nullptr) return;
    f->retry_timer = 0;
    f->retry_at = absl::InfiniteFuture();
    Wake(key);
  });
}

void FlightTable::EnsureWatching(const CacheKey& key) {
  Flight& f = For(key);
  if (f.watching) return;
  f.watching = true;
  store_.Watch(key);
}

void FlightTable::MaybeRetire(const CacheKey& key) {
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

}  // namespace corral
