// The fleet store on Redis Cluster (redis-cluster:// URIs): the same keys
// and scripts as RedisStore, routed by hash slot to the master that serves
// it. Every operation touches one cache item (or one namespace's breaker),
// whose keys share a hash tag, so each script runs in one slot on one node.
//
// Routing: the slot map comes from CLUSTER SLOTS (asked of the known
// masters, then the seed nodes, in turn), is refreshed periodically and
// after errors, and is patched by -MOVED. -ASK sends ASKING plus the command
// to the importing node without touching the map. -TRYAGAIN, -CLUSTERDOWN,
// -READONLY, -LOADING, -MASTERDOWN and a node that cannot be reached are
// retried with growing delays until command_timeout has passed since the
// operation began (none of them ran the command); a connection lost with
// commands on it fails those commands (they may have run).
//
// Per master: a command connection (pipelined), a grants connection when
// grants wait for replica acks (WAIT on the node that ran the grant), and a
// subscriber (RedisPushConnection) for the item channels of its slots
// (SSUBSCRIBE: a wake-up is SPUBLISHed to one shard only). A channel the
// server drops (its slot moved) is subscribed again where the slot went,
// and the key gets kWatching again (re-read). The breaker channel is plain
// pub/sub (broadcast by the cluster), subscribed on one node.
//
// Available (IsUp) while a slot map is known; unavailable when no node
// answers CLUSTER SLOTS.
//
// Read cache: CLIENT TRACKING on each master's command connection,
// redirected to that master's subscriber (SUBSCRIBE __redis__:invalidate).
// Coherent only while every master of the map tracks; a node dialled,
// dropped or refused turns it off (dropping everything) until all track
// again, and any slot that changes owner (MOVED, a new map) drops every
// entry: values read from the old owner are not tracked by the new one.
//
// Threading as RedisStore: loop thread, except Start, WaitUntilConnected,
// Shutdown and IsUp.
//
// Files: routing, discovery and nodes in redis_cluster_store.cc (the data
// operations are RedisBackedStore's, redis_backed_store.cc);
// pub/sub and the read cache in redis_cluster_pubsub.cc; the slot map and
// redirections (no I/O) in redis_cluster_slots.h.
#ifndef CORRAL_SERVER_STORE_REDIS_CLUSTER_STORE_H_
#define CORRAL_SERVER_STORE_REDIS_CLUSTER_STORE_H_

#include <array>
#include <atomic>
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
#include "server/store/redis_cluster_slots.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"

namespace corral {

class RedisClusterStore final : public RedisBackedStore {
 public:
  // Commands sent, per node name, for benchmarks and tests (any thread).
  struct Counters {
    std::atomic<uint64_t> commands{0};
    std::atomic<uint64_t> moved{0};
    std::atomic<uint64_t> ask{0};
    std::atomic<uint64_t> retries{0};
  };

  // `loop` must outlive the store. `options.cluster()` must hold.
  RedisClusterStore(EventLoop& loop, RedisOptions options);
  ~RedisClusterStore() override;
  RedisClusterStore(const RedisClusterStore&) = delete;
  RedisClusterStore& operator=(const RedisClusterStore&) = delete;

  void Start() override;

  // The data operations, WaitUntilConnected and Shutdown are
  // RedisBackedStore's.
  void Watch(const CacheKey& key) override;
  void Unwatch(const CacheKey& key) override;
  void Ping(StatusCallback done) override;

  const Counters& counters() const { return counters_; }

 private:
  enum class State { kIdle, kDiscovering, kUp, kShutdown };
  // Redirections one operation (or one SSUBSCRIBE) may follow before it
  // gives up: a map that keeps changing under it.
  static constexpr int kMaxRedirects = 5;

  struct Node {
    uint64_t id = 0;
    RedisAddress address;
    std::string name;
    std::unique_ptr<RedisConnection> commands;
    std::unique_ptr<RedisConnection> grants;  // min_replica_acks > 0 only.
    std::unique_ptr<RedisPushConnection> subscriber;
    std::vector<absl::AnyInvocable<void(absl::Status)>> ack_waiters;
    bool wait_in_flight = false;
    // Read cache: CLIENT TRACKING and the invalidation subscription are
    // both confirmed.
    int tracking_steps_left = 2;
  };

