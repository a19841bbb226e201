#include "server/core/budget_gate.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "server/core/log.h"

namespace corral {

namespace {
BudgetVerdict Withdrawn() {
  BudgetVerdict v;
  v.admitted = false;
  v.withdrawn = true;
  return v;
}
}  // namespace

struct BudgetGate::Attempt {
  std::string ns;
  BudgetLimits limits;
  std::string slot;
  absl::Duration hold;
  // What is left of the wait, counted down by the retry timers (so that it
  // runs on the executor's time, as wait timers do).
  absl::Duration left;
  absl::AnyInvocable<bool()> still_wanted;
  absl::AnyInvocable<void(BudgetVerdict)> done;
  // The first refusal is counted as a wait; the retries only update the
  // in-flight gauge.
  bool refused_before = false;
};

BudgetGate::BudgetGate(Store& store, Executor& executor, const Clock& clock,
                       CoordinatorObserver& observer)
    : store_(store), executor_(executor), clock_(clock), observer_(observer) {}

BudgetGate::~BudgetGate() = default;

absl::Duration BudgetGate::RetryDelay(absl::Duration retry_after) {
  return std::clamp(retry_after, absl::Milliseconds(10),
                    absl::Milliseconds(250));
}

void BudgetGate::Charge(const NamespaceSettings& ns, std::string slot,
                        absl::Duration hold, absl::Time deadline,
                        absl::AnyInvocable<bool()> still_wanted,
                        absl::AnyInvocable<void(BudgetVerdict)> done) {
  if (!ns.compute_budget.enabled()) return done(BudgetVerdict{});
  auto attempt = std::make_shared<Attempt>();
  attempt->ns = ns.name;
  attempt->limits.max_in_flight = ns.compute_budget.max_in_flight;
  attempt->limits.rate_per_second = ns.compute_budget.rate_per_second;
  attempt->limits.burst = ns.compute_budget.burst;
  attempt->limits.enforce = ns.compute_budget.enforce;
  attempt->slot = std::move(slot);
  attempt->hold = hold;
  attempt->left = std::max(absl::ZeroDuration(), deadline - clock_.Now());
  attempt->still_wanted = std::move(still_wanted);
  attempt->done = std::move(done);
  Try(std::move(attempt));
}

void BudgetGate::Try(std::shared_ptr<Attempt> attempt) {
  store_.ChargeBudget(
      attempt->ns, attempt->slot, attempt->limits, attempt->hold,
      [this, alive = std::weak_ptr<int>(alive_),
       attempt](absl::StatusOr<BudgetCharge> charge) mutable {
        if (alive.expired()) return;
        if (!charge.ok()) {
          CORRAL_LOG(LogLevel::kWarning, "budget_unavailable",
                     "ns=", attempt->ns, " error=\"", charge.status().message(),
                     "\" admitted=true");
          if (attempt->still_wanted()) return attempt->done(BudgetVerdict{});
          return attempt->done(Withdrawn());
        }
        const bool enforced = attempt->limits.enforce;
        observer_.OnBudgetCharge(
            attempt->ns, charge->in_flight,
            charge->over_budget && !(enforced && attempt->refused_before)
                ? absl::string_view(charge->limit)
                : absl::string_view(),
            enforced);
        if (charge->admitted) {
          if (!attempt->still_wanted()) {
            // Nobody wants the grant any more: the slot goes back.
            std::string slot = attempt->slot;
            Return(attempt->ns, &slot);
            return attempt->done(Withdrawn());
          }
          BudgetVerdict verdict;
          verdict.slot = attempt->slot;
          return attempt->done(std::move(verdict));
        }
        attempt->refused_before = true;
        if (!attempt->still_wanted()) return attempt->done(Withdrawn());
        if (attempt->left <= absl::ZeroDuration()) {
          BudgetVerdict verdict;
          verdict.admitted = false;
          verdict.limit = charge->limit;
          verdict.retry_after = charge->retry_after;
          return attempt->done(std::move(verdict));
        }
        // The last try is at the deadline itself.
        const absl::Duration delay =
            std::min(RetryDelay(charge->retry_after), attempt->left);
        attempt->left -= delay;
        executor_.RunAfter(delay, [this, alive, attempt]() mutable {
          if (alive.expired()) return;
          if (!attempt->still_wanted()) return attempt->done(Withdrawn());
          Try(std::move(attempt));
        });
      });
}

void BudgetGate::Renew(const std::string& ns, const std::string& slot,
                       absl::Duration hold) {
  if (slot.empty()) return;
  store_.RenewBudget(ns, slot, hold, [](absl::StatusOr<bool>) {});
}

void BudgetGate::Return(const std::string& ns, std::string* slot) {
  if (slot->empty()) return;
  store_.ReturnBudget(ns, *slot, [](absl::StatusOr<bool>) {});
  observer_.OnBudgetReturned(ns);
  slot->clear();
}

}  // namespace corral
