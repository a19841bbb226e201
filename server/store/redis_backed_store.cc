#include "server/store/redis_backed_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {
namespace {

// How long a fence key outlives its last lock. Tokens are time-based, so
// forgetting it only matters if Redis' clock steps back meanwhile.
constexpr int64_t kFenceKeepMillis = 3 * 24 * 3600 * 1000LL;

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Redis refuses PX 0; a lock of less than a millisecond is one millisecond.
std::string LeaseMillis(absl::Duration ttl) {
  return absl::StrCat(std::max<int64_t>(1, Millis(ttl)));
}

}  // namespace

RedisBackedStore::RedisBackedStore(EventLoop& loop, RedisOptions options)
    : loop_(loop), options_(std::move(options)) {
  if (options_.read_cache.Tracks()) {
    read_cache_ = std::make_unique<ReadCache>(options_.read_cache);
  }
}

RedisBackedStore::~RedisBackedStore() = default;

absl::Status RedisBackedStore::CommandError(const absl::Status& error) const {
  if (ReasonOf(error) == kReasonStoreUnavailable) return error;
  const std::string code = RedisErrorCode(error);
  if (error.code() == absl::StatusCode::kInternal && !code.empty() &&
      code != "OOM") {
    CORRAL_LOG(LogLevel::kError, "store_command_error", "error=\"",
               error.message(), "\"");
    return absl::InternalError(
        absl::StrCat("the store refused the command: ", error.message()));
  }
  return StoreUnavailable(error.message());
}

absl::Status RedisBackedStore::WaitUntilConnected(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &RedisBackedStore::ConnectSettled),
                       timeout);
  if (connected_) return absl::OkStatus();
  if (shut_down_) return absl::FailedPreconditionError("store shut down");
  if (!last_error_.ok()) return last_error_;
  return StoreUnavailable(absl::StrCat(down_reason_.message(), " after ",
                                       absl::FormatDuration(timeout)));
}

void RedisBackedStore::Shutdown() {
  if (loop_.InLoopThread()) {
    ShutdownOnLoop();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
  }
  absl::Notification done;
  loop_.Post([this, &done] {
    ShutdownOnLoop();
    done.Notify();
  });
  done.WaitForNotification();
}

void RedisBackedStore::MarkConnected() {
  up_.store(true, std::memory_order_release);
  PostAvailability(true);
  absl::MutexLock lock(&mu_);
  connected_ = true;
  fatal_ = false;
  last_error_ = absl::OkStatus();
}

void RedisBackedStore::MarkDisconnected(const absl::Status& error) {
  up_.store(false, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  connected_ = false;
  fatal_ = ReasonOf(error) != kReasonStoreUnavailable;
  last_error_ = error;
}

void RedisBackedStore::MarkShutDown() {
  up_.store(false, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  connected_ = false;
}

void RedisBackedStore::PostAvailability(bool up) {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_), up] {
    if (alive.expired() || listener_ == nullptr) return;
    listener_->OnStoreAvailability(up);
  });
}

void RedisBackedStore::PostBreakerMessage(absl::string_view payload) {
  auto message = DecodeBreakerMessage(payload);
  if (!message.ok()) return;
  loop_.Post([this, alive = std::weak_ptr<int>(alive_),
              message = *std::move(message)] {
    if (alive.expired() || listener_ == nullptr) return;
    listener_->OnBreakerChanged(message.first, message.second);
  });
}

template <typename T, typename Parse>
void RedisBackedStore::RunAndAnswer(RedisScript script,
                                    std::vector<std::string> keys,
                                    std::vector<std::string> args, Parse parse,
                                    Callback<T> done, Via via) {
  RunScript(
      script, std::move(keys), std::move(args),
      [this, parse, done = std::move(done)](absl::StatusOr<RedisReply> reply,
                                            const std::string&) mutable {
        if (!reply.ok()) {
          Answer(std::move(done),
                 absl::StatusOr<T>(CommandError(reply.status())));
          return;
        }
        Answer(std::move(done), absl::StatusOr<T>(parse(*reply)));
      },
      via);
}