  // One watched key's channel.
  struct Channel {
    CacheKey key;
    int slot = 0;
    // The node the latest SSUBSCRIBE went to ("" none) and which one it was
    // (only its confirmation counts).
    std::string node;
    uint64_t attempt = 0;
    bool confirmed = false;
    int redirects = 0;  // -MOVED answers to SSUBSCRIBE in a row.
  };

  // One routed command.
  struct Request {
    int slot = 0;
    std::vector<std::string> argv;
    bool is_script = false;
    RedisScript script = RedisScript::kGet;
    Via via = Via::kCommands;
    absl::Time deadline;
    int redirects = 0;
    int retries = 0;
    // With the reply and the node that ran the command.
    ScriptDone done;
  };

  // Discovery (loop thread).
  void Discover();
  void AskSlots(std::shared_ptr<std::vector<RedisAddress>> candidates,
                size_t next, absl::Status last_error, uint64_t round);
  void TakeSlots(RedisSlotMap map);
  void DiscoveryFailed(absl::Status error);
  // A refresh soon (after errors), at most one at a time.
  void RefreshSoon();

  // Nodes (loop thread).
  Node* GetNode(const RedisAddress& address);
  Node* FindNode(absl::string_view name, uint64_t id);
  void DropNode(const std::string& name, const absl::Status& why);
  void OpenSubscriber(Node& node);
  void Authenticate(RedisConnection& conn);

  // Routing (loop thread).
  void Send(std::shared_ptr<Request> request,
            const RedisAddress* ask_to = nullptr);
  void OnReply(std::shared_ptr<Request> request, const std::string& node_name,
               std::optional<RedisAddress> asked,
               absl::StatusOr<RedisReply> reply);
  void Retry(std::shared_ptr<Request> request, absl::Status why);
  // Routes `script` by the hash slot of its first key (every key of one
  // operation shares a hash tag) and runs it there: EVALSHA, then EVAL on
  // NOSCRIPT (scripts are loaded per node).
  void RunScript(RedisScript script, std::vector<std::string> keys,
                 std::vector<std::string> args, ScriptDone done,
                 Via via) override;
  // Replica acks: WAIT on `node_name`'s grants connection.
  void AwaitReplicas(const std::string& node_name,
                     absl::AnyInvocable<void(absl::Status)> acked) override;
  void SendWait(Node& node);

  // Pub/sub (loop thread).
  void Subscribe(const std::string& name);
  void OnDropped(const std::string& node_name, absl::string_view channel);
  void OnMessage(absl::string_view channel, absl::string_view payload);
  void SubscribeBreaker();
  void PostEvent(std::string channel, KeyEvent event);

  // Read cache (loop thread).
  void StartTracking(Node& node);
  void OnTrackingStep(const std::string& node_name, uint64_t id,
                      const absl::StatusOr<RedisReply>& reply);
  void OnInvalidate(const std::vector<absl::string_view>& keys);
  void UpdateCoherence();
  // Some slot changed owner: values read from the old one are untracked.
  void SlotsMoved();

  void Tick();
  void ShutdownOnLoop() override;

  // Loop thread only.
  State state_ = State::kIdle;
  RedisSlotMap slots_;
  absl::flat_hash_map<std::string, std::unique_ptr<Node>> nodes_;
  uint64_t next_node_id_ = 0;
  // Nodes that could not be reached lately: not tried again before then.
  absl::flat_hash_map<std::string, absl::Time> unreachable_until_;
  absl::flat_hash_map<std::string, absl::Time> drop_logged_at_;
  std::array<std::string, kRedisScriptCount> script_shas_;
  absl::flat_hash_map<std::string, Channel> channels_;
  uint64_t next_attempt_ = 0;
  // Commands waiting for their retry, by timer.
  absl::flat_hash_map<EventLoop::TimerId, std::shared_ptr<Request>> retrying_;
  // Why AUTH failed (reported instead of the NOAUTH that follows).
  absl::Status auth_error_;
  // Some channel has no node: the tick subscribes it again.
  bool resubscribe_needed_ = false;
  std::string breaker_node_;  // Where the breaker channel is subscribed.
  bool discovering_ = false;
  uint64_t discovery_round_ = 0;
  bool refresh_pending_ = false;
  absl::Time last_refresh_;
  absl::Time last_ping_;
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::BitGen rng_;
  EventLoop::TimerId tick_timer_ = 0;
  EventLoop::TimerId discover_timer_ = 0;

  // Read cache tracking; the cache is RedisBackedStore's.
  bool coherent_ = false;
  bool tracking_refused_ = false;

  Counters counters_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_CLUSTER_STORE_H_
