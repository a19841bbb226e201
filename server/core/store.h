// The seam between coordination and storage. Two implementations: the
// embedded in-memory store (one replica) and Redis (a fleet). The same
// behaviour suite runs on both.
//
// Threading: every method is called on the store's EventLoop thread, and
// every callback runs on that thread too, never inline from the call (so a
// caller may hold no assumptions about re-entrancy). Callbacks must not block.
#ifndef CORRAL_SERVER_CORE_STORE_H_
#define CORRAL_SERVER_CORE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"

namespace corral {

class ReadCache;

struct StoredValue {
  std::string value;
  absl::Time stored_at;
  // Logical expiry. A value past it is only returned while the stale window
  // given at write time lasts; callers decide whether to serve it.
  absl::Time expires_at;
  // How long the compute that produced it took (lease to fill; zero when
  // unknown): the delta of probabilistic early refresh.
  absl::Duration compute_time = absl::ZeroDuration();
};

// What one read of a key finds.
struct KeyRead {
  // The value, fresh or inside its stale window.
  std::optional<StoredValue> value;
  // An upstream failure of this key is remembered until then (negative
  // caching); InfinitePast when none is. A read that finds a fresh value may
  // leave it out (a failure matters only without one; a refresh learns it
  // with the lock, TryLockAndRead).
  absl::Time failed_until = absl::InfinitePast();
  // Get only: the store tracked the read (ReadCache::EndRead was true when
  // the answer was handed over), so it will hear of every later change of
  // the key and tell the near cache (docs/ARCHITECTURE.md 3.8).
  bool tracked = false;
};

struct PutOptions {
  absl::Duration ttl;
  // How long past `ttl` the value is kept for stale serving (0: not kept).
  absl::Duration stale_window = absl::ZeroDuration();
  // Fenced write: stored only while this lock token holds the key's lock.
  // Empty: unfenced.
  std::string lock_token;
  // With lock_token: release the lock in the same atomic step.
  bool release_lock = false;
  // Store only if no fresh (unexpired) value is present: the fill of an
  // unlocked compute must not overwrite a locked fill that landed first.
  bool only_if_absent = false;
  // Stored with the value (StoredValue::compute_time).
  absl::Duration compute_time = absl::ZeroDuration();
};

struct LockAttempt {
  bool acquired = false;
  // When acquired: strictly greater than every token issued before for this
  // key, fleet-wide and across restarts.
  uint64_t fencing_token = 0;
  // Acquired: when our lock expires. Not acquired: when the current holder's
  // lock expires unless renewed (the time to try again if no release comes).
  absl::Time expires_at;
  // TryLockAndRead, when acquired: the key as read right after the lock was
  // taken, in the same step.
  std::optional<KeyRead> read;
};

// What a lock release tells the key's waiters.
enum class ReleaseNotice {
  kReleased,       // The lock is free; wake one waiter.
  kUpstreamFailed  // The holder's compute failed; waiters share the failure.
};

// A change to a watched key, delivered to the StoreListener.
struct KeyEvent {
  enum class Kind {
    // The store now delivers this key's events (the subscription is
    // confirmed): re-read, since anything before was not delivered.
    kWatching,
    // The key's lock was released (or may have been: kResync).
    kReleased,
    // The holder abandoned with an upstream failure; the lock is free.
    kUpstreamFailed,
    // A value was stored (`value` is set). With a fenced release it also
    // freed the lock.
    kFilled,
    // Events may have been lost (reconnect): re-read and retry.
    kResync,
  };
  Kind kind;
  CacheKey key;
  std::optional<StoredValue> value;
};

// A namespace's shared circuit-breaker state: an opaque encoded snapshot and
// a version that grows with every write. Version 0: nothing stored yet.
struct BreakerRecord {
  uint64_t version = 0;
  std::string state;
};

struct BreakerCas {
  bool stored = false;    // Our write won.
  BreakerRecord current;  // What the store holds now (ours if stored).
};

// What a hedge claim found (on_wait_timeout HEDGE).
struct HedgeClaim {
  enum class Result {
    kGranted,   // A hedge of the current lease: compute without the lock.
    kRefused,   // The lease's hedges are used up: wait for its fill.
    kNoHolder,  // Nobody holds the key's lock: queue for it.
  };
  Result result = Result::kNoHolder;
  // Hedges claimed under the current lease, this one included if granted.
  uint32_t hedges = 0;
  // kGranted / kRefused: when the holder's lock expires unless renewed.
  absl::Time holder_expires_at;
};

// A namespace's compute budget, as the store enforces it. Limits of 0 are
// unlimited.
struct BudgetLimits {
  uint32_t max_in_flight = 0;
  double rate_per_second = 0;
  uint32_t burst = 1;
  // false (shadow mode): the charge is always admitted and its slot taken;
  // over_budget says whether an enforced budget would have refused it.
  bool enforce = true;
};

struct BudgetCharge {
  bool admitted = false;
  bool over_budget = false;
  // When over_budget: "in_flight" or "rate", the limit that refused it.
  std::string limit;
  // When over_budget: when to try again. Rate: exactly when the next grant
  // fits. In flight: when the oldest slot expires unless returned first, at
  // most one second (a fill usually returns one sooner).
  absl::Duration retry_after = absl::ZeroDuration();
  // Slots held in the namespace after this charge, fleet-wide.
  uint32_t in_flight = 0;
};

class StoreListener {
 public:
  virtual ~StoreListener() = default;
  // Loop thread.
  virtual void OnKeyEvent(const KeyEvent& event) = 0;
  // Another write (any replica's) changed a namespace's breaker state.
  virtual void OnBreakerChanged(const std::string& ns,
                                const BreakerRecord& record) {
    (void)ns;
    (void)record;
  }
  // The store became reachable (true) or unreachable (false). Loop thread.
  virtual void OnStoreAvailability(bool up) = 0;
};

class Store {
 public:
  template <typename T>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;
  using StatusCallback = absl::AnyInvocable<void(absl::Status)>;

