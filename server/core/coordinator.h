// The coordination core: fleet-wide single flight over a Store.
//
// For each key with activity on this replica the coordinator keeps a flight:
// callers reading it (one shared store read), callers waiting (one FIFO of
// GetOrCompute and AcquireLock waiters), at most one lock attempt in flight,
// and a store subscription only while someone waits. A release wakes one
// waiter (the head takes the lock); a fill wakes every GetOrCompute waiter
// with the value. No thread is held per waiter: each is a record here, and
// the gRPC reactor that owns the call is a ComputeSink or a callback.
//
// The Coordinator is a façade (docs/ARCHITECTURE.md, section 2): the work is
// done by its parts, the flight table (flight_table.h), GetOrCompute
// sessions and leases (compute_sessions.h) and lock waiters
// (lock_waiters.h); both kinds of caller are a Waiter (waiter.h) in a key's
// FIFO. The façade posts each call to the loop, routes store events, and
// owns the read-cache path, namespace eviction and shutdown.
//
// Threading: public methods may be called from any thread; they post to the
// EventLoop, where all state lives. Sinks and callbacks run on the loop
// thread and must not block, with one exception: a hit that the store's
// read cache answers (server/core/read_cache.h) is answered on the calling
// thread, without a hop to the loop (Get, Lookup).
#ifndef CORRAL_SERVER_CORE_COORDINATOR_H_
#define CORRAL_SERVER_CORE_COORDINATOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/breaker_registry.h"
#include "server/core/budget_gate.h"
#include "server/core/call.h"
#include "server/core/clock.h"
#include "server/core/compute_sessions.h"
#include "server/core/compute_sink.h"
#include "server/core/executor.h"
#include "server/core/flight_table.h"
#include "server/core/lock_waiters.h"
#include "server/core/namespace_config.h"
#include "server/core/namespace_tracker.h"
#include "server/core/observer.h"
#include "server/core/read_cache.h"
#include "server/core/request_resolver.h"
#include "server/core/store.h"
#include "server/core/types.h"
#include "server/core/waiter.h"

namespace corral {

class Coordinator final : public StoreListener, private FlightTable::Owner {
 public:
  template <typename T>
  using Callback = corral::Callback<T>;
  using CallId = corral::CallId;

  // All references must outlive the coordinator. The coordinator registers
  // itself as the store's listener.
  Coordinator(Executor& executor, Store& store,
              const NamespaceRegistry& registry, const Clock& clock,
              CoordinatorObserver& observer);
  ~Coordinator() override;

  // --- Unary operations -----------------------------------------------------
  // A fresh value in the read cache is answered inline, on this thread.
  void Get(CacheKey key, Callback<GetResult> done);
  void Set(SetRequest request, Callback<bool> done);
  void Invalidate(CacheKey key, Callback<bool> done);
  void RenewLock(RenewLockRequest request, Callback<RenewResult> done);
  void ReleaseLock(ReleaseLockRequest request, Callback<bool> done);

  // Waits (server-side, no thread held) up to the wait timeout for the key's
  // lock. Timing out is `acquired: false`, not an error. CancelAcquire ends
  // the wait early (the caller went away); `done` is then not called.
  CallId AcquireLock(AcquireLockRequest request, Callback<LockGrant> done);
  void CancelAcquire(CallId id);

