#include "server/store/embedded_store.h"

#include <algorithm>
#include <utility>

#include "server/core/gcra.h"

namespace corral {
namespace {
constexpr absl::Duration kSweepInterval = absl::Seconds(1);

uint64_t MicrosOf(absl::Time t) {
  return static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMicros(t)));
}
}  // namespace

EmbeddedStore::EmbeddedStore(Executor& executor, const Clock& clock,
                             ReadCacheOptions read_cache)
    : executor_(executor), clock_(clock) {
  if (read_cache.Tracks()) {
    read_cache_ = std::make_unique<ReadCache>(std::move(read_cache));
    // Every write goes through this object: nothing is ever missed.
    read_cache_->SetCoherent(true);
  }
  executor_.Post([this] { SweepSoon(); });
}

EmbeddedStore::~EmbeddedStore() {
  if (sweep_timer_ != 0) executor_.Cancel(sweep_timer_);
}

void EmbeddedStore::ExpireKey(const CacheKey& key, absl::Time now) {
  if (auto it = values_.find(key);
      it != values_.end() && it->second.keep_until <= now) {
    values_.erase(it);
  }
  if (auto it = locks_.find(key);
      it != locks_.end() && it->second.expires_at <= now) {
    locks_.erase(it);
  }
  if (!locks_.contains(key)) hedges_.erase(key);
  if (auto it = failures_.find(key);
      it != failures_.end() && it->second <= now) {
    failures_.erase(it);
  }
}

KeyRead EmbeddedStore::Read(const CacheKey& key) {
  ExpireKey(key, clock_.Now());
  KeyRead read;
  if (auto it = values_.find(key); it != values_.end())
    read.value = it->second.value;
  if (auto it = failures_.find(key); it != failures_.end())
    read.failed_until = it->second;
  return read;
}

void EmbeddedStore::Get(const CacheKey& key, Callback<KeyRead> done) {
  KeyRead read = Read(key);
  if (!read_cache_) {
    Reply(std::move(done), absl::StatusOr<KeyRead>(std::move(read)));
    return;
  }
  // The read ends when its answer is handed over, as Redis's does: a write
  // in between (a Put that ran before this reply) spoils the ticket, so the
  // answer is neither cached nor counted as tracked.
  const uint64_t ticket = read_cache_->BeginRead(key);
  executor_.Post([this, key, ticket, read = std::move(read),
                  done = std::move(done)]() mutable {
    const bool fresh =
        read.value.has_value() && read.value->expires_at > clock_.Now();
    read.tracked =
        read_cache_->EndRead(key, ticket, fresh ? &*read.value : nullptr);
    done(absl::StatusOr<KeyRead>(std::move(read)));
  });
}

void EmbeddedStore::Put(const CacheKey& key, std::string value,
                        const PutOptions& options, Callback<bool> done) {
  const absl::Time now = clock_.Now();
  ExpireKey(key, now);
  auto lock = locks_.find(key);
  if (!options.lock_token.empty() &&
      (lock == locks_.end() || lock->second.token != options.lock_token)) {
    Reply(std::move(done), absl::StatusOr<bool>(false));
    return;
  }
  if (options.only_if_absent) {
    auto it = values_.find(key);
    if (it != values_.end() && it->second.value.expires_at > now) {
      Reply(std::move(done), absl::StatusOr<bool>(false));
      return;
    }
  }
  if (read_cache_) read_cache_->Invalidate(key);
  // kFilled tells waiters the lock may be free too.
  if (!options.lock_token.empty() && options.release_lock) locks_.erase(lock);
  failures_.erase(key);
  StoredValue stored{std::move(value), now, now + options.ttl,
                     options.compute_time};
  values_[key] = Entry{stored, stored.expires_at + options.stale_window};
  Notify(KeyEvent{KeyEvent::Kind::kFilled, key, std::move(stored)});
  Reply(std::move(done), absl::StatusOr<bool>(true));
}

void EmbeddedStore::Delete(const CacheKey& key, Callback<bool> done) {
  ExpireKey(key, clock_.Now());
  failures_.erase(key);
  if (read_cache_) read_cache_->Invalidate(key);
  bool existed = values_.erase(key) > 0;
  Reply(std::move(done), absl::StatusOr<bool>(existed));
}

void EmbeddedStore::RememberFailure(const CacheKey& key, absl::Duration ttl,
                                    Callback<absl::Time> done) {
  const absl::Time until = clock_.Now() + ttl;
  failures_[key] = until;
  Reply(std::move(done), absl::StatusOr<absl::Time>(until));
}

