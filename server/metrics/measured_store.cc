#include "server/metrics/measured_store.h"

#include <utility>

#include "absl/time/clock.h"

namespace corral {

MeasuredStore::MeasuredStore(Store& inner, Metrics& metrics,
                             std::function<void(bool)> on_availability)
    : inner_(inner),
      metrics_(metrics),
      on_availability_(std::move(on_availability)) {
  inner_.SetListener(this);
  metrics_.SetStoreUp(inner_.IsUp());
}

template <typename T>
Store::Callback<T> MeasuredStore::Timed(absl::string_view op,
                                        Callback<T> done) {
  // Store latency is wall time, whatever clock the core runs on.
  return [this, op, start = absl::Now(),
          done = std::move(done)](absl::StatusOr<T> result) mutable {
    metrics_.OnStoreOp(op, absl::Now() - start);
    done(std::move(result));
  };
}

void MeasuredStore::Get(const CacheKey& key, Callback<KeyRead> done) {
  inner_.Get(key, Timed("get", std::move(done)));
}

void MeasuredStore::Put(const CacheKey& key, std::string value,
                        const PutOptions& options, Callback<bool> done) {
  inner_.Put(key, std::move(value), options, Timed("put", std::move(done)));
}

void MeasuredStore::Delete(const CacheKey& key, Callback<bool> done) {
  inner_.Delete(key, Timed("delete", std::move(done)));
}

void MeasuredStore::RememberFailure(const CacheKey& key, absl::Duration ttl,
                                    Callback<absl::Time> done) {
  inner_.RememberFailure(key, ttl, Timed("remember_failure", std::move(done)));
}

void MeasuredStore::TryLock(const CacheKey& key, const std::string& token,
                            absl::Duration ttl, Callback<LockAttempt> done) {
  inner_.TryLock(key, token, ttl, Timed("try_lock", std::move(done)));
}

void MeasuredStore::TryLockAndRead(const CacheKey& key,
                                   const std::string& token, absl::Duration ttl,
                                   Callback<LockAttempt> done) {
  inner_.TryLockAndRead(key, token, ttl, Timed("try_lock", std::move(done)));
}

void MeasuredStore::RenewLock(const CacheKey& key, const std::string& token,
                              absl::Duration ttl,
                              Callback<std::optional<absl::Time>> done) {
  inner_.RenewLock(key, token, ttl, Timed("renew_lock", std::move(done)));
}

void MeasuredStore::ReleaseLock(const CacheKey& key, const std::string& token,
                                ReleaseNotice notice, Callback<bool> done) {
  inner_.ReleaseLock(key, token, notice,
                     Timed("release_lock", std::move(done)));
}

void MeasuredStore::LoadBreaker(const std::string& ns,
                                Callback<BreakerRecord> done) {
  inner_.LoadBreaker(ns, Timed("load_breaker", std::move(done)));
}

void MeasuredStore::StoreBreaker(const std::string& ns,
                                 uint64_t expected_version, std::string state,
                                 Callback<BreakerCas> done) {
  inner_.StoreBreaker(ns, expected_version, std::move(state),
                      Timed("store_breaker", std::move(done)));
}

void MeasuredStore::ClaimHedge(const CacheKey& key, uint32_t max_hedges,
                               absl::Duration keep, Callback<HedgeClaim> done) {
  inner_.ClaimHedge(key, max_hedges, keep,
                    Timed("claim_hedge", std::move(done)));
}

void MeasuredStore::ChargeBudget(const std::string& ns, const std::string& slot,
                                 const BudgetLimits& limits,
                                 absl::Duration hold,
                                 Callback<BudgetCharge> done) {
  inner_.ChargeBudget(ns, slot, limits, hold,
                      Timed("charge_budget", std::move(done)));
}

void MeasuredStore::RenewBudget(const std::string& ns, const std::string& slot,
                                absl::Duration hold, Callback<bool> done) {
  inner_.RenewBudget(ns, slot, hold, Timed("renew_budget", std::move(done)));
}

void MeasuredStore::ReturnBudget(const std::string& ns, const std::string& slot,
                                 Callback<bool> done) {
  inner_.ReturnBudget(ns, slot, Timed("return_budget", std::move(done)));
}

void MeasuredStore::Ping(StatusCallback done) {
  inner_.Ping([this, start = absl::Now(),
               done = std::move(done)](absl::Status s) mutable {
    metrics_.OnStoreOp("ping", absl::Now() - start);
    done(std::move(s));
  });
}

void MeasuredStore::OnKeyEvent(const KeyEvent& event) {
  if (listener_ != nullptr) listener_->OnKeyEvent(event);
}

void MeasuredStore::OnStoreAvailability(bool up) {
  metrics_.SetStoreUp(up);
  if (on_availability_) on_availability_(up);
  if (listener_ != nullptr) listener_->OnStoreAvailability(up);
}

}  // namespace corral
