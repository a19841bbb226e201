// The fleet store: state in Redis (standalone), reached through hiredis on
// the EventLoop. Two connections: commands (pipelined; every atomic step is
// one Lua script, see redis_scripts.h) and a subscriber for the pub/sub
// wake-ups of watched keys.
//
// Availability: while the store is not connected every operation is answered
// at once with StoreUnavailable; commands pending when a connection drops (or
// stays silent for command_timeout) are answered with it too. The store
// reconnects by itself with jittered exponential backoff, re-loads its
// scripts, re-subscribes every watched key (each gets kWatching again) and
// tells the listener OnStoreAvailability(true); a loss is reported once with
// OnStoreAvailability(false).
#ifndef CORRAL_SERVER_STORE_REDIS_STORE_H_
#define CORRAL_SERVER_STORE_REDIS_STORE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/event_loop.h"
#include "server/core/read_cache.h"
#include "server/core/store.h"
#include "server/store/redis_backed_store.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"
#include "server/store/sentinel_client.h"

namespace corral {

class RedisStore final : public RedisBackedStore {
 public:
  // `loop` must outlive the store. Nothing happens until Start().
  RedisStore(EventLoop& loop, RedisOptions options);
  // Call Shutdown() first while the loop runs; or destroy on the loop
  // thread, or after the loop has stopped.
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Begins connecting (on the loop). Any thread; once. A failed attempt's
  // error, as WaitUntilConnected returns it, reads e.g. "cannot connect to
  // 127.0.0.1:6390: Connection refused".
  void Start() override;

  // The data operations, WaitUntilConnected and Shutdown are
  // RedisBackedStore's.
  void Watch(const CacheKey& key) override;
  void Unwatch(const CacheKey& key) override;
  void Ping(StatusCallback done) override;

 private:
  enum class State { kIdle, kConnecting, kUp, kBackoff, kShutdown };
  // One pub/sub channel (one watched key). Kept while watched, or while a
  // SUBSCRIBE is unconfirmed, so that kWatching follows the latest one.
  struct Channel {
    CacheKey key;
    bool watched = false;
    int subscribes_in_flight = 0;
  };

  // Connection lifecycle (loop thread).
  void StartAttempt();
  // Opens this session's connections to host_:port_ and starts the
  // handshake.
  void ConnectDataNode(uint64_t session);
  // Sentinel mode: ends the session (if any) and asks the sentinels again
  // at once, without the backoff.
  void Rediscover(absl::Status why);
  // Sentinel mode: the keep-alive. Ends the session unless ROLE says master.
  void CheckRole();
  absl::Status RoleIsMaster(const absl::StatusOr<RedisReply>& reply) const;
  // One counted handshake step of this session; Connected() follows the
  // last. `take` reads the reply and answers the error that ends the
  // attempt (OK: go on); by default any error reply does. It may start
  // further steps.
  using HandshakeReply =
      absl::AnyInvocable<absl::Status(absl::StatusOr<RedisReply>)>;
  void Handshake(RedisConnection& conn, std::vector<std::string> args,
                 absl::string_view step, HandshakeReply take = nullptr);
  void Connected();
  // Ends session `session` (if it is still the current one) with `error`.
  void Fail(uint64_t session, absl::Status error);
  void CloseConnections(const absl::Status& reason, bool defer_destruction);
  void ShutdownOnLoop() override;
  void ScheduleTick();
  void Tick();
  absl::Duration NextBackoff();

  // Pub/sub (loop thread).
  void OnSubscribed(uint64_t session, absl::string_view channel);
  void OnMessage(uint64_t session, absl::string_view channel,
                 absl::string_view payload);
  void PostEvent(std::string channel, KeyEvent event);

  // The read cache (loop thread). Coherent once both the invalidation
  // subscription and CLIENT TRACKING on the command connection are
  // confirmed in this session; off again when either connection drops.
  void StartTracking();
  void OnTrackingStep(uint64_t session);
  void OnInvalidate(uint64_t session,
                    const std::vector<absl::string_view>& keys);
  // Tracking cannot work with this server (too old, or an ACL refuses
  // CLIENT): the read cache stays off; said once.
  void TrackingUnavailable(const absl::Status& why);

  RedisConnection& Connection(Via via) {
    return via == Via::kGrants && grants_ ? *grants_ : *commands_;
  }

  // Runs `script` on the master's connection (EVALSHA, then EVAL on
  // NOSCRIPT); in Sentinel mode a master that stopped being one (READONLY,
  // LOADING, MASTERDOWN) sends the store to the sentinels. The node passed
  // to `done` is "": there is one master.
  void RunScript(RedisScript script, std::vector<std::string> keys,
                 std::vector<std::string> args, ScriptDone done,
                 Via via) override;
  // Replica acknowledgement of grants (min_replica_acks > 0). `acked` runs
  // once min_replica_acks replicas hold every write sent so far on the
  // grants connection (OK), or with StoreUnavailable (too few within
  // replica_ack_timeout, or the session ended). WAIT acknowledges every
  // earlier write of its connection, so one WAIT is in flight at a time and
  // grants answered meanwhile share the next. Loop thread; `acked` may run
  // inline. `node` is ignored: there is one master.
  void AwaitReplicas(const std::string& node,
                     absl::AnyInvocable<void(absl::Status)> acked) override;
  void SendWait();
  void FailAckWaiters(const absl::Status& why);

  // The data node: the URI's, or (Sentinel mode) the latest discovery's.
  std::string host_;
  int port_ = 0;
  std::unique_ptr<SentinelClient> sentinel_;  // Sentinel mode only.
  bool discovering_ = false;

  // Loop thread only.
  State state_ = State::kIdle;
  uint64_t session_ = 0;
  std::unique_ptr<RedisConnection> commands_;
  std::unique_ptr<RedisConnection> subscriber_;
  std::unique_ptr<RedisConnection> grants_;  // Only with min_replica_acks > 0.
  std::vector<absl::AnyInvocable<void(absl::Status)>> ack_waiters_;
  bool wait_in_flight_ = false;
  int handshake_left_ = 0;
  absl::Time attempt_started_;
  absl::Time last_ping_;
  std::array<std::string, kRedisScriptCount> script_shas_;
  absl::flat_hash_map<std::string, Channel> channels_;
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::BitGen rng_;
  EventLoop::TimerId tick_timer_ = 0;
  EventLoop::TimerId reconnect_timer_ = 0;

  // Read cache tracking (loop thread); the cache is RedisBackedStore's.
  int64_t subscriber_id_ = 0;  // CLIENT ID of this session's subscriber.
  int tracking_steps_left_ = 0;
  bool tracking_refused_ = false;
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_STORE_H_
