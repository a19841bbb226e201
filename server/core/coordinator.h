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
// Threading: public methods may be called from any thread; they post to the
// EventLoop, where all state lives. Sinks and callbacks run on the loop
// thread and must not block, with one exception: a hit that the store's
// read cache answers (server/core/read_cache.h) is answered on the calling
// thread, without a hop to the loop (Get, Lookup).
#ifndef CORRAL_SERVER_CORE_COORDINATOR_H_
#define CORRAL_SERVER_CORE_COORDINATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "server/core/breaker_registry.h"
#include "server/core/budget_gate.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/namespace_config.h"
#include "server/core/namespace_tracker.h"
#include "server/core/observer.h"
#include "server/core/read_cache.h"
#include "server/core/store.h"
#include "server/core/types.h"

namespace corral {

// The coordinator's side of one GetOrCompute stream. Implemented by the gRPC
// layer. Called on the loop thread; must not block. After a terminal call
// (SendValue, SendFilled, Finish) no other call follows.
class ComputeSink {
 public:
  virtual ~ComputeSink() = default;
  virtual void SendValue(ValueView value) = 0;     // Terminal: call ends OK.
  virtual void SendLease(LeaseView lease) = 0;     // The caller computes.
  virtual void SendFilled(FilledView filled) = 0;  // Terminal: call ends OK.
  virtual void Finish(absl::Status status) = 0;    // Terminal.
};

class Coordinator final : public StoreListener {
 public:
  template <typename T>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;
  using CallId = uint64_t;

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
  enum class SessionState { kAwaitLookup, kReading, kWaiting, kLeased, kDone };

  struct Session {
    CallId id = 0;
    std::shared_ptr<ComputeSink> sink;
    SessionState state = SessionState::kAwaitLookup;
    LookupRequest lookup;
    NamespaceSettings ns;
    absl::Duration ttl, wait_timeout, lease_ttl;
    absl::Time wait_started;
    Executor::TimerId wait_timer = 0;
    bool half_closed = false;
    // ServeFromReadCache found the value due for an early refresh: a value
    // that expires no later than this is refreshed without a second draw.
    absl::Time refresh_due_for = absl::InfinitePast();
    // Lease.
    LeaseMode mode = LeaseMode::kLocked;
    std::string token;
    uint64_t fencing_token = 0;
    absl::Time lease_started;
    bool revoked = false;
    bool fill_in_flight = false;
    // A REFRESH lease: "stale" or "early" (metrics).
    absl::string_view refresh_trigger;
    Executor::TimerId renew_timer = 0;
    Executor::TimerId revoke_timer = 0;
    // The lease's compute-budget slot ("": none held); returned when the
    // lease ends (EndLease), renewed with the lock.
    std::string budget_slot;
    // HEDGE: this caller's wait timed out once and was decided (a hedge, or
    // waiting on for the live holder); the next timeout ends it.
    bool hedge_decided = false;
  };

  struct LockWaiter {
    CallId id = 0;
    AcquireLockRequest request;
    absl::Duration ttl;
    std::string token;
    absl::Time started;
    // When its wait ends (queued waiters): also how long a grant may wait
    // for compute budget.
    absl::Time wait_until;
    Executor::TimerId timer = 0;
    Callback<LockGrant> done;
  };

  // One entry of a flight's FIFO.
  struct QueueEntry {
    bool is_lock;
    CallId id;
  };

  // Everything this replica knows and does about one key right now.
  struct Flight {
    std::deque<QueueEntry> queue;  // May hold entries of calls that left.
    std::vector<CallId> readers;   // Sessions waiting for `read`.
    // Unary Gets waiting for `read` (they share it with the sessions).
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
    // no subscription of its own. Checked by Pump (HoldsLockHere).
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

  // A Lookup's durations and namespace settings, resolved and checked.
  // Any thread.
  struct ResolvedLookup {
    NamespaceSettings ns;
    absl::Duration ttl, wait_timeout, lease_ttl;
  };
  absl::StatusOr<ResolvedLookup> ResolveLookup(
      const LookupRequest& request) const;

  // Loop-thread implementations of the public methods.
  void DoAcquireLock(CallId id, AcquireLockRequest request,
                     Callback<LockGrant> done);
  // Past the breaker: try once, or queue with a timer.
  void StartLockWait(CallId id, absl::Duration wait);
  // ComputeLookup, with ServeFromReadCache's early-refresh verdict.
  void PostLookup(CallId id, LookupRequest request, absl::Time refresh_due_for);
  void DoLookup(Session& s, LookupRequest request);
  // The session if it holds a lease; otherwise ends it with the protocol
  // error "<message> without a lease" (or "first message must be a
  // Lookup") and answers null.
  Session* SessionHoldingLease(CallId id, absl::string_view message);
  void DoFill(Session& s, FillRequest request);
  void DoAbandon(Session& s, AbandonRequest request);
  void DoGone(CallId id);

