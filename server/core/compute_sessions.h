// GetOrCompute sessions and their leases (docs/ARCHITECTURE.md, section 2):
// one Session per stream, from its Lookup through the shared read, a wait
// in the key's FIFO (a Session is a Waiter), the lock or a timeout, to a
// lease that ends in a Fill or an Abandon; plus the freshness paths that
// hand a reader a REFRESH lease (Step 10) and local coordination while the
// store is unreachable (section 3.4). The Coordinator façade posts the
// stream's messages here; the flight table (flight_table.h) decides who
// tries for the lock.
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_COMPUTE_SESSIONS_H_
#define CORRAL_SERVER_CORE_COMPUTE_SESSIONS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/breaker_registry.h"
#include "server/core/budget_gate.h"
#include "server/core/call.h"
#include "server/core/clock.h"
#include "server/core/compute_sink.h"
#include "server/core/executor.h"
#include "server/core/flight_table.h"
#include "server/core/local_values.h"
#include "server/core/observer.h"
#include "server/core/request_resolver.h"
#include "server/core/store.h"
#include "server/core/token.h"
#include "server/core/types.h"
#include "server/core/waiter.h"

namespace corral {

class ComputeSessions {
 public:
  // All references must outlive this. `early_refresh_draw`: XFetch's draw
  // in (0, 1] when set (tests), else a uniform one. `budget`: the compute
  // budget every lease is charged to (shared with the lock waiters).
  ComputeSessions(Executor& executor, Store& store, const Clock& clock,
                  CoordinatorObserver& observer, BreakerRegistry& breakers,
                  BudgetGate& budget, FlightTable& flights,
                  const RequestResolver& resolver,
                  const std::function<double()>& early_refresh_draw);

  // --- A stream's messages, in order ----------------------------------------
  void Start(CallId id, std::shared_ptr<ComputeSink> sink);
  // `refresh_due_for`: the read cache found the value due for an early
  // refresh; a value expiring no later is refreshed without a second draw.
  void Lookup(CallId id, LookupRequest request, absl::Time refresh_due_for);
  void Fill(CallId id, FillRequest request);
  void Abandon(CallId id, AbandonRequest request);
  void HalfClosed(CallId id);
  void Gone(CallId id);

  // --- For the flight table and the façade ----------------------------------
  // The session `id`, if there is one.
  Waiter* Find(CallId id);
  // Whether session `holder` holds `key`'s lock (FlightTable::Owner).
  bool StillHoldsLock(CallId holder, const CacheKey& key);
  // A shared read of `key` is answered: its readers (sessions and unary
  // Gets) get what it says (FlightTable::Owner).
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result);
  // Serves every GetOrCompute caller of the key (readers and waiters).
  void ServeAll(const CacheKey& key, const StoredValue& value, Source source,
                LookupStage stage);
  // Fails every GetOrCompute waiter of the key.
  void FailWaiters(const CacheKey& key, const absl::Status& status);
  // The store is back: values computed during the outage are dropped.
  void OnStoreUp() { local_values_.Clear(); }
  // Releases every lock a session holds (`released` runs once per release
  // answered; the answer is how many were started) and ends every session
  // with UNAVAILABLE shutting-down.
  int ShutDown(const std::function<void()>& released);
  // Adds every session's namespace (they keep it from being evicted).
  void AddNamespaces(absl::flat_hash_set<std::string>& into) const;

 private:
  enum class SessionState { kAwaitLookup, kReading, kWaiting, kLeased, kDone };

  struct Session final : Waiter {
    ComputeSessions* owner = nullptr;
    CallId call_id = 0;
    std::shared_ptr<ComputeSink> sink;
    SessionState state = SessionState::kAwaitLookup;
    LookupRequest lookup;
    NamespaceSettings ns;
    absl::Duration ttl, wait_timeout, lease_ttl;
    absl::Time wait_started;
    Executor::TimerId wait_timer = 0;
    bool half_closed = false;
    // The read cache found the value due for an early refresh: a value
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
    // It won the key's lock and the compute budget decides
    // (ChargeLockedLease): still queued, so that a fill serves it, but a
    // hedge decision under way must not act on it any more.
    bool charging_lock = false;

