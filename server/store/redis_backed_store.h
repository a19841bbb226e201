// The part of the fleet store that is the same on one Redis master
// (RedisStore, optionally found through Sentinel) and on Redis Cluster
// (RedisClusterStore): every Store operation is one script on the keys of
// one cache item or one namespace (redis_scripts.h), so its keys, arguments,
// reply parsing, read-cache bookkeeping and replica acknowledgement are
// written here, once. A subclass supplies only what differs: how a script
// reaches Redis (RunScript: one connection, or routed by hash slot with
// MOVED/ASK and retries), where a grant waits for replicas (AwaitReplicas),
// what a failed command means to the core (CommandError), how it shuts
// down (ShutdownOnLoop), and its own connections, pub/sub, tracking and
// keep-alive. The connection state that WaitUntilConnected, IsUp and the
// listener see is kept here too: the subclass reports it (MarkConnected,
// MarkDisconnected, MarkShutDown).
//
// Threading: the operations run on the loop thread, as the Store interface
// says; Start, WaitUntilConnected, Shutdown and IsUp on any thread.
#ifndef CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_
#define CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/event_loop.h"
#include "server/core/read_cache.h"
#include "server/core/store.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"

namespace corral {

class RedisBackedStore : public Store {
 public:
  ~RedisBackedStore() override;

  // Begins connecting (on the loop). Any thread; once.
  virtual void Start() = 0;
  // Blocks until connected: OK; a non-retryable failure of the latest
  // attempt (wrong password, unknown database, ...) returns at once with its
  // error; otherwise, after `timeout`, the latest attempt's error. The store
  // keeps retrying either way. Not on the loop thread (it would deadlock).
  absl::Status WaitUntilConnected(absl::Duration timeout);
  // Disconnects for good: pending and later operations are answered with
  // StoreUnavailable, no listener call follows. From a non-loop thread it
  // waits for the loop to do it, so the loop must be running; on the loop
  // thread it runs inline. Idempotent.
  void Shutdown();

  void SetListener(StoreListener* listener) final { listener_ = listener; }
  // Any thread.
  bool IsUp() const final { return up_.load(std::memory_order_acquire); }

  // The Store operations, the same on every Redis deployment.
  void Get(const CacheKey& key, Callback<KeyRead> done) final;
  void Put(const CacheKey& key, std::string value, const PutOptions& options,
           Callback<bool> done) final;
  void Delete(const CacheKey& key, Callback<bool> done) final;
  void RememberFailure(const CacheKey& key, absl::Duration ttl,
                       Callback<absl::Time> done) final;
  void TryLock(const CacheKey& key, const std::string& token,
               absl::Duration ttl, Callback<LockAttempt> done) final;
  void TryLockAndRead(const CacheKey& key, const std::string& token,
                      absl::Duration ttl, Callback<LockAttempt> done) final;
  void RenewLock(const CacheKey& key, const std::string& token,
                 absl::Duration ttl,
                 Callback<std::optional<absl::Time>> done) final;
  void ReleaseLock(const CacheKey& key, const std::string& token,
                   ReleaseNotice notice, Callback<bool> done) final;
  void LoadBreaker(const std::string& ns, Callback<BreakerRecord> done) final;
  void StoreBreaker(const std::string& ns, uint64_t expected_version,
                    std::string state, Callback<BreakerCas> done) final;
  void ClaimHedge(const CacheKey& key, uint32_t max_hedges, absl::Duration keep,
                  Callback<HedgeClaim> done) final;
  void ChargeBudget(const std::string& ns, const std::string& slot,
                    const BudgetLimits& limits, absl::Duration hold,
                    Callback<BudgetCharge> done) final;
  void RenewBudget(const std::string& ns, const std::string& slot,
                   absl::Duration hold, Callback<bool> done) final;
  void ReturnBudget(const std::string& ns, const std::string& slot,
                    Callback<bool> done) final;
  const ReadCache* read_cache() const final { return read_cache_.get(); }

 protected:
  // `loop` must outlive the store. Makes the read cache when
  // options.read_cache asks for one.
  RedisBackedStore(EventLoop& loop, RedisOptions options);