void EmbeddedStore::TryLock(const CacheKey& key, const std::string& token,
                            absl::Duration ttl, Callback<LockAttempt> done) {
  Reply(std::move(done),
        absl::StatusOr<LockAttempt>(TakeLock(key, token, ttl)));
}

void EmbeddedStore::TryLockAndRead(const CacheKey& key,
                                   const std::string& token, absl::Duration ttl,
                                   Callback<LockAttempt> done) {
  LockAttempt attempt = TakeLock(key, token, ttl);
  if (attempt.acquired) attempt.read = Read(key);
  Reply(std::move(done), absl::StatusOr<LockAttempt>(std::move(attempt)));
}

LockAttempt EmbeddedStore::TakeLock(const CacheKey& key,
                                    const std::string& token,
                                    absl::Duration ttl) {
  const absl::Time now = clock_.Now();
  ExpireKey(key, now);
  LockAttempt attempt;
  if (auto it = locks_.find(key); it != locks_.end()) {
    attempt.acquired = false;
    attempt.expires_at = it->second.expires_at;
  } else {
    uint64_t& fence = fences_[key];
    fence = std::max(fence + 1, MicrosOf(now));
    locks_[key] = Lock{token, now + ttl};
    attempt.acquired = true;
    attempt.fencing_token = fence;
    attempt.expires_at = now + ttl;
  }
  return attempt;
}

void EmbeddedStore::RenewLock(const CacheKey& key, const std::string& token,
                              absl::Duration ttl,
                              Callback<std::optional<absl::Time>> done) {
  const absl::Time now = clock_.Now();
  ExpireKey(key, now);
  std::optional<absl::Time> result;
  if (auto it = locks_.find(key);
      it != locks_.end() && it->second.token == token) {
    it->second.expires_at = now + ttl;
    result = it->second.expires_at;
  }
  Reply(std::move(done), absl::StatusOr<std::optional<absl::Time>>(result));
}

void EmbeddedStore::ReleaseLock(const CacheKey& key, const std::string& token,
                                ReleaseNotice notice, Callback<bool> done) {
  ExpireKey(key, clock_.Now());
  bool released = false;
  if (auto it = locks_.find(key);
      it != locks_.end() && it->second.token == token) {
    locks_.erase(it);
    released = true;
    Notify(KeyEvent{notice == ReleaseNotice::kUpstreamFailed
                        ? KeyEvent::Kind::kUpstreamFailed
                        : KeyEvent::Kind::kReleased,
                    key, std::nullopt});
  }
  Reply(std::move(done), absl::StatusOr<bool>(released));
}

void EmbeddedStore::Watch(const CacheKey& key) {
  watched_.insert(key);
  // Delivery is immediate in-process: confirm at once (posted, never inline).
  Notify(KeyEvent{KeyEvent::Kind::kWatching, key, std::nullopt});
}

void EmbeddedStore::Unwatch(const CacheKey& key) { watched_.erase(key); }

void EmbeddedStore::Notify(KeyEvent event) {
  if (listener_ == nullptr || !watched_.contains(event.key)) return;
  executor_.Post([this, event = std::move(event)] {
    // The key may have been unwatched since; the listener expects only
    // events of keys it watches.
    if (listener_ != nullptr && watched_.contains(event.key)) {
      listener_->OnKeyEvent(event);
    }
  });
}

void EmbeddedStore::LoadBreaker(const std::string& ns,
                                Callback<BreakerRecord> done) {
  BreakerRecord record;
  if (auto it = breakers_.find(ns); it != breakers_.end()) record = it->second;
  Reply(std::move(done), absl::StatusOr<BreakerRecord>(std::move(record)));
}

void EmbeddedStore::StoreBreaker(const std::string& ns,
                                 uint64_t expected_version, std::string state,
                                 Callback<BreakerCas> done) {
  BreakerRecord& current = breakers_[ns];
  BreakerCas cas;
  if (current.version == expected_version) {
    current = BreakerRecord{expected_version + 1, std::move(state)};
    cas.stored = true;
    executor_.Post([this, ns, record = current] {
      if (listener_ != nullptr) listener_->OnBreakerChanged(ns, record);
    });
  }
  cas.current = current;
  Reply(std::move(done), absl::StatusOr<BreakerCas>(std::move(cas)));
}

