// One caller in a key's FIFO (docs/ARCHITECTURE.md, section 2, Steps 4-6):
// a GetOrCompute session (server/core/compute_session.h) or an AcquireLock
// waiter (server/core/lock_waiters.h). Both take turns on the key's one
// fleet-wide lock; the flight table (server/core/flight_table.h) picks the
// head, makes its lock attempt, and hands the answer to the waiter itself,
// so the table never asks which kind a waiter is.
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_WAITER_H_
#define CORRAL_SERVER_CORE_WAITER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/call.h"
#include "server/core/store.h"

namespace corral {

class Waiter {
 public:
  // The lock attempt a head makes.
  struct LockTry {
    std::string token;
    absl::Duration ttl;
    // Read the key in the same step (TryLockAndRead): a compute's double
    // check after the lock. A lock caller only wants the lock (TryLock).
    bool read_with_lock = false;
  };

  virtual ~Waiter() = default;

  virtual CallId id() const = 0;
  // Whether it still waits in `key`'s queue (the queue may hold entries of
  // callers that left; they are skipped).
  virtual bool WaitsOn(const CacheKey& key) const = 0;
  // Whether it may be the head and take the lock for itself. A GetOrCompute
  // caller that half-closed cannot send a Fill, so it only waits for one.
  virtual bool MayTakeLock() const = 0;
  // Whether a fill of the key answers it (and an upstream failure fails it):
  // a GetOrCompute caller. A lock caller waits for the lock alone.
  virtual bool ServedByFill() const = 0;

  // Called on the head before its attempt.
  virtual LockTry PrepareLockTry() = 0;
  // The head won the lock with `token`. It must end the attempt
  // (FlightTable::FinishAttempt, maybe after more store round trips).
  virtual void OnLockWon(const CacheKey& key, std::string token,
                         const LockAttempt& attempt) = 0;
  // A lock attempt for the key failed in the store: nobody can be promised
  // the lock now. Called on every queued waiter, the head included; a lock
  // caller gets the error at once. May remove the waiter.
  virtual void OnLockUnavailable(const absl::Status& error) = 0;
  // Then on the head, if it still waits: its own attempt failed. Answers
  // whether the next head should try now.
  virtual bool OnOwnAttemptFailed(const CacheKey& key,
                                  const absl::Status& error) = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_WAITER_H_
