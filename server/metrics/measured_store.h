// A Store decorator that times every operation (corral_store_op_seconds) and
// tracks reachability (corral_store_up), so neither store implementation
// knows about metrics.
#ifndef CORRAL_SERVER_METRICS_MEASURED_STORE_H_
#define CORRAL_SERVER_METRICS_MEASURED_STORE_H_

#include <functional>
#include <string>

#include "server/core/store.h"
#include "server/metrics/metrics.h"

namespace corral {

class MeasuredStore final : public Store, public StoreListener {
 public:
  // `inner` and `metrics` must outlive this object. `on_availability`, if
  // set, also hears reachability changes (loop thread; must not block).
  MeasuredStore(Store& inner, Metrics& metrics,
                std::function<void(bool)> on_availability = nullptr);

  void SetListener(StoreListener* listener) override { listener_ = listener; }
  void Get(const CacheKey& key, Callback<KeyRead> done) override;
  void Put(const CacheKey& key, std::string value, const PutOptions& options,
           Callback<bool> done) override;
  void Delete(const CacheKey& key, Callback<bool> done) override;
  void RememberFailure(const CacheKey& key, absl::Duration ttl,
                       Callback<absl::Time> done) override;
  void TryLock(const CacheKey& key, const std::string& token,
               absl::Duration ttl, Callback<LockAttempt> done) override;
  void TryLockAndRead(const CacheKey& key, const std::string& token,
                      absl::Duration ttl, Callback<LockAttempt> done) override;
  void RenewLock(const CacheKey& key, const std::string& token,
                 absl::Duration ttl,
                 Callback<std::optional<absl::Time>> done) override;
  void ReleaseLock(const CacheKey& key, const std::string& token,
                   ReleaseNotice notice, Callback<bool> done) override;
  void ClaimHedge(const CacheKey& key, uint32_t max_hedges, absl::Duration keep,
                  Callback<HedgeClaim> done) override;
  void ChargeBudget(const std::string& ns, const std::string& slot,
                    const BudgetLimits& limits, absl::Duration hold,
                    Callback<BudgetCharge> done) override;
  void RenewBudget(const std::string& ns, const std::string& slot,
                   absl::Duration hold, Callback<bool> done) override;
  void ReturnBudget(const std::string& ns, const std::string& slot,
                    Callback<bool> done) override;
  void Watch(const CacheKey& key) override { inner_.Watch(key); }
  void Unwatch(const CacheKey& key) override { inner_.Unwatch(key); }
  void LoadBreaker(const std::string& ns,
                   Callback<BreakerRecord> done) override;
  void StoreBreaker(const std::string& ns, uint64_t expected_version,
                    std::string state, Callback<BreakerCas> done) override;
  void Ping(StatusCallback done) override;
  bool IsUp() const override { return inner_.IsUp(); }
  const ReadCache* read_cache() const override { return inner_.read_cache(); }

  // StoreListener: forwards to the listener set on this store.
  void OnKeyEvent(const KeyEvent& event) override;
  void OnStoreAvailability(bool up) override;
  void OnBreakerChanged(const std::string& ns,
                        const BreakerRecord& record) override {
    if (listener_ != nullptr) listener_->OnBreakerChanged(ns, record);
  }

 private:
  // Wraps `done` so that it first records the latency of `op`.
  template <typename T>
  Callback<T> Timed(absl::string_view op, Callback<T> done);

  Store& inner_;
  Metrics& metrics_;
  StoreListener* listener_ = nullptr;
  std::function<void(bool)> on_availability_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_METRICS_MEASURED_STORE_H_