void EmbeddedStore::ClaimHedge(const CacheKey& key, uint32_t max_hedges,
                               absl::Duration keep, Callback<HedgeClaim> done) {
  (void)keep;  // Kept while the lock is: hedges_ goes with locks_.
  ExpireKey(key, clock_.Now());
  HedgeClaim claim;
  auto lock = locks_.find(key);
  if (lock == locks_.end()) {
    claim.result = HedgeClaim::Result::kNoHolder;
  } else {
    claim.holder_expires_at = lock->second.expires_at;
    Hedges& h = hedges_[key];
    if (h.token != lock->second.token) h = Hedges{lock->second.token, 0};
    if (h.count < max_hedges) {
      ++h.count;
      claim.result = HedgeClaim::Result::kGranted;
    } else {
      claim.result = HedgeClaim::Result::kRefused;
    }
    claim.hedges = h.count;
  }
  Reply(std::move(done), absl::StatusOr<HedgeClaim>(claim));
}

void EmbeddedStore::ChargeBudget(const std::string& ns, const std::string& slot,
                                 const BudgetLimits& limits,
                                 absl::Duration hold,
                                 Callback<BudgetCharge> done) {
  const absl::Time now = clock_.Now();
  const int64_t now_us = absl::ToUnixMicros(now);
  Budget& b = budgets_[ns];
  absl::erase_if(b.slots, [now](const auto& kv) { return kv.second <= now; });
  BudgetCharge charge;
  if (limits.max_in_flight > 0 && b.slots.size() >= limits.max_in_flight) {
    charge.over_budget = true;
    charge.limit = "in_flight";
    absl::Time oldest = absl::InfiniteFuture();
    for (const auto& [name, until] : b.slots) oldest = std::min(oldest, until);
    charge.retry_after = std::min(oldest - now, absl::Seconds(1));
  }
  if (!charge.over_budget && limits.rate_per_second > 0) {
    GcraDecision d =
        Gcra(b.tat_us, now_us, limits.rate_per_second, limits.burst);
    if (d.allowed) {
      b.tat_us = d.tat_us;
    } else {
      charge.over_budget = true;
      charge.limit = "rate";
      charge.retry_after = absl::Microseconds(d.retry_after_us);
    }
  }
  charge.admitted = !charge.over_budget || !limits.enforce;
  if (charge.admitted) b.slots[slot] = now + hold;
  charge.in_flight = static_cast<uint32_t>(b.slots.size());
  Reply(std::move(done), absl::StatusOr<BudgetCharge>(std::move(charge)));
}

void EmbeddedStore::RenewBudget(const std::string& ns, const std::string& slot,
                                absl::Duration hold, Callback<bool> done) {
  const absl::Time now = clock_.Now();
  bool held = false;
  if (auto b = budgets_.find(ns); b != budgets_.end()) {
    auto it = b->second.slots.find(slot);
    if (it != b->second.slots.end() && it->second > now) {
      it->second = now + hold;
      held = true;
    }
  }
  Reply(std::move(done), absl::StatusOr<bool>(held));
}

void EmbeddedStore::ReturnBudget(const std::string& ns, const std::string& slot,
                                 Callback<bool> done) {
  const absl::Time now = clock_.Now();
  bool held = false;
  if (auto b = budgets_.find(ns); b != budgets_.end()) {
    auto it = b->second.slots.find(slot);
    if (it != b->second.slots.end()) {
      held = it->second > now;
      b->second.slots.erase(it);
    }
  }
  Reply(std::move(done), absl::StatusOr<bool>(held));
}

void EmbeddedStore::Ping(StatusCallback done) {
  executor_.Post(
      [done = std::move(done)]() mutable { done(absl::OkStatus()); });
}

void EmbeddedStore::SweepSoon() {
  sweep_timer_ = executor_.RunAfter(kSweepInterval, [this] {
    sweep_timer_ = 0;
    Sweep();
    SweepSoon();
  });
}

void EmbeddedStore::Sweep() {
  const absl::Time now = clock_.Now();
  absl::erase_if(values_,
                 [now](const auto& kv) { return kv.second.keep_until <= now; });
  absl::erase_if(locks_,
                 [now](const auto& kv) { return kv.second.expires_at <= now; });
  absl::erase_if(failures_, [now](const auto& kv) { return kv.second <= now; });
  absl::erase_if(hedges_,
                 [this](const auto& kv) { return !locks_.contains(kv.first); });
  const int64_t now_micros = absl::ToUnixMicros(now);
  for (auto& [ns, budget] : budgets_) {
    absl::erase_if(budget.slots,
                   [now](const auto& kv) { return kv.second <= now; });
  }
  // A budget with no slot and a TAT in the past holds nothing.
  absl::erase_if(budgets_, [now_micros](const auto& kv) {
    return kv.second.slots.empty() && kv.second.tat_us <= now_micros;
  });
  const uint64_t now_us = MicrosOf(now);
  absl::erase_if(fences_, [this, now_us](const auto& kv) {
    return kv.second < now_us && !locks_.contains(kv.first);
  });
}

}  // namespace corral
