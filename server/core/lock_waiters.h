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
  // All references must outlive this. `budget`: the compute budget every
  // grant is charged to (shared with the GetOrCompute sessions).
  LockWaiters(Executor& executor, Store& store, const Clock& clock,
              CoordinatorObserver& observer, BreakerRegistry& breakers,
              BudgetGate& budget, FlightTable& flights,
              const LimitSettings& limits);

  // Starts the wait `id` for `request.key`'s lock; `settings` are the key's
  // namespace settings (the key is valid). `done` is called once, unless
  // Cancel comes first.
  void Start(CallId id, AcquireLockRequest request,
             const NamespaceSettings& settings, Callback<LockGrant> done);
  // The caller went away: the wait ends and `done` is not called. A lock
  // won for it meanwhile (still waiting for budget, say) is given back.
  void Cancel(CallId id);
  // The waiter `id`, if there is one.
  Waiter* Find(CallId id);
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
    // compute budget. Try-once: no wait.
    absl::Time wait_until = absl::InfinitePast();
    NamespaceSettings settings;
    Executor::TimerId timer = 0;  // Set while queued.
    // It won the lock and the compute budget decides (GrantAfterBudget): out
    // of the queue, holding the lock, still cancellable.
    bool won = false;
    Callback<LockGrant> done;

    CallId id() const override { return call_id; }
    bool WaitsOn(const CacheKey& key) const override {
      return !won && request.key == key;
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
  // `w` no longer waits in its key's queue (erased, or won): cancels its
  // timer and leaves the queue if it was queued, records `outcome`.
  void StopWaiting(Entry& w, absl::string_view outcome);
  // Waiter `id` won the lock: the namespace's compute budget decides,
  // waiting up to its wait_until while it holds (and renews) the lock; then
  // the grant, or RESOURCE_EXHAUSTED compute-budget and the lock released
  // (released too if the caller cancels meanwhile). `finished` (may be
  // null) runs once it is granted or released.
  void GrantAfterBudget(CallId id, const LockAttempt& attempt,
                        absl::AnyInvocable<void()> finished);

  Executor& executor_;
  Store& store_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  BreakerRegistry& breakers_;
  BudgetGate& budget_;
  FlightTable& flights_;
  const LimitSettings& limits_;
  absl::node_hash_map<CallId, Entry> waiters_;  // Stable references.
  bool shutting_down_ = false;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_LOCK_WAITERS_H_