void RedisBackedStore::Get(const CacheKey& key, Callback<KeyRead> done) {
  RedisItemKeys keys = RedisKeysFor(key);
  Callback<KeyRead> answer = std::move(done);
  if (read_cache_) {
    // A fresh value read while tracking holds goes into the read cache,
    // unless an invalidation of the key overtook the read.
    const uint64_t ticket = read_cache_->BeginRead(key);
    answer = [this, alive = std::weak_ptr<int>(alive_), key, ticket,
              done = std::move(answer)](absl::StatusOr<KeyRead> read) mutable {
      if (!alive.expired()) {
        const bool fresh = read.ok() && read->value.has_value() &&
                           read->value->expires_at > absl::Now();
        const bool tracked =
            read_cache_->EndRead(key, ticket, fresh ? &*read->value : nullptr);
        if (read.ok()) read->tracked = tracked;
      }
      done(std::move(read));
    };
  }
  RunAndAnswer<KeyRead>(RedisScript::kGet,
                        {std::move(keys.value), std::move(keys.failure)},
                        {absl::StrCat(absl::ToUnixMillis(absl::Now()))},
                        ParseGetReply, std::move(answer));
}

void RedisBackedStore::Put(const CacheKey& key, std::string value,
                           const PutOptions& options, Callback<bool> done) {
  // Before the write: this replica reads its own writes.
  if (read_cache_) read_cache_->Invalidate(key);
  RedisItemKeys keys = RedisKeysFor(key);
  std::vector<std::string> args;
  args.reserve(8);
  args.push_back(std::move(value));
  args.push_back(absl::StrCat(Millis(options.ttl)));
  args.push_back(
      absl::StrCat(std::max<int64_t>(0, Millis(options.stale_window))));
  args.push_back(options.lock_token);
  args.push_back(options.release_lock ? "1" : "0");
  args.push_back(options.only_if_absent ? "1" : "0");
  args.push_back(std::move(keys.channel));
  args.push_back(
      absl::StrCat(std::max<int64_t>(0, Millis(options.compute_time))));
  std::vector<std::string> script_keys = {
      std::move(keys.value), std::move(keys.lock), std::move(keys.failure)};
  if (options.lock_token.empty() || options_.min_replica_acks == 0) {
    RunAndAnswer<bool>(RedisScript::kPut, std::move(script_keys),
                       std::move(args), ParseCountReply, std::move(done));
    return;
  }
  // A fenced write is acknowledged only once replicas of the master that
  // stored it hold it (it cannot be undone: a write that was stored but not
  // acknowledged is answered as StoreUnavailable, and the caller must treat
  // it as unknown).
  RunScript(
      RedisScript::kPut, std::move(script_keys), std::move(args),
      [this, done = std::move(done)](absl::StatusOr<RedisReply> reply,
                                     const std::string& node) mutable {
        if (!reply.ok()) {
          Answer(std::move(done),
                 absl::StatusOr<bool>(CommandError(reply.status())));
          return;
        }
        absl::StatusOr<bool> stored = ParseCountReply(*reply);
        if (!stored.ok() || !*stored) {
          Answer(std::move(done), std::move(stored));
          return;
        }
        AwaitReplicas(node, [this, done = std::move(done)](
                                absl::Status acked) mutable {
          if (acked.ok()) {
            Answer(std::move(done), absl::StatusOr<bool>(true));
          } else {
            Answer(std::move(done),
                   absl::StatusOr<bool>(StoreUnavailable(absl::StrCat(
                       "fenced write not acknowledged: ", acked.message()))));
          }
        });
      },
      Via::kGrants);
}

void RedisBackedStore::Delete(const CacheKey& key, Callback<bool> done) {
  if (read_cache_) read_cache_->Invalidate(key);
  RedisItemKeys keys = RedisKeysFor(key);
  RunAndAnswer<bool>(RedisScript::kDelete,
                     {std::move(keys.value), std::move(keys.failure)}, {},
                     ParseCountReply, std::move(done));
}

