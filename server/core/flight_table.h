// The flight table: per key with activity on this replica, one Flight
// (docs/ARCHITECTURE.md, section 2): the callers sharing one store read,
// one FIFO of waiters (GetOrCompute sessions and AcquireLock callers, both
// a Waiter), at most one lock attempt in flight, the key's subscription and
// the retry timer for a holder that may have died. The table decides who
// tries for the lock and when; what a read or a won lock means for a caller
// is its owner's and the waiter's business.
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_FLIGHT_TABLE_H_
#define CORRAL_SERVER_CORE_FLIGHT_TABLE_H_

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/call.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/namespace_config.h"
#include "server/core/store.h"
#include "server/core/types.h"
#include "server/core/waiter.h"

namespace corral {

// Everything this replica knows and does about one key right now.
struct Flight {
  // Waiters in arrival order. May hold ids of callers that left (skipped
  // lazily, see FlightTable::Leave); `waiting` counts the live ones.
  std::deque<CallId> queue;
  std::vector<CallId> readers;  // Sessions waiting for the read.
  // Unary Gets waiting for the read (they share it with the sessions).
  std::vector<Callback<GetResult>> get_readers;
  int waiting = 0;  // Live entries in `queue`.
  bool read_in_flight = false;
  bool reread = false;  // A read was asked for while one was in flight.
  bool attempt_in_flight = false;
  bool repump = false;  // A wake-up came while the attempt was in flight.
  // A caller is trying for the lock to refresh the key (at most one per
  // replica; the lock makes it one per fleet).
  bool refresh_attempt = false;
  bool watching = false;
  // The store confirmed it delivers this key's events (kWatching).
  bool watch_confirmed = false;
  // What this replica knows until a store event says otherwise: the last
  // read missed, and the lock is held by someone else. While both hold
  // (and events are delivered), new callers join the queue without a store
  // round trip, so a stampede costs O(1) store commands per replica.
  bool known_miss = false;
  bool held_elsewhere = false;
  // A session of this replica holds the key's lock for its compute: the
  // queue waits for its fill (or abandon) here, with no lock attempts and
  // no subscription of its own (FlightTable::HoldsLockHere).
  CallId lease_holder = 0;
  // The last value read past its TTL (kept for the stale window): what an
  // allow_stale caller gets when the breaker refuses a compute.
  std::optional<StoredValue> stale;
  // While the store is unreachable (COORDINATE_LOCALLY): the session that
  // computes this key on this replica. The queue waits for its fill.
  CallId degraded_holder = 0;
  Executor::TimerId retry_timer = 0;
  absl::Time retry_at = absl::InfiniteFuture();
};

class FlightTable {
 public:
  // What the table needs from the calls it coordinates.
  class Owner {
   public:
    virtual ~Owner() = default;
    // The call with this id if it is a waiter (of any key), else null.
    virtual Waiter* FindWaiter(CallId id) = 0;
    // Whether `holder` (a flight's lease_holder) still holds `key`'s lock.
    virtual bool StillHoldsLock(CallId holder, const CacheKey& key) = 0;
    // A read of `key` (Read) is answered; its readers are in the flight,
    // which stays (read_in_flight) until the owner calls EndRead.
    virtual void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> read) = 0;
  };

  // All references must outlive the table.
  FlightTable(Executor& executor, Store& store, const Clock& clock,
              const LimitSettings& limits, Owner& owner);

  // The key's flight, created if there is none.
  Flight& For(const CacheKey& key) { return flights_[key]; }
  // Null if the key has no flight.
  Flight* Find(const CacheKey& key);
  bool empty() const { return flights_.empty(); }
  size_t size() const { return flights_.size(); }
  std::vector<CacheKey> Keys() const;
  // Calls fn(key, flight) for every flight; fn must not add or retire any.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (auto& [key, flight] : flights_) fn(key, flight);
  }

  // --- The queue ----------------------------------------------------------
  // Whether a caller may start waiting for `key` (limits.max_waiters,
  // max_waiters_per_key; a key with nobody waiting always admits one).
  absl::Status Admit(const CacheKey& key);
  void Enqueue(const CacheKey& key, CallId id);
  // A live waiter left the queue: it is uncounted (its entry is skipped
  // when it comes up). May retire the flight.
  void Leave(const CacheKey& key);
  // Takes every waiter that a fill serves (GetOrCompute callers) out of the
  // queue and answers their ids, in queue order; lock callers stay. The
  // caller ends each one, then calls MaybeRetire.
  std::vector<CallId> TakeFillWaiters(const CacheKey& key);
  int total_waiting() const { return total_waiting_; }
  // The waiter `id` if it is in `key`'s queue.
  Waiter* LiveWaiter(CallId id, const CacheKey& key);

  // --- Reads ----------------------------------------------------------------
  // A store read of `key` for its readers; a read already under way
  // answers new readers too (it is at most one round trip old).
  void Read(const CacheKey& key);
  // A read that starts after now, even if one is under way: for events that
  // say the store may have changed unseen.
  void ReadAgain(const CacheKey& key);
  // The owner handled a read's answer: the next read starts if one was
  // asked for meanwhile.
  void EndRead(const CacheKey& key, bool read_ok, bool hit);

  // --- The lock -------------------------------------------------------------
  // Lets the head try for the lock unless it is known to be held.
  void Pump(const CacheKey& key);
  // Something suggests the lock may be free (a release, a fill, an expiry):
  // forget that it was held, and pump.
  void Wake(const CacheKey& key);
  // Ends the flight's lock attempt. `pump`: let the next head try now (after
  // a grant, so that it starts watching the new holder). May retire it.
  void FinishAttempt(const CacheKey& key, bool pump);
  // Gives back a lock the attempt won for nobody (or a winner that will not
  // compute), then ends the attempt and pumps.
  void ReleaseAndFinish(const CacheKey& key, const std::string& token);
  // Whether the flight's lease_holder still holds the lock (clears it if
  // not).
  bool HoldsLockHere(Flight& f, const CacheKey& key);

  // --- Watching and retiring ------------------------------------------------
  void EnsureWatching(const CacheKey& key);
  // Wakes the key at `when` (+5 ms) unless something wakes it earlier.
  void RetryAt(const CacheKey& key, absl::Time when);
  // Forgets the flight if nothing is left in it (no waiter, reader,
  // attempt, refresh, degraded compute or lease): unwatches the key.
  void MaybeRetire(const CacheKey& key);

 private:
  void OnAttempt(const CacheKey& key, CallId head, std::string token,
                 absl::StatusOr<LockAttempt> result);

  Executor& executor_;
  Store& store_;
  const Clock& clock_;
  const LimitSettings& limits_;
  Owner& owner_;
  absl::node_hash_map<CacheKey, Flight> flights_;  // Stable references.
  int total_waiting_ = 0;  // Live queue entries over all flights.
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_FLIGHT_TABLE_H_
