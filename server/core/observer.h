// What the coordination core reports as it works. The metrics layer
// implements it with Prometheus; tests may record it. Called on the loop
// thread (OnLookup and OnReadCacheHit also on gRPC threads: a read-cache
// hit); implementations must be cheap, thread-safe and must not block.
#ifndef CORRAL_SERVER_CORE_OBSERVER_H_
#define CORRAL_SERVER_CORE_OBSERVER_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/breaker.h"

namespace corral {

// Where in the lookup a cache read happened (metric label `stage`).
enum class LookupStage {
  kInitial,         // The caller's first read.
  kAfterLock,       // After taking the key's lock.
  kAfterWait,       // After being woken while waiting.
  kAfterTimeout,    // After the caller's wait timed out.
  kBeforeFallback,  // Before an unlocked (degraded) compute.
};

class CoordinatorObserver {
 public:
  virtual ~CoordinatorObserver() = default;
  // A cache read for a lookup; `hit` is whether a value was found.
  virtual void OnLookup(absl::string_view ns, LookupStage stage, bool hit) = 0;
  // A caller stopped waiting (lease, value, lock, failure or timeout).
  virtual void OnWaitEnded(absl::string_view ns, absl::Duration waited) = 0;
  // AcquireLock / GetOrCompute lock outcome: "acquired", "timeout",
  // "contended" (try-once refused), "error".
  virtual void OnLockAcquisition(absl::string_view ns,
                                 absl::string_view outcome) = 0;
  // A compute ended. mode: "locked", "unlocked_timeout", "unlocked_degraded",
  // "refresh"; outcome: "filled", "not_stored", "abandoned", "failed",
  // "revoked".
  virtual void OnCompute(absl::string_view ns, absl::string_view mode,
                         absl::string_view outcome) = 0;
  // A compute that ran without the fleet-wide lock.
  virtual void OnDuplicateCompute(absl::string_view ns) = 0;
  // The number of callers waiting in `ns` changed by `delta`.
  virtual void OnWaitersChanged(absl::string_view ns, int delta) = 0;
  // The breaker state this replica sees for `ns` (on every change it learns
  // of, and once a second, so time-in-state can be accumulated).
  virtual void OnBreakerState(absl::string_view ns, BreakerState state,
                              absl::Time since) {
    (void)ns, (void)state, (void)since;
  }
  // This replica moved the fleet's breaker from one state to another.
  virtual void OnBreakerTransition(absl::string_view ns, BreakerState from,
                                   BreakerState to) {
    (void)ns, (void)from, (void)to;
  }
  // A caller was handed a REFRESH lease; `trigger` is "stale" (the value is
  // past its TTL) or "early" (probabilistic early refresh of a fresh value).
  // How it ends is an OnCompute with mode "refresh".
  virtual void OnRefreshStarted(absl::string_view ns,
                                absl::string_view trigger) {
    (void)ns, (void)trigger;
  }
  // A caller got a value past its TTL (Source::kStale).
  virtual void OnStaleServed(absl::string_view ns) { (void)ns; }
  // A caller got a remembered upstream failure instead of a compute.
  virtual void OnNegativeHit(absl::string_view ns) { (void)ns; }
  // A grant was charged to the namespace's compute budget. `in_flight`: the
  // slots held fleet-wide after it; `over_limit`: "" when within budget,
  // else "in_flight" or "rate"; `enforced`: false in shadow mode (the grant
  // went ahead anyway).
  virtual void OnBudgetCharge(absl::string_view ns, uint32_t in_flight,
                              absl::string_view over_limit, bool enforced) {
    (void)ns, (void)in_flight, (void)over_limit, (void)enforced;
  }
  // A slot was returned; `in_flight` is what this replica last saw, minus it.
  virtual void OnBudgetReturned(absl::string_view ns) { (void)ns; }
  // A caller was answered RESOURCE_EXHAUSTED compute-budget after waiting
  // for budget up to its wait_timeout.
  virtual void OnBudgetRejected(absl::string_view ns) { (void)ns; }
  // A hit (Get or GetOrCompute) answered from the read cache. Called on the
  // caller's thread, not the loop's.
  virtual void OnReadCacheHit(absl::string_view ns) { (void)ns; }
  // A namespace is used for the first time since start (or since it was
  // evicted): counters with known label sets can be exported at 0 now, so
  // that dashboards and rate() see them before the first event. Any thread.
  virtual void OnNamespaceFirstUse(absl::string_view ns) { (void)ns; }
  // An idle dynamic namespace was forgotten: drop what is kept for it.
  // Loop thread.
  virtual void OnNamespaceEvicted(absl::string_view ns) { (void)ns; }
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_OBSERVER_H_