void RedisBackedStore::RememberFailure(const CacheKey& key, absl::Duration ttl,
                                       Callback<absl::Time> done) {
  RunAndAnswer<absl::Time>(RedisScript::kRememberFailure,
                           {RedisKeysFor(key).failure}, {LeaseMillis(ttl)},
                           ParseRememberFailureReply, std::move(done));
}

void RedisBackedStore::TryLock(const CacheKey& key, const std::string& token,
                               absl::Duration ttl, Callback<LockAttempt> done) {
  RunTryLock(key, token, ttl, /*read=*/false, std::move(done));
}

void RedisBackedStore::TryLockAndRead(const CacheKey& key,
                                      const std::string& token,
                                      absl::Duration ttl,
                                      Callback<LockAttempt> done) {
  RunTryLock(key, token, ttl, /*read=*/true, std::move(done));
}

void RedisBackedStore::RunTryLock(const CacheKey& key, const std::string& token,
                                  absl::Duration ttl, bool read,
                                  Callback<LockAttempt> done) {
  RedisItemKeys keys = RedisKeysFor(key);
  std::vector<std::string> script_keys = {std::move(keys.lock),
                                          std::move(keys.fence)};
  // With the value and failure keys the script also reads the key.
  if (read) {
    script_keys.push_back(std::move(keys.value));
    script_keys.push_back(std::move(keys.failure));
  }
  std::vector<std::string> args = {token, LeaseMillis(ttl),
                                   absl::StrCat(kFenceKeepMillis)};
  if (options_.min_replica_acks == 0) {
    RunAndAnswer<LockAttempt>(RedisScript::kTryLock, std::move(script_keys),
                              std::move(args), ParseTryLockReply,
                              std::move(done));
    return;
  }
  RunScript(
      RedisScript::kTryLock, std::move(script_keys), std::move(args),
      [this, key, token, done = std::move(done)](
          absl::StatusOr<RedisReply> reply, const std::string& node) mutable {
        if (!reply.ok()) {
          Answer(std::move(done),
                 absl::StatusOr<LockAttempt>(CommandError(reply.status())));
          return;
        }
        absl::StatusOr<LockAttempt> attempt = ParseTryLockReply(*reply);
        if (!attempt.ok() || !attempt->acquired) {
          Answer(std::move(done), std::move(attempt));
          return;
        }
        // A grant the promoted replica might not have is not a grant.
        //
        // Why fencing tokens do not go backwards across one failover: the
        // script writes the lock and the key's fence (the token, which is
        // max(fence + 1, Redis TIME in us)) in one step, and Redis
        // replicates the script's writes in order. The token reaches the
        // caller only after WAIT, on the master that wrote the lock and the
        // fence, says min_replica_acks replicas processed every write up to
        // here, fence included. Sentinel (and a cluster failover, per
        // shard) promotes the reachable replica with the most replicated
        // data, so when it is one of those that acknowledged (always, with
        // one replica), the new master's fence for this key is >= every
        // token handed out, and its next token is fence + 1 or more,
        // whatever its clock says. Not covered: acks 0; a promoted replica
        // that did not acknowledge (more replicas than min_replica_acks); a
        // second failover before the new master's replicas caught up; WAIT
        // is not consensus (a replica that acknowledged may still lose the
        // data if it restarts without persistence). See docs/OPERATIONS.md
        // "Redis Sentinel".
        AwaitReplicas(
            node, [this, key, token, attempt = *std::move(attempt),
                   done = std::move(done)](absl::Status acked) mutable {
              if (acked.ok()) {
                Answer(std::move(done),
                       absl::StatusOr<LockAttempt>(std::move(attempt)));
                return;
              }
              // Undone before anyone hears of it (best effort: if this
              // fails too, the lock expires with its lease). Waiters are
              // woken as for any release.
              RedisItemKeys keys = RedisKeysFor(key);
              RunScript(
                  RedisScript::kRelease, {std::move(keys.lock)},
                  {token, std::string(ReleaseMessage(ReleaseNotice::kReleased)),
                   std::move(keys.channel)},
                  [](absl::StatusOr<RedisReply>, const std::string&) {},
                  Via::kGrants);
              Answer(std::move(done),
                     absl::StatusOr<LockAttempt>(StoreUnavailable(
                         absl::StrCat("lock not granted: ", acked.message()))));
            });
      },
      Via::kGrants);
}

