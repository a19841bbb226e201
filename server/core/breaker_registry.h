// Each replica's view of the fleet's circuit breakers, one per namespace.
//
// The state lives in the store as a versioned record; this registry caches
// it, so deciding whether a compute may start costs no store round trip
// while the breaker is closed (or plainly open). Changes are compare-and-set
// writes of a snapshot the breaker rules (breaker.h) produced from the latest
// version; other replicas hear of them through the store's notices. If the
// store is unreachable the breaker keeps working on the cached state alone.
//
// Threading: loop thread only.
#ifndef CORRAL_SERVER_CORE_BREAKER_REGISTRY_H_
#define CORRAL_SERVER_CORE_BREAKER_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "server/core/breaker.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/namespace_config.h"
#include "server/core/observer.h"
#include "server/core/store.h"

namespace corral {

struct BreakerVerdict {
  bool allowed = true;
  bool probe = false;  // Allowed as one of HALF_OPEN's probes.
  absl::Duration retry_after;
};

struct BreakerView {
  BreakerState state = BreakerState::kClosed;
  absl::Time since;
  absl::Duration retry_after;
  uint64_t recent_failures = 0;
  uint64_t recent_successes = 0;
};

class BreakerRegistry {
 public:
  BreakerRegistry(Executor& executor, Store& store, const Clock& clock,
                  CoordinatorObserver& observer);
  ~BreakerRegistry();

  // May a compute start in this namespace? Answers at once from the cache,
  // except the first time a namespace is seen (its state is loaded) and for
  // a half-open probe permit (taken by a compare-and-set).
  void Admit(const NamespaceSettings& ns,
             absl::AnyInvocable<void(BreakerVerdict)> done);
  // The cached answer, without waiting: nullopt when it needs the store
  // (not loaded yet, or a probe permit). For fast failure at a miss.
  std::optional<BreakerVerdict> Peek(const NamespaceSettings& ns) const;
  // Feeds one outcome to the namespace's breaker. Plain successes while it
  // is closed are batched: written (with compare-and-set) at most once per
  // kSuccessBatch per namespace, or at once with the next other outcome,
  // so that a busy namespace does not pay one store write and one pub/sub
  // message per compute. A closed breaker decides nothing on successes
  // alone; they only dilute later failures, which carry them along.
  void Record(const NamespaceSettings& ns, ComputeOutcome outcome);
  // Writes every namespace's pending successes now (shutdown); `written`
  // runs once per write started, when it is answered. Answers how many
  // were started.
  int FlushPending(const std::function<void()>& written);
  // The state for GetBreaker (loads it first if unknown).
  void Describe(const NamespaceSettings& ns,
                absl::AnyInvocable<void(BreakerView)> done);

  // Whether the namespace's entry has work under way (a load, waiting
  // callers, successes not yet written): then it must not be forgotten.
  bool Busy(const std::string& ns) const;
  // Drops the namespace's entry (an evicted idle namespace); the next use
  // loads it again. Only when not Busy.
  void Forget(const std::string& ns);

  // From the store listener.
  void OnChanged(const std::string& ns, const BreakerRecord& record);
  void OnStoreAvailability(bool up);

 private:
  struct Entry {
    uint64_t version = 0;
    BreakerSnapshot snapshot;
    bool loaded = false;
    bool loading = false;
    std::vector<absl::AnyInvocable<void()>> after_load;
    // Successes recorded here but not yet written, and the timer that
    // writes them.
    uint64_t pending_successes = 0;
    Executor::TimerId flush_timer = 0;
    std::optional<NamespaceSettings> pending_for;  // Whose they are.
  };

  // Runs `then` once the namespace's state is known.
  void WhenLoaded(const std::string& ns, absl::AnyInvocable<void()> then);
  void Load(const std::string& ns);
  // Takes the store's record if it is newer than the cached one.
  void Adopt(const std::string& ns, const BreakerRecord& record);
  // Applies `change` to the latest snapshot and writes it with
  // compare-and-set, retrying on conflict. `change` returns false to give up
  // (e.g. no probe permit left); `done` hears whether the change took.
  void Mutate(const NamespaceSettings& ns,
              std::function<bool(BreakerSnapshot&)> change,
              absl::AnyInvocable<void(bool)> done, int attempt = 0);
  void Tick();
  // Writes the pending successes, then `outcome` if any, in one change.
  void Flush(const NamespaceSettings& ns, std::optional<ComputeOutcome> outcome,
             std::function<void()> written = nullptr);

  Executor& executor_;
  Store& store_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  absl::flat_hash_map<std::string, Entry> entries_;
  Executor::TimerId tick_timer_ = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_BREAKER_REGISTRY_H_