  // Flight machinery.
  Flight& FlightFor(const CacheKey& key) { return flights_[key]; }
  // A store read of `key` for its readers; a read already under way
  // answers new readers too (it is at most one round trip old).
  void Read(const CacheKey& key);
  // A read that starts after now, even if one is under way: for events that
  // say the store may have changed unseen (a subscription confirmed, the
  // store back).
  void ReadAgain(const CacheKey& key);
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result);
  // Whether a hit on `value` should become an early refresh (XFetch: with a
  // probability that rises as expiry nears and with the compute time).
  bool WantsEarlyRefresh(const Session& s, const StoredValue& value);
  // XFetch's test with the draw `u` in (0, 1]. Any thread.
  bool EarlyRefreshDue(double beta, const StoredValue& value, double u) const;
  // The read cache's entry for `key` if it is fresh. Any thread.
  std::shared_ptr<const CachedValue> FreshCached(const CacheKey& key) const;
  // Get's read-cache half: true when `done` was answered with a fresh
  // cached value. Any thread.
  bool GetFromReadCache(const CacheKey& key, Callback<GetResult>& done);
  // Tries once for the key's lock; if it is won (and the breaker admits a
  // compute) the reading session gets a REFRESH lease carrying `current`,
  // otherwise `current` itself. `trigger`: "stale" or "early".
  void StartRefresh(Session& s, StoredValue current, absl::string_view trigger);
  // The refresh attempt of `sid` is over without a lease: it gets `current`
  // and the lock, if `token` took it, goes back.
  void EndRefreshAttempt(const CacheKey& key, CallId sid,
                         const StoredValue& current, const std::string& token,
                         bool release);
  void Enqueue(const CacheKey& key, QueueEntry entry);
  // Lets the head waiter try for the lock unless it is known to be held.
  void Pump(const CacheKey& key);
  // Whether the flight's lease_holder still holds the lock (clears it if
  // not).
  bool HoldsLockHere(Flight& f, const CacheKey& key);
  // Something suggests the lock may be free (a release, a fill, an expiry):
  // forget that it was held, and pump.
  void Wake(const CacheKey& key);
  // Puts a session whose lookup missed into the queue, with its wait timer
  // (`wait`, or the session's whole wait_timeout).
  void BeginWait(Session& s, std::optional<absl::Duration> wait = std::nullopt);
  // Starts a queued session's wait timer: `wait`, or what is left of its
  // wait_timeout since its Lookup; capped by its deadline. None left: the
  // timeout policy runs now.
  void ArmWaitTimer(Session& s, std::optional<absl::Duration> wait);
  // A locked leaseholder half-closed without a Fill: the lock goes back at
  // once (the next waiter gets it) and the caller waits on as a reader for
  // what is left of its wait_timeout.
  void ReturnLease(Session& s);
  // The opposite: a queued session leaves the queue (its wait is observed);
  // the caller then answers, leases or re-reads it.
  void StopWaiting(Session& s);
  void OnAttempt(const CacheKey& key, QueueEntry head, std::string token,
                 absl::Duration ttl, absl::StatusOr<LockAttempt> result);
  // Ends the flight's lock attempt. `pump`: let the next head try now (after
  // a grant, so that it starts watching the new holder). Retires the flight
  // if nobody is left.
  void FinishAttempt(const CacheKey& key, bool pump);
  void RetryAt(const CacheKey& key, absl::Time when);
  // A GetOrCompute head won the lock (fence) and the breaker admits it: the
  // budget has the last word, then the lease or RejectForBudget. `release`
  // gives the lock back and finishes the attempt.
  void ChargeLockedLease(const CacheKey& key, CallId sid, uint64_t fence,
                         absl::AnyInvocable<void()> release);
  void EnsureWatching(const CacheKey& key);
  void MaybeRetire(const CacheKey& key);
  // Removes a live waiter's queue entry from the count (the entry itself is
  // skipped lazily).
  void LeaveQueue(const CacheKey& key);
  // Serves every GetOrCompute caller of the key (readers and waiters).
  void ServeAll(const CacheKey& key, const StoredValue& value, Source source,
                LookupStage stage);
  // Ends every GetOrCompute waiter of the key with `end` (which must retire
  // the session).
  void EndWaiters(const CacheKey& key,
                  const std::function<void(Session&)>& end);
  // Fails every GetOrCompute waiter of the key.
  void FailWaiters(const CacheKey& key, const absl::Status& status);
  // The breaker refused a compute: a stale value for those who accept one,
  // UNAVAILABLE breaker-open with retry-after-ms for the rest.
  void RejectForBreaker(Session& s, const BreakerVerdict& verdict);
  // The store is unreachable and the namespace coordinates locally: the
  // queue's head computes for this replica (after one last read).
  void ComputeDegraded(const CacheKey& key, CallId sid);
  // The degraded compute `sid` ended: the next one may start.
  void EndDegraded(const CacheKey& key, CallId sid);
  // Whether a caller may start waiting (waiter limits); answers the error.
  absl::Status AdmitWaiter(const CacheKey& key);
  // Records what a compute's end says about the upstream.
  void RecordOutcome(const NamespaceSettings& ns, ComputeOutcome outcome);
  bool IsWaitingSession(CallId id, const CacheKey& key) const;
  // Whether `s` holds its key's fleet-wide lock right now (a locked or
  // refresh lease, not revoked; until its fill is answered).
  static bool HoldsKeyLock(const Session& s);