  virtual ~Store() = default;

  // The listener receives key events and availability changes. Set once,
  // before the first Watch.
  virtual void SetListener(StoreListener* listener) = 0;

  // The value (including one past expires_at that is still inside its stale
  // window) and, unless the value is fresh, a remembered failure: one round
  // trip.
  virtual void Get(const CacheKey& key, Callback<KeyRead> done) = 0;
  // Stores a value, forgets a remembered failure and notifies watchers
  // (kFilled). Answers whether it was stored (false: the fence or
  // only_if_absent refused it; a refused fenced write keeps the lock).
  virtual void Put(const CacheKey& key, std::string value,
                   const PutOptions& options, Callback<bool> done) = 0;
  // Removes the value and any remembered failure; answers whether a value
  // existed.
  virtual void Delete(const CacheKey& key, Callback<bool> done) = 0;
  // Remembers that computing the key failed, for `ttl` (negative caching).
  // Answers until when.
  virtual void RememberFailure(const CacheKey& key, absl::Duration ttl,
                               Callback<absl::Time> done) = 0;

  // Takes the key's lock for `token` if it is free.
  virtual void TryLock(const CacheKey& key, const std::string& token,
                       absl::Duration ttl, Callback<LockAttempt> done) = 0;
  // TryLock that, when it takes the lock, also reads the key
  // (LockAttempt::read): the check a compute makes before it starts (a fill
  // may have landed since the caller's miss), without another round trip.
  // An error leaves the lock free.
  virtual void TryLockAndRead(const CacheKey& key, const std::string& token,
                              absl::Duration ttl,
                              Callback<LockAttempt> done) = 0;
  // Extends the lock if `token` still holds it; answers the new expiry, or
  // nullopt when the lock is no longer ours.
  virtual void RenewLock(const CacheKey& key, const std::string& token,
                         absl::Duration ttl,
                         Callback<std::optional<absl::Time>> done) = 0;
  // Releases the lock if `token` holds it and tells the waiters; answers
  // whether it was released.
  virtual void ReleaseLock(const CacheKey& key, const std::string& token,
                           ReleaseNotice notice, Callback<bool> done) = 0;

  // Starts / stops delivering the key's events to the listener. The caller
  // pairs them: Watch a key it does not watch, Unwatch one it does. kWatching
  // follows each Watch once the store delivers the key's events, and again
  // after a reconnect re-establishes them.
  virtual void Watch(const CacheKey& key) = 0;
  virtual void Unwatch(const CacheKey& key) = 0;

  // The namespace's breaker record ({0, ""} when none is stored).
  virtual void LoadBreaker(const std::string& ns,
                           Callback<BreakerRecord> done) = 0;
  // Compare-and-set: stores `state` as version expected_version + 1 if the
  // stored version is expected_version, and then tells every replica
  // (OnBreakerChanged). Answers what the store holds afterwards.
  virtual void StoreBreaker(const std::string& ns, uint64_t expected_version,
                            std::string state, Callback<BreakerCas> done) = 0;

  // HEDGE: claims one of `max_hedges` duplicate computes allowed per key per
  // lease start, fleet-wide, while the key's lock is held (a lease start is
  // a lock token: a new holder starts a new count). max_hedges 0 only asks
  // whether the lock is held. The count is kept for `keep` (the lease's
  // longest life, max_compute_time), or until the lock is gone.
  virtual void ClaimHedge(const CacheKey& key, uint32_t max_hedges,
                          absl::Duration keep, Callback<HedgeClaim> done) = 0;

  // Compute budget of namespace `ns`, shared by every replica. Time is the
  // store's (Redis TIME; the embedded store's Clock).
  //
  // Charges one grant: one unit of the rate (GCRA: period 1/rate, burst
  // `burst`) and one in-flight slot named `slot` (unique, e.g. the lock
  // token), held for `hold` unless renewed or returned, so that a slot whose
  // holder died expires by itself. Enforced and over budget: nothing is
  // charged.
  virtual void ChargeBudget(const std::string& ns, const std::string& slot,
                            const BudgetLimits& limits, absl::Duration hold,
                            Callback<BudgetCharge> done) = 0;
  // Holds `slot` for `hold` from now; answers false when it is gone
  // (expired or returned).
  virtual void RenewBudget(const std::string& ns, const std::string& slot,
                           absl::Duration hold, Callback<bool> done) = 0;
  // Returns `slot`; answers whether it was held.
  virtual void ReturnBudget(const std::string& ns, const std::string& slot,
                            Callback<bool> done) = 0;

  // Round trip to the store (health checks).
  virtual void Ping(StatusCallback done) = 0;
  // Whether the store is believed reachable right now.
  virtual bool IsUp() const = 0;

  // The replica's read cache that this store keeps coherent
  // (server/core/read_cache.h), or null. Any thread.
  virtual const ReadCache* read_cache() const { return nullptr; }
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_STORE_H_