    // Waiter: a GetOrCompute caller waits for the value; as the head it
    // takes the lock to compute it (section 2, Steps 4-6).
    CallId id() const override { return call_id; }
    bool WaitsOn(const CacheKey& key) const override {
      return state == SessionState::kWaiting && lookup.key == key;
    }
    bool MayTakeLock() const override { return !half_closed; }
    bool ServedByFill() const override { return true; }
    LockTry PrepareLockTry() override {
      return LockTry{NewLockToken(), lease_ttl, /*read_with_lock=*/true};
    }
    void OnLockWon(const CacheKey& key, std::string won_token,
                   const LockAttempt& attempt) override {
      owner->OnLockWon(*this, key, std::move(won_token), attempt);
    }
    void OnLockUnavailable(const absl::Status&) override {}
    bool OnOwnAttemptFailed(const CacheKey& key,
                            const absl::Status& error) override {
      return owner->OnAttemptFailed(*this, key, error);
    }
  };

  // --- The exchange (compute_sessions.cc) -----------------------------------
  void DoLookup(Session& s, LookupRequest request);
  // The session if it holds a lease; otherwise ends it with the protocol
  // error "<message> without a lease" (or "first message must be a
  // Lookup") and answers null.
  Session* SessionHoldingLease(CallId id, absl::string_view message);
  // Puts a session whose lookup missed into the queue, with its wait timer
  // (`wait`, or the session's whole wait_timeout).
  void BeginWait(Session& s, std::optional<absl::Duration> wait = std::nullopt);
  // Starts a queued session's wait timer: `wait`, or what is left of its
  // wait_timeout since its Lookup; capped by its deadline. None left: the
  // timeout policy runs now.
  void ArmWaitTimer(Session& s, std::optional<absl::Duration> wait);
  // A queued session leaves the queue (its wait is observed); the caller
  // then answers, leases or re-reads it.
  void StopWaiting(Session& s);
  void OnWaitTimeout(CallId id);
  // The head session won the key's lock (with a read of the key).
  void OnLockWon(Session& s, const CacheKey& key, std::string token,
                 const LockAttempt& attempt);
  // The head session's attempt failed in the store: a degraded compute
  // under COORDINATE_LOCALLY, else every compute waiter gets the error.
  // Answers whether the next head may try now.
  bool OnAttemptFailed(Session& s, const CacheKey& key,
                       const absl::Status& error);
  // Ends every GetOrCompute waiter of the key with `end` (which must retire
  // the session).
  void EndWaiters(const CacheKey& key,
                  const std::function<void(Session&)>& end);
  // The breaker refused a compute: a stale value for those who accept one,
  // UNAVAILABLE breaker-open with retry-after-ms for the rest.
  void RejectForBreaker(Session& s, const BreakerVerdict& verdict);
  bool IsWaitingSession(CallId id, const CacheKey& key) const;
  bool IsReadingSession(CallId id, const CacheKey& key) const;
  // `bytes`: the value's bytes when already shared with other callers
  // (null: shared from here on).
  void SendValue(Session& s, const StoredValue& value, Source source,
                 std::shared_ptr<const std::string> bytes = nullptr);
  // Answers a remembered upstream failure (negative caching).
  void FailRemembered(Session& s, absl::Time failed_until);
  void FinishSession(Session& s, absl::Status status);
  void RetireSession(Session& s);

  // --- Leases (compute_leases.cc) -------------------------------------------
  void GrantLease(Session& s, LeaseMode mode, uint64_t fencing_token,
                  std::string current_value);
  void EndLease(Session& s);  // Cancels the session's timers.
  void RenewLease(CallId id);
  void RevokeLease(CallId id);
  void DoFill(Session& s, FillRequest request);
  void DoAbandon(Session& s, AbandonRequest request);
  // A locked leaseholder half-closed without a Fill: the lock goes back at
  // once (the next waiter gets it) and the caller waits on as a reader for
  // what is left of its wait_timeout.
  void ReturnLease(Session& s);
  // Whether `s` holds its key's fleet-wide lock right now (a locked or
  // refresh lease, not revoked; until its fill is answered).
  static bool HoldsKeyLock(const Session& s);

