// AcquireLock callers waiting for a key's lock (docs/ARCHITECTURE.md,
// section 2, "The lock path"). Each is a Waiter in the key's FIFO, taking
// turns on the one fleet-wide lock with the key's GetOrCompute callers; a
// wait of 0 tries once outside the queue. Timing out is `acquired: false`,
// not an error. RenewLock and ReleaseLock need no waiter: the Coordinator
// sends them straight to the store.
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_LOCK_WAITERS_H_
#define CORRAL_SERVER_CORE_LOCK_WAITERS_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/breaker_registry.h"
#include "server/core/budget_gate.h"
#include "server/core/call.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/flight_table.h"
#include "server/core/namespace_config.h"
#include "server/core/observer.h"
#include "server/core/store.h"
#include "server/core/types.h"
#include "server/core/waiter.h"

namespace corral {

class LockWaiters {
 public:
  // All references must outlive this.
  LockWaiters(Executor& executor, Store& store, const Clock& clock,
              CoordinatorObserver& observer, BreakerRegistry& breakers,
              FlightTable& flights, const LimitSettings& limits);

  // Starts the wait `id` for `request.key`'s lock; `settings` are the key's
  // namespace settings (the key is valid). `done` is called once, unless
  // Cancel comes first.
  void Start(CallId id, AcquireLockRequest request,
             const NamespaceSettings& settings, Callback<LockGrant> done);
  // The caller went away: the wait ends and `done` is not called. A lock
  // won for it meanwhile is given back.
  void Cancel(CallId id);
  // The waiter `id`, if there is one.
  Waiter* Find(CallId id);
  // A lock grant's compute-budget slot (named by its token) lives as long
  // as the lock: RenewLock renews it, ReleaseLock returns it. No-ops for a
  // namespace without a budget.
  void RenewGrant(const NamespaceSettings& settings, const std::string& token,
                  absl::Duration ttl);
  void ReturnGrant(const NamespaceSettings& settings, std::string token);
  // Refuses new waits and ends every wait with UNAVAILABLE shutting-down.
  void ShutDown();
  // Adds the namespace of every waiter (they keep it from being evicted).
  void AddNamespaces(absl::flat_hash_set<std::string>& into) const;
  size_t size() const { return waiters_.size(); }

 private:
  struct Entry final : Waiter {
    LockWaiters* owner = nullptr;
    CallId call_id = 0;
    AcquireLockRequest request;
    absl::Duration ttl;
    std::string token;
    absl::Time started;
    // When its wait ends (queued): also how long a grant may wait for
    // compute budget.
    absl::Time wait_until;
    NamespaceSettings settings;
    Executor::TimerId timer = 0;  // Set while queued.
    Callback<LockGrant> done;

    CallId id() const override { return call_id; }
    bool WaitsOn(const CacheKey& key) const override {
      return request.key == key;
    }
    bool MayTakeLock() const override { return true; }
    bool ServedByFill() const override { return false; }
    LockTry PrepareLockTry() override {
      return LockTry{token, ttl, /*read_with_lock=*/false};
    }
    void OnLockWon(const CacheKey& key, std::string won_token,
                   const LockAttempt& attempt) override;
    void OnLockUnavailable(const absl::Status& error) override;
    bool OnOwnAttemptFailed(const CacheKey&, const absl::Status&) override {
      return true;
    }
  };

  // Past the breaker: try once, or queue with a timer.
  void StartWait(CallId id, absl::Duration wait);
  void OnWaitTimeout(CallId id);
  // Removes a waiter (which must exist) and returns it: cancels its timer
  // and leaves the queue if it was queued, records `outcome` ("": none).
  // The caller answers it.
  Entry Take(CallId id, absl::string_view outcome);
  // A waiter (already taken) won the lock: the namespace's compute budget
  // decides, waiting up to `wait_until` while it holds (and renews) the
  // lock; then the grant, or RESOURCE_EXHAUSTED compute-budget and the lock
  // released. `finished` (may be null) runs once it is granted or released.
  void GrantAfterBudget(Entry w, const LockAttempt& attempt,
                        absl::Time wait_until,
                        absl::AnyInvocable<void()> finished);

  Executor& executor_;
  Store& store_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  BreakerRegistry& breakers_;
  FlightTable& flights_;
  const LimitSettings& limits_;
  absl::node_hash_map<CallId, Entry> waiters_;  // Stable references.
  BudgetGate budget_;
  bool shutting_down_ = false;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_LOCK_WAITERS_H_
