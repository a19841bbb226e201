// The compute budget's side of a grant (issue 18): charges a lease or a lock
// grant to its namespace's budget (Store::ChargeBudget, fleet-wide), waits
// for budget by asking again, renews and returns the grant's slot, and
// reports to the observer. The coordinator asks it once a grant is about to
// be handed out (the lock already won), never for hits or waiters.
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_BUDGET_GATE_H_
#define CORRAL_SERVER_CORE_BUDGET_GATE_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/namespace_config.h"
#include "server/core/observer.h"
#include "server/core/store.h"

namespace corral {

struct BudgetVerdict {
  bool admitted = true;
  // The slot the grant holds (renew it with the lease, return it when the
  // lease ends); "" when nothing is held: no budget, or the store failed.
  std::string slot;
  // Refused: which limit ("in_flight", "rate") and when to come back.
  std::string limit;
  absl::Duration retry_after = absl::ZeroDuration();
  // `still_wanted()` said no before a verdict: nothing is held.
  bool withdrawn = false;
};

class BudgetGate {
 public:
  // All references must outlive the gate.
  BudgetGate(Store& store, Executor& executor, const Clock& clock,
             CoordinatorObserver& observer);
  ~BudgetGate();
  BudgetGate(const BudgetGate&) = delete;
  BudgetGate& operator=(const BudgetGate&) = delete;

  // Charges one grant named `slot` (unique: the lock token), held for
  // `hold` unless renewed or returned. Refused (enforced budget), it asks
  // again after the store's retry hint (between 10 and 250 ms; the last try
  // at `deadline`) while `still_wanted()`; a deadline already past means one
  // try. The wait is counted on the executor's timers from now. `done` gets the
  // verdict once: admitted, refused at the deadline, or withdrawn
  // (`still_wanted()` said no; a slot admitted meanwhile went back). A
  // namespace without a budget is admitted at once (inline, no slot); a
  // store error admits without a slot (a budget must not turn a store
  // outage into an outage of every compute) and is logged.
  void Charge(const NamespaceSettings& ns, std::string slot,
              absl::Duration hold, absl::Time deadline,
              absl::AnyInvocable<bool()> still_wanted,
              absl::AnyInvocable<void(BudgetVerdict)> done);
  // Extends a held slot (with its lease's renewal). No-op for "".
  void Renew(const std::string& ns, const std::string& slot,
             absl::Duration hold);
  // Returns a held slot and clears `*slot`. No-op for "".
  void Return(const std::string& ns, std::string* slot);

  // How long a refused charge waits before asking again.
  static absl::Duration RetryDelay(absl::Duration retry_after);

 private:
  struct Attempt;
  void Try(std::shared_ptr<Attempt> attempt);

  Store& store_;
  Executor& executor_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  // Posted retries check it first: the gate may be gone.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_BUDGET_GATE_H_