  // Session helpers.
  void GrantLease(Session& s, LeaseMode mode, uint64_t fencing_token,
                  std::string current_value);
  void EndLease(Session& s);  // Cancels renew/revoke timers.
  void OnWaitTimeout(CallId id);
  // The HEDGE policy for a caller whose wait timed out (still queued):
  // re-read, then at most max_hedges duplicates per lease fleet-wide;
  // everyone else waits on for the live holder's fill.
  void HedgeOrWaitOn(Session& s);
  // Puts a timed-out caller (out of the queue) back in it for WaitOnFor.
  void WaitOn(Session& s);
  // How long a timed-out caller waits on for a live holder: until its call
  // deadline or max_compute_time from now, whichever is first.
  absl::Duration WaitOnFor(const Session& s) const;
  // The budget's last word on a lease about to be granted (the lock, if
  // any, already won): charges it as the lease's slot (the lock token, or a
  // new one), waiting for budget up to the caller's wait_timeout unless it
  // accepts a stale value on hand. `still_wanted` is asked before each try.
  // `wait`: false for callers that must not wait for budget (one try).
  // `then` gets the verdict (the session may be gone by then).
  void ChargeForLease(Session& s, absl::Duration hold, bool wait,
                      absl::AnyInvocable<bool()> still_wanted,
                      absl::AnyInvocable<void(const BudgetVerdict&)> then);
  // After a wait timeout: the breaker and the budget (one try) decide, then
  // an unlocked lease. `hedge`: under HEDGE (refused budget: wait on);
  // otherwise COMPUTE_UNLOCKED (refused budget: RESOURCE_EXHAUSTED).
  void GrantOnTimeout(Session& s, bool hedge);
  // RESOURCE_EXHAUSTED compute-budget, or the stale value if the caller
  // accepts one.
  void RejectForBudget(Session& s, const BudgetVerdict& verdict);
  void OnLockWaitTimeout(CallId id);
  // A lock waiter (already taken out of the queue) won the lock: the
  // compute budget decides, waiting up to `wait_until`; then the grant, or
  // RESOURCE_EXHAUSTED compute-budget and the lock released. `finished`
  // (may be null) runs once the lock is granted or released.
  void GrantLockAfterBudget(LockWaiter w, const LockAttempt& attempt,
                            absl::Time wait_until,
                            absl::AnyInvocable<void()> finished);
  // Removes a lock waiter (which must exist) and returns it: cancels its
  // timer and leaves the queue if it was queued, records `outcome` ("":
  // none). The caller answers it.
  LockWaiter TakeLockWaiter(CallId id, absl::string_view outcome);
  void RenewLease(CallId id);
  void RevokeLease(CallId id);
  // `bytes`: the value's bytes when already shared with other callers
  // (null: shared from here on).
  void SendValue(Session& s, const StoredValue& value, Source source,
                 std::shared_ptr<const std::string> bytes = nullptr);
  // Answers a remembered upstream failure (negative caching).
  void FailRemembered(Session& s, absl::Time failed_until);
  bool IsReadingSession(CallId id, const CacheKey& key) const;
  void FinishSession(Session& s, absl::Status status);
  void RetireSession(Session& s);
  ValueView ViewOf(const StoredValue& value, Source source,
                   std::shared_ptr<const std::string> bytes = nullptr) const;
  bool IsFresh(const StoredValue& value) const {
    return value.expires_at > clock_.Now();
  }

  std::string NewToken();
  // A key's namespace settings, once the key is valid and its namespace
  // allowed (configured, or within the dynamic-namespace limit). Any thread.
  absl::StatusOr<NamespaceSettings> Settings(const CacheKey& key) const;
  absl::StatusOr<NamespaceSettings> Settings(absl::string_view ns) const;
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
  // Thread-safe; Settings() records each use.
  mutable NamespaceTracker namespaces_;

  // Loop thread only.
  absl::BitGen rng_;
  absl::node_hash_map<CacheKey, Flight> flights_;  // Stable references.
  absl::node_hash_map<CallId, Session> sessions_;
  absl::node_hash_map<CallId, LockWaiter> lock_waiters_;
  BreakerRegistry breakers_;
  BudgetGate budget_;
  int total_waiting_ = 0;  // Live queue entries over all flights.
  // Values computed while the store was unreachable, so that this replica
  // computes each key once per outage, not once per wave of callers.
  // Dropped when the store is back (the store is the truth again).
  absl::flat_hash_map<CacheKey, StoredValue> degraded_values_;
  bool shutting_down_ = false;
  Executor::TimerId evict_timer_ = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_COORDINATOR_H_