void RedisBackedStore::RenewLock(const CacheKey& key, const std::string& token,
                                 absl::Duration ttl,
                                 Callback<std::optional<absl::Time>> done) {
  RunAndAnswer<std::optional<absl::Time>>(
      RedisScript::kRenew, {RedisKeysFor(key).lock}, {token, LeaseMillis(ttl)},
      ParseRenewReply, std::move(done), Via::kGrants);
}

void RedisBackedStore::ReleaseLock(const CacheKey& key,
                                   const std::string& token,
                                   ReleaseNotice notice, Callback<bool> done) {
  RedisItemKeys keys = RedisKeysFor(key);
  RunAndAnswer<bool>(
      RedisScript::kRelease, {std::move(keys.lock)},
      {token, std::string(ReleaseMessage(notice)), std::move(keys.channel)},
      ParseCountReply, std::move(done), Via::kGrants);
}

void RedisBackedStore::LoadBreaker(const std::string& ns,
                                   Callback<BreakerRecord> done) {
  RunAndAnswer<BreakerRecord>(RedisScript::kBreakerLoad, {RedisBreakerKey(ns)},
                              {}, ParseBreakerLoadReply, std::move(done));
}

void RedisBackedStore::StoreBreaker(const std::string& ns,
                                    uint64_t expected_version,
                                    std::string state,
                                    Callback<BreakerCas> done) {
  RunAndAnswer<BreakerCas>(RedisScript::kBreakerCas, {RedisBreakerKey(ns)},
                           {absl::StrCat(expected_version), std::move(state),
                            std::string(kRedisBreakerChannel), ns},
                           ParseBreakerCasReply, std::move(done));
}

void RedisBackedStore::ClaimHedge(const CacheKey& key, uint32_t max_hedges,
                                  absl::Duration keep,
                                  Callback<HedgeClaim> done) {
  RedisItemKeys keys = RedisKeysFor(key);  // One slot: the key's hash tag.
  RunAndAnswer<HedgeClaim>(RedisScript::kClaimHedge,
                           {std::move(keys.lock), std::move(keys.hedges)},
                           ClaimHedgeArgs(max_hedges, keep),
                           ParseClaimHedgeReply, std::move(done), Via::kGrants);
}

std::string RedisBackedStore::BudgetNow() const {
  if (options_.budget_clock == nullptr) return "";
  return absl::StrCat(absl::ToUnixMicros(options_.budget_clock->Now()));
}

// A namespace's budget keys share the tag {ns}: one slot, one master.
void RedisBackedStore::ChargeBudget(const std::string& ns,
                                    const std::string& slot,
                                    const BudgetLimits& limits,
                                    absl::Duration hold,
                                    Callback<BudgetCharge> done) {
  RunAndAnswer<BudgetCharge>(RedisScript::kBudgetCharge,
                             {RedisBudgetSlotsKey(ns), RedisBudgetRateKey(ns)},
                             BudgetChargeArgs(slot, limits, hold, BudgetNow()),
                             ParseBudgetChargeReply, std::move(done),
                             Via::kGrants);
}

void RedisBackedStore::RenewBudget(const std::string& ns,
                                   const std::string& slot, absl::Duration hold,
                                   Callback<bool> done) {
  RunAndAnswer<bool>(RedisScript::kBudgetRenew, {RedisBudgetSlotsKey(ns)},
                     BudgetRenewArgs(slot, hold, BudgetNow()), ParseCountReply,
                     std::move(done), Via::kGrants);
}

void RedisBackedStore::ReturnBudget(const std::string& ns,
                                    const std::string& slot,
                                    Callback<bool> done) {
  RunAndAnswer<bool>(RedisScript::kBudgetReturn, {RedisBudgetSlotsKey(ns)},
                     {slot, BudgetNow()}, ParseCountReply, std::move(done),
                     Via::kGrants);
}

}  // namespace corral
