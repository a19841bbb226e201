// The in-memory store: the default when corrald has no --redis, and the fast
// store of the core tests. "Fleet-wide" means this process. Time comes from
// the injected Clock, so tests expire TTLs without sleeping.
#ifndef CORRAL_SERVER_STORE_EMBEDDED_STORE_H_
#define CORRAL_SERVER_STORE_EMBEDDED_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "server/core/clock.h"
#include "server/core/executor.h"
#include "server/core/read_cache.h"
#include "server/core/store.h"

namespace corral {

class EmbeddedStore final : public Store {
 public:
  // `loop` and `clock` must outlive the store. Destroy the store on the loop
  // thread or after the loop has stopped. With read_cache.max_bytes > 0 it
  // keeps a read cache (server/core/read_cache.h).
  EmbeddedStore(Executor& executor, const Clock& clock,
                ReadCacheOptions read_cache = {});
  ~EmbeddedStore() override;

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
  void Watch(const CacheKey& key) override;
  void Unwatch(const CacheKey& key) override;
  void LoadBreaker(const std::string& ns,
                   Callback<BreakerRecord> done) override;
  void StoreBreaker(const std::string& ns, uint64_t expected_version,
                    std::string state, Callback<BreakerCas> done) override;
  void ClaimHedge(const CacheKey& key, uint32_t max_hedges, absl::Duration keep,
                  Callback<HedgeClaim> done) override;
  void ChargeBudget(const std::string& ns, const std::string& slot,
                    const BudgetLimits& limits, absl::Duration hold,
                    Callback<BudgetCharge> done) override;
  void RenewBudget(const std::string& ns, const std::string& slot,
                   absl::Duration hold, Callback<bool> done) override;
  void ReturnBudget(const std::string& ns, const std::string& slot,
                    Callback<bool> done) override;
  void Ping(StatusCallback done) override;
  bool IsUp() const override { return true; }
  const ReadCache* read_cache() const override { return read_cache_.get(); }

 private:
  struct Entry {
    StoredValue value;
    absl::Time keep_until;  // expires_at + stale window
  };
  struct Lock {
    std::string token;
    absl::Time expires_at;
  };

  // Hedges claimed under one lease (its lock token).
  struct Hedges {
    std::string token;
    uint32_t count = 0;
  };
  // A namespace's compute budget: the GCRA's TAT and the in-flight slots
  // with their expiry.
  struct Budget {
    int64_t tat_us = 0;
    absl::flat_hash_map<std::string, absl::Time> slots;
  };

  // Drops what has expired at `now` for `key`.
  void ExpireKey(const CacheKey& key, absl::Time now);
  // Get and TryLock without the reply.
  KeyRead Read(const CacheKey& key);
  LockAttempt TakeLock(const CacheKey& key, const std::string& token,
                       absl::Duration ttl);
  void Notify(KeyEvent event);
  void SweepSoon();
  void Sweep();

  template <typename T, typename Fn>
  void Reply(Fn done, T result) {
    executor_.Post(
        [done = std::move(done), result = std::move(result)]() mutable {
          done(std::move(result));
        });
  }

  Executor& executor_;
  const Clock& clock_;
  StoreListener* listener_ = nullptr;
  absl::flat_hash_map<CacheKey, Entry> values_;
  absl::flat_hash_map<CacheKey, Lock> locks_;
  // Remembered upstream failures: until when.
  absl::flat_hash_map<CacheKey, absl::Time> failures_;
  // Last fencing token per key; dropped once the clock has passed it, since
  // new tokens start at the current time in microseconds.
  absl::flat_hash_map<CacheKey, uint64_t> fences_;
  absl::flat_hash_set<CacheKey> watched_;
  absl::flat_hash_map<std::string, BreakerRecord> breakers_;
  // Per key; dropped with the key's lock.
  absl::flat_hash_map<CacheKey, Hedges> hedges_;
  absl::flat_hash_map<std::string, Budget> budgets_;
  Executor::TimerId sweep_timer_ = 0;
  std::unique_ptr<ReadCache> read_cache_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_EMBEDDED_STORE_H_