  // Which connection a command goes on. Lock traffic (grants, renewals,
  // releases, fenced writes, hedges, budgets) has its own connection when
  // grants wait for replica acks: a WAIT holds up everything behind it on
  // its connection, and hits must not queue behind it. Without acks both
  // are the command connection.
  enum class Via { kCommands, kGrants };

  // A script's reply, with the node that ran it ("" where there is one
  // master, or when it did not run).
  using ScriptDone = absl::AnyInvocable<void(absl::StatusOr<RedisReply>,
                                             const std::string& node)>;
  // Runs `script` on the master of its keys (EVALSHA, then EVAL on
  // NOSCRIPT). `done` may run inline (the store is down), so it must only
  // post. Loop thread.
  virtual void RunScript(RedisScript script, std::vector<std::string> keys,
                         std::vector<std::string> args, ScriptDone done,
                         Via via) = 0;
  // Runs `acked` once options_.min_replica_acks replicas of `node` hold
  // every write sent so far on its grants connection (OK), or with
  // StoreUnavailable. Loop thread; `acked` may run inline.
  virtual void AwaitReplicas(const std::string& node,
                             absl::AnyInvocable<void(absl::Status)> acked) = 0;
  // A failed command's error as the core must see it, the same on every
  // Redis deployment (docs/ARCHITECTURE.md section 6): a lost connection, a
  // timeout or a Redis that cannot serve right now (LOADING, READONLY, OOM,
  // CLUSTERDOWN, redirections or retries run out, ...) is an outage,
  // store-unavailable; a Redis error reply to a command we sent well-formed
  // (a Lua error, WRONGTYPE because something else wrote into corral's
  // keys) is no outage and must not look like one: INTERNAL, and logged.
  absl::Status CommandError(const absl::Status& error) const;
  // Disconnects for good on the loop thread (idempotent), then calls
  // MarkShutDown(). Not inside a callback of the store's connections.
  virtual void ShutdownOnLoop() = 0;

  // The connection state (loop thread). MarkConnected: IsUp, the listener
  // hears OnStoreAvailability(true) (before WaitUntilConnected returns, so
  // that it does not take calls made after that for calls made before),
  // WaitUntilConnected returns OK. MarkDisconnected: not up;
  // WaitUntilConnected returns `error` at once unless it is
  // store-unavailable (transport trouble may pass; a refusal by Redis will
  // not); the listener is not told (PostAvailability(false) does that).
  // MarkShutDown: for good.
  void MarkConnected();
  void MarkDisconnected(const absl::Status& error);
  void MarkShutDown();
  // StoreUnavailable with the reason the store is down.
  absl::Status DownStatus() const { return down_reason_; }
  // Tell the listener, on the loop, unless the store is gone by then.
  void PostAvailability(bool up);
  // A message of the breaker channel; an undecodable one is dropped.
  void PostBreakerMessage(absl::string_view payload);

  // Answers on the loop, never inline.
  template <typename T>
  void Answer(Callback<T> done, absl::StatusOr<T> result) {
    loop_.Post([done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  EventLoop& loop_;
  const RedisOptions options_;
  StoreListener* listener_ = nullptr;
  // Why operations are answered StoreUnavailable while the store is down
  // (loop thread).
  absl::Status down_reason_;
  // Null unless options_.read_cache.Tracks() (values or a near cache). Loop
  // thread, except the pointer's Find users.
  std::unique_ptr<ReadCache> read_cache_;
  // Posted tasks that touch the store check it first; the subclass resets
  // it in its destructor.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

 private:
  // Runs `script` and answers `done` with `parse(reply)`, or with
  // CommandError of the failure.
  template <typename T, typename Parse>
  void RunAndAnswer(RedisScript script, std::vector<std::string> keys,
                    std::vector<std::string> args, Parse parse,
                    Callback<T> done, Via via = Via::kCommands);
  // TryLock and TryLockAndRead: one script; `read` adds the key's read.
  void RunTryLock(const CacheKey& key, const std::string& token,
                  absl::Duration ttl, bool read, Callback<LockAttempt> done);
  // The budget scripts' now_us argument: "" (Redis TIME) unless a test
  // injected budget_clock.
  std::string BudgetNow() const;

  bool ConnectSettled() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return connected_ || fatal_ || shut_down_;
  }

  std::atomic<bool> up_{false};
  // What WaitUntilConnected waits on; written on the loop thread.
  mutable absl::Mutex mu_;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool fatal_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_