  // --- GetOrCompute ---------------------------------------------------------
  // Starts a session for one stream; feed it the client's messages in order.
  CallId StartCompute(std::shared_ptr<ComputeSink> sink);
  // A stream's Lookup. `id` 0 (no session yet): a fresh value in the read
  // cache answers it here, on this thread, and no session is started (the
  // answer is 0); otherwise a session starts with it (its id is the
  // answer). A later Lookup on a session is ComputeLookup's.
  CallId Lookup(CallId id, std::shared_ptr<ComputeSink> sink,
                LookupRequest request);
  void ComputeLookup(CallId id, LookupRequest request);
  // The read-cache half of Lookup: true when `sink` got a fresh cached
  // value. A valid lookup whose value is due for an early refresh is not
  // answered; *refresh_due_for is set to the value's expiry, so that the
  // session's read refreshes it without a second draw (which would make
  // refreshes rarer).
  bool ServeFromReadCache(const LookupRequest& request, ComputeSink& sink,
                          absl::Time* refresh_due_for);
  void ComputeFill(CallId id, FillRequest request);
  void ComputeAbandon(CallId id, AbandonRequest request);
  // The client half-closed its side (no more messages will come).
  void ComputeHalfClosed(CallId id);
  // The call is over from the client's side (cancelled, broken, or done);
  // a held lease is abandoned. The sink is not called after this.
  void ComputeGone(CallId id);

  // The namespace's circuit breaker as this replica sees it.
  void DescribeBreaker(std::string ns, Callback<BreakerView> done);

  // Replaces XFetch's uniform draw in (0, 1] (early refresh), so that tests
  // make a refresh certain (a tiny draw) or impossible (1). Called on the
  // loop and on gRPC threads: it must be thread-safe. Set it before the
  // first call.
  void SetEarlyRefreshDraw(std::function<double()> draw) {
    early_refresh_draw_ = std::move(draw);
  }
  // XFetch's draw for a hit a Get answers as get_or_compute's first step
  // (GetRequest.draw_early_refresh): true when `value` is due for an early
  // refresh. Any thread.
  bool DrawEarlyRefresh(double beta, const ValueView& value) const;

  // Forgets idle dynamic namespaces (NamespaceTracker); `done` hears how
  // many. Runs by itself every limits.dynamic_namespace_idle / 4 (at most
  // once a minute); tests call it after moving the clock.
  void EvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done);

  // Releases every lock this replica's calls hold and ends every waiting
  // call with UNAVAILABLE (shutting-down). Blocks until the store has
  // answered the releases or `timeout` passed. Not from the loop thread.
  void Shutdown(absl::Duration timeout);

  // StoreListener (loop thread).
  void OnKeyEvent(const KeyEvent& event) override;
  void OnStoreAvailability(bool up) override;
  void OnBreakerChanged(const std::string& ns,
                        const BreakerRecord& record) override;

 private:
  // FlightTable::Owner: the waiters are sessions and lock waiters.
  Waiter* FindWaiter(CallId id) override;
  bool StillHoldsLock(CallId holder, const CacheKey& key) override;
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result) override;

  // ComputeLookup, with ServeFromReadCache's early-refresh verdict.
  void PostLookup(CallId id, LookupRequest request, absl::Time refresh_due_for);
  // The read cache's entry for `key` if it is fresh. Any thread.
  std::shared_ptr<const CachedValue> FreshCached(const CacheKey& key) const;
  // Get's read-cache half: true when `done` was answered with a fresh
  // cached value. Any thread.
  bool GetFromReadCache(const CacheKey& key, Callback<GetResult>& done);
  void DoEvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done);
  // Runs DoEvictIdleNamespaces every `every`, from now on.
  void ArmEvictionTimer(absl::Duration every);

  Executor& executor_;
  Store& store_;
  const NamespaceRegistry& registry_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  std::atomic<CallId> next_id_{1};
  // Null: the built-in uniform draw.
  std::function<double()> early_refresh_draw_;
  // Thread-safe; the resolver records each namespace's use.
  NamespaceTracker namespaces_;
  const RequestResolver resolver_;

  // The parts (docs/ARCHITECTURE.md, section 2). Loop thread only.
  BreakerRegistry breakers_;
  BudgetGate budget_;  // The compute budget (issue 18), for both parts.
  FlightTable flights_;
  LockWaiters lock_waiters_;
  ComputeSessions sessions_;
  bool shutting_down_ = false;
  Executor::TimerId evict_timer_ = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_COORDINATOR_H_