  // --- Protecting the upstream (compute_upstream.cc, section 3.11) ----------
  // The HEDGE policy for a caller whose wait timed out (still queued):
  // re-read, then at most max_hedges duplicates per lease fleet-wide;
  // everyone else waits on for the live holder's fill.
  void HedgeOrWaitOn(Session& s);
  // Puts a timed-out caller (out of the queue) back in it for WaitOnFor.
  void WaitOn(Session& s);
  // How long a timed-out caller waits on for a live holder: until its call
  // deadline or max_compute_time from now, whichever is first.
  absl::Duration WaitOnFor(const Session& s) const;
  // After a wait timeout: the breaker and the budget (one try) decide, then
  // an unlocked lease. `hedge`: under HEDGE (refused budget: wait on);
  // otherwise COMPUTE_UNLOCKED (refused budget: RESOURCE_EXHAUSTED).
  void GrantOnTimeout(Session& s, bool hedge);
  // The budget's last word on a lease about to be granted (the lock, if
  // any, already won): charges it as the lease's slot (the lock token, or a
  // new one), waiting for budget up to the caller's wait_timeout unless
  // `wait` is false or it accepts a stale value on hand. `still_wanted` is
  // asked before each try; `then` gets the verdict (the session may be gone
  // by then).
  void ChargeForLease(Session& s, absl::Duration hold, bool wait,
                      absl::AnyInvocable<bool()> still_wanted,
                      absl::AnyInvocable<void(const BudgetVerdict&)> then);
  // The head session won the lock (fence) and the breaker admits it: the
  // budget decides, then the lease or RejectForBudget. While it waits for
  // budget it keeps (and renews) the lock.
  void ChargeLockedLease(const CacheKey& key, CallId sid, uint64_t fence,
                         const std::string& token);
  // RESOURCE_EXHAUSTED compute-budget, or the stale value if the caller
  // accepts one.
  void RejectForBudget(Session& s, const BudgetVerdict& verdict);

  // --- Freshness without herds (compute_refresh.cc) -------------------------
  // Whether a hit on `value` should become an early refresh.
  bool WantsEarlyRefresh(const Session& s, const StoredValue& value);
  // Tries once for the key's lock; if it is won (and the breaker admits a
  // compute) the reading session gets a REFRESH lease carrying `current`,
  // otherwise `current` itself. `trigger`: "stale" or "early".
  void StartRefresh(Session& s, StoredValue current, absl::string_view trigger);
  // The refresh attempt of `sid` is over without a lease: it gets `current`
  // and the lock, if `token` took it, goes back.
  void EndRefreshAttempt(const CacheKey& key, CallId sid,
                         const StoredValue& current, const std::string& token,
                         bool release);

  // --- Local coordination (compute_degraded.cc, section 3.4) ----------------
  // The store is unreachable and the namespace coordinates locally: the
  // queue's head computes for this replica (after one last read).
  void ComputeDegraded(const CacheKey& key, CallId sid);
  // The degraded compute `sid` ended: the next one may start.
  void EndDegraded(const CacheKey& key, CallId sid);

  bool IsFresh(const StoredValue& value) const {
    return value.expires_at > clock_.Now();
  }

  Executor& executor_;
  Store& store_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  BreakerRegistry& breakers_;
  BudgetGate& budget_;
  FlightTable& flights_;
  const RequestResolver& resolver_;
  const std::function<double()>& early_refresh_draw_;
  absl::BitGen rng_;
  absl::node_hash_map<CallId, Session> sessions_;  // Stable references.
  LocalValues local_values_;
  bool shutting_down_ = false;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_COMPUTE_SESSIONS_H_
