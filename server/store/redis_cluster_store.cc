#include "server/store/redis_cluster_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {
namespace {

// The first and the largest delay before a retried command.
constexpr absl::Duration kRetryDelayMin = absl::Milliseconds(10);
constexpr absl::Duration kRetryDelayMax = absl::Milliseconds(200);
// A node that could not be reached is not dialled again for this long.
constexpr absl::Duration kUnreachableFor = absl::Milliseconds(200);
// Refreshes after errors are at least this far apart.
constexpr absl::Duration kRefreshSpacing = absl::Milliseconds(100);

bool IsStoreUnavailable(const absl::Status& status) {
  return ReasonOf(status) == kReasonStoreUnavailable;
}

absl::Status AsUnavailable(const absl::Status& status) {
  if (IsStoreUnavailable(status)) return status;
  return StoreUnavailable(status.message());
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Errors after which the command did not run and may run elsewhere or
// later.
bool IsRetryable(absl::string_view code) {
  return code == "TRYAGAIN" || code == "CLUSTERDOWN" || code == "READONLY" ||
         code == "LOADING" || code == "MASTERDOWN";
}

}  // namespace

RedisClusterStore::RedisClusterStore(EventLoop& loop, RedisOptions options)
    : RedisBackedStore(loop, std::move(options)) {
  down_reason_ = StoreUnavailable(
      absl::StrCat("not connected to the Redis cluster ", options_.Describe()));
}

RedisClusterStore::~RedisClusterStore() {
  ShutdownOnLoop();
  alive_.reset();
}

void RedisClusterStore::Start() {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired() || state_ != State::kIdle) return;
    state_ = State::kDiscovering;
    Discover();
    Tick();
  });
}

void RedisClusterStore::ShutdownOnLoop() {
  if (state_ == State::kShutdown) return;
  state_ = State::kShutdown;
  down_reason_ = StoreUnavailable("store shut down");
  if (tick_timer_ != 0) loop_.Cancel(std::exchange(tick_timer_, 0));
  if (discover_timer_ != 0) loop_.Cancel(std::exchange(discover_timer_, 0));
  for (auto& [timer, request] : std::exchange(retrying_, {})) {
    loop_.Cancel(timer);
    request->done(down_reason_, "");
  }
  std::vector<std::string> names;
  for (const auto& [name, node] : nodes_) names.push_back(name);
  for (const std::string& name : names) DropNode(name, down_reason_);
  channels_.clear();
  if (read_cache_) read_cache_->SetCoherent(false);
  MarkShutDown();
}

// --- Discovery --------------------------------------------------------------

void RedisClusterStore::Discover() {
  if (state_ == State::kShutdown || discovering_) return;
  discovering_ = true;
  // Known masters first (they know about nodes that joined), then the
  // seeds.
  auto candidates = std::make_shared<std::vector<RedisAddress>>();
  auto add = [&candidates](const RedisAddress& a) {
    for (const RedisAddress& c : *candidates)
      if (c.host == a.host && c.port == a.port) return;
    candidates->push_back(a);
  };
  for (const RedisAddress& m : slots_.masters()) add(m);
  for (const RedisAddress& s : options_.cluster_nodes) add(s);
  AskSlots(candidates, 0,
           StoreUnavailable("no cluster node to ask for CLUSTER SLOTS"),
           ++discovery_round_);
}

void RedisClusterStore::AskSlots(
    std::shared_ptr<std::vector<RedisAddress>> candidates, size_t next,
    absl::Status last_error, uint64_t round) {
  if (round != discovery_round_ || state_ == State::kShutdown) return;
  if (next >= candidates->size()) {
    DiscoveryFailed(std::move(last_error));
    return;
  }
  const RedisAddress address = (*candidates)[next];
  // Past the unreachable mark: a discovery may dial anyone.
  unreachable_until_.erase(RedisNodeName(address));
  Node* node = GetNode(address);
  if (node == nullptr) {
    AskSlots(candidates, next + 1,
             StoreUnavailable(
                 absl::StrCat("cannot connect to ", RedisNodeName(address))),
             round);
    return;
  }
  node->commands->Command(
      {"CLUSTER", "SLOTS"}, [this, candidates, next, round, address](
                                absl::StatusOr<RedisReply> reply) mutable {
        if (round != discovery_round_ || state_ == State::kShutdown) return;
        const std::string name = RedisNodeName(address);
        if (!reply.ok()) {
          absl::Status error = reply.status();
          if (!auth_error_.ok()) {
            error = auth_error_;
          } else if (absl::StrContains(error.message(),
                                       "cluster support disabled")) {
            error = absl::InvalidArgumentError(
                absl::StrCat(name,
                             " is not a Redis Cluster node (use redis:// for a "
                             "standalone server): ",
                             error.message()));
          } else if (!IsStoreUnavailable(error) &&
                     error.code() != absl::StatusCode::kPermissionDenied) {
            error = StoreUnavailable(
                absl::StrCat("CLUSTER SLOTS on ", name, ": ", error.message()));
          }
          if (!IsStoreUnavailable(error)) {
            DiscoveryFailed(std::move(error));  // Asking others will not help.
            return;
          }
          AskSlots(candidates, next + 1, std::move(error), round);
          return;
        }
        absl::StatusOr<RedisSlotMap> map = RedisSlotMap::Parse(*reply, address);
        if (!map.ok()) {
          AskSlots(candidates, next + 1,
                   StoreUnavailable(
                       absl::StrCat(name, ": ", map.status().message())),
                   round);
          return;
        }
        TakeSlots(*std::move(map));
      });
}

void RedisClusterStore::TakeSlots(RedisSlotMap map) {
  discovering_ = false;
  last_refresh_ = absl::Now();
  const bool changed_masters = [&] {
    if (map.masters().size() != slots_.masters().size()) return true;
    for (size_t i = 0; i < map.masters().size(); ++i) {
      if (RedisNodeName(map.masters()[i]) != RedisNodeName(slots_.masters()[i]))
        return true;
    }
    return false;
  }();
  bool moved = false;
  for (int slot = 0; slot < kRedisClusterSlots && !moved; ++slot) {
    const RedisAddress* before = slots_.Owner(slot);
    const RedisAddress* after = map.Owner(slot);
    moved = (before == nullptr) != (after == nullptr) ||
            (before != nullptr &&
             (before->host != after->host || before->port != after->port));
  }
  slots_ = std::move(map);
  if (moved) SlotsMoved();
  if (changed_masters || state_ != State::kUp) {
    std::vector<std::string> names;
    for (const RedisAddress& m : slots_.masters())
      names.push_back(RedisNodeName(m));
    CORRAL_LOG(LogLevel::kInfo, "store_cluster_slots",
               "masters=", absl::StrJoin(names, ","),
               " slots_covered=", slots_.covered());
  }
  // Nodes that serve no slot (replicas we asked, demoted masters) go.
  std::vector<std::string> gone;
  for (const auto& [name, node] : nodes_) {
    if (slots_.SlotsOf(name).empty()) gone.push_back(name);
  }
  for (const std::string& name : gone) {
    DropNode(name, StoreUnavailable(absl::StrCat(
                       name, " serves no slot of the cluster any more")));
  }
  for (const std::string& sha : script_shas_) {
    if (sha.empty()) {
      DiscoveryFailed(
          absl::FailedPreconditionError("SCRIPT LOAD failed on the cluster"));
      return;
    }
  }
  if (state_ != State::kUp) {
    state_ = State::kUp;
    backoff_ = absl::ZeroDuration();
    last_ping_ = absl::Now();
    CORRAL_LOG(LogLevel::kInfo, "store_connected",
               "redis=", options_.Describe(),
               " masters=", slots_.masters().size());
    MarkConnected();
  }
  // Channels whose slot is now elsewhere (or that have no node) follow.
  for (auto& [name, channel] : channels_) {
    const RedisAddress* owner = slots_.Owner(channel.slot);
    if (channel.node.empty() ||
        (owner != nullptr && RedisNodeName(*owner) != channel.node)) {
      Subscribe(name);
    }
  }
  SubscribeBreaker();
  // Every master of the new map dialled, so that coherence can come back.
  if (read_cache_ && !tracking_refused_) {
    for (const RedisAddress& master : slots_.masters()) {
      if (!slots_.SlotsOf(RedisNodeName(master)).empty()) GetNode(master);
    }
  }
  UpdateCoherence();
}

void RedisClusterStore::DiscoveryFailed(absl::Status error) {
  discovering_ = false;
  const bool was_up = state_ == State::kUp;
  MarkDisconnected(error);
  if (was_up) {
    state_ = State::kDiscovering;
    PostAvailability(false);
    // Start clean when the cluster answers again: every channel is
    // subscribed again and its key re-read.
    std::vector<std::string> names;
    for (const auto& [name, node] : nodes_) names.push_back(name);
    for (const std::string& name : names) DropNode(name, AsUnavailable(error));
  }
  down_reason_ = AsUnavailable(error);
  backoff_ = backoff_ == absl::ZeroDuration()
                 ? options_.reconnect_backoff_min
                 : std::min(backoff_ * 2, options_.reconnect_backoff_max);
  const absl::Duration delay = backoff_ * absl::Uniform(rng_, 0.5, 1.0);
  CORRAL_LOG(LogLevel::kWarning, was_up ? "store_lost" : "store_connect_failed",
             "redis=", options_.Describe(),
             " retry_in=", absl::FormatDuration(delay), " error=\"",
             error.message(), "\"");
  if (discover_timer_ != 0) loop_.Cancel(discover_timer_);
  discover_timer_ = loop_.RunAfter(delay, [this] {
    discover_timer_ = 0;
    Discover();
  });
}

void RedisClusterStore::RefreshSoon() {
  // Until the store is up, discovery retries on its own timer.
  if (state_ != State::kUp || discovering_ || refresh_pending_) return;
  refresh_pending_ = true;
  const absl::Duration wait = std::max(
      absl::ZeroDuration(), last_refresh_ + kRefreshSpacing - absl::Now());
  loop_.RunAfter(wait, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    refresh_pending_ = false;
    Discover();
  });
}

// --- Nodes -------------------------------------------------------------------

void RedisClusterStore::Authenticate(RedisConnection& conn) {
  if (options_.password.empty() && options_.user.empty()) return;
  std::vector<std::string> auth = {"AUTH"};
  if (!options_.user.empty()) auth.push_back(options_.user);
  auth.push_back(options_.password);
  conn.Command(auth, [this, alive = std::weak_ptr<int>(alive_)](
                         absl::StatusOr<RedisReply> reply) {
    if (alive.expired() || reply.ok() || IsStoreUnavailable(reply.status()))
      return;
    auth_error_ = absl::PermissionDeniedError(
        absl::StrCat("Redis AUTH failed: ", reply.status().message()));
  });
}

RedisClusterStore::Node* RedisClusterStore::GetNode(
    const RedisAddress& address) {
  const std::string name = RedisNodeName(address);
  if (auto it = nodes_.find(name); it != nodes_.end()) return it->second.get();
  if (auto it = unreachable_until_.find(name); it != unreachable_until_.end()) {
    if (absl::Now() < it->second) return nullptr;
    unreachable_until_.erase(it);
  }
  auto node = std::make_unique<Node>();
  node->id = ++next_node_id_;
  node->address = address;
  node->name = name;
  const uint64_t id = node->id;
  auto on_down = [this, name, id](absl::Status why) {
    if (FindNode(name, id) == nullptr) return;
    DropNode(name, why);
  };
  RedisConnection::Handlers handlers;
  handlers.on_down = on_down;
  auto commands = RedisConnection::Connect(loop_, address.host, address.port,
                                           std::move(handlers));
  if (!commands.ok()) {
    unreachable_until_[name] = absl::Now() + kUnreachableFor;
    return nullptr;
  }
  node->commands = *std::move(commands);
  Authenticate(*node->commands);
  // Scripts are per node: load them here so that EVALSHA finds them; a node
  // that loses them (restart, failover) answers NOSCRIPT and gets them
  // again (see OnReply).
  for (int i = 0; i < kRedisScriptCount; ++i) {
    node->commands->Command(
        {"SCRIPT", "LOAD",
         std::string(RedisClusterScriptSource(static_cast<RedisScript>(i)))},
        [this, i,
         alive = std::weak_ptr<int>(alive_)](absl::StatusOr<RedisReply> reply) {
          if (alive.expired() || !reply.ok() ||
              reply->type != RedisReply::Type::kString)
            return;
          script_shas_[static_cast<size_t>(i)] = reply->str;
        });
  }
  if (options_.min_replica_acks > 0) {
    RedisConnection::Handlers grant_handlers;
    grant_handlers.on_down = on_down;
    auto grants = RedisConnection::Connect(loop_, address.host, address.port,
                                           std::move(grant_handlers));
    if (!grants.ok()) {
      unreachable_until_[name] = absl::Now() + kUnreachableFor;
      return nullptr;
    }
    node->grants = *std::move(grants);
    Authenticate(*node->grants);
  }
  Node* raw = node.get();
  nodes_[name] = std::move(node);
  OpenSubscriber(*raw);
  if (raw->subscriber == nullptr) return nullptr;
  StartTracking(*raw);
  return raw;
}

void RedisClusterStore::OpenSubscriber(Node& node) {
  const std::string name = node.name;
  const uint64_t id = node.id;
  RedisPushConnection::Handlers handlers;
  handlers.on_down = [this, name, id](absl::Status why) {
    if (FindNode(name, id) == nullptr) return;
    DropNode(name, why);
  };
  handlers.on_message = [this](absl::string_view channel,
                               absl::string_view payload) {
    OnMessage(channel, payload);
  };
  handlers.on_invalidate = [this](const std::vector<absl::string_view>& keys) {
    OnInvalidate(keys);
  };
  handlers.on_dropped = [this, name, id](absl::string_view channel) {
    if (FindNode(name, id) == nullptr) return;
    OnDropped(name, channel);
  };
  auto subscriber = RedisPushConnection::Connect(
      loop_, node.address.host, node.address.port, std::move(handlers));
  if (!subscriber.ok()) {
    DropNode(name, subscriber.status());
    return;
  }
  node.subscriber = *std::move(subscriber);
  if (!options_.password.empty() || !options_.user.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.user.empty()) auth.push_back(options_.user);
    auth.push_back(options_.password);
    node.subscriber->Command(auth, [](absl::StatusOr<RedisReply>) {});
  }
}

RedisClusterStore::Node* RedisClusterStore::FindNode(absl::string_view name,
                                                     uint64_t id) {
  auto it = nodes_.find(name);
  if (it == nodes_.end() || it->second->id != id) return nullptr;
  return it->second.get();
}

void RedisClusterStore::DropNode(const std::string& name,
                                 const absl::Status& why) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  std::unique_ptr<Node> node = std::move(it->second);
  nodes_.erase(it);
  if (state_ != State::kShutdown) {
    const absl::Time now = absl::Now();
    unreachable_until_[name] = now + kUnreachableFor;
    // Once a second per node: a dead node is dialled again every
    // kUnreachableFor while its slots still point at it.
    absl::Time& logged = drop_logged_at_[name];
    if (now - logged >= absl::Seconds(1)) {
      logged = now;
      CORRAL_LOG(LogLevel::kWarning, "store_node_dropped", "node=", name,
                 " error=\"", why.message(), "\"");
    }
  }
  for (auto& acked : std::exchange(node->ack_waiters, {})) acked(why);
  node->wait_in_flight = false;
  if (node->commands) node->commands->Close(why);
  if (node->grants) node->grants->Close(why);
  if (node->subscriber) node->subscriber->Close(why);
  // At shutdown no callback of ours is running; otherwise this may be
  // inside one of its connections' callbacks: destroy later.
  if (state_ == State::kShutdown) return;
  loop_.Post([node = std::move(node)]() mutable { node.reset(); });
  // Its channels are gone with it: subscribed again where their slots are
  // once the map is fresh.
  for (auto& [channel_name, channel] : channels_) {
    if (channel.node == name) {
      channel.node.clear();
      channel.confirmed = false;
      resubscribe_needed_ = true;
    }
  }
  if (breaker_node_ == name) breaker_node_.clear();
  UpdateCoherence();
  RefreshSoon();
}

// --- Routing
// -------------------------------------------------------------------

void RedisClusterStore::Send(std::shared_ptr<Request> request,
                             const RedisAddress* ask_to) {
  if (state_ != State::kUp) {
    request->done(DownStatus(), "");
    return;
  }
  RedisAddress target;
  if (ask_to != nullptr) {
    target = *ask_to;
  } else if (const RedisAddress* owner = slots_.Owner(request->slot)) {
    target = *owner;
  } else {
    RefreshSoon();
    Retry(std::move(request),
          StoreUnavailable(absl::StrCat("no master serves slot ", request->slot,
                                        " of the cluster")));
    return;
  }
  Node* node = GetNode(target);
  if (node == nullptr) {
    RefreshSoon();
    Retry(std::move(request), StoreUnavailable(absl::StrCat(
                                  "cannot reach ", RedisNodeName(target),
                                  ", the master of slot ", request->slot)));
    return;
  }
  RedisConnection& conn = request->via == Via::kGrants && node->grants
                              ? *node->grants
                              : *node->commands;
  std::optional<RedisAddress> asked;
  if (ask_to != nullptr) {
    asked = *ask_to;
    conn.Command({"ASKING"}, [](absl::StatusOr<RedisReply>) {});
  }
  counters_.commands.fetch_add(1, std::memory_order_relaxed);
  const std::string name = node->name;
  // Copied: the request may be sent again (EVAL after NOSCRIPT).
  conn.Command(request->argv, [this, request, name, asked](
                                  absl::StatusOr<RedisReply> reply) mutable {
    OnReply(std::move(request), name, std::move(asked), std::move(reply));
  });
}

void RedisClusterStore::OnReply(std::shared_ptr<Request> request,
                                const std::string& node_name,
                                std::optional<RedisAddress> asked,
                                absl::StatusOr<RedisReply> reply) {
  if (reply.ok() || state_ == State::kShutdown) {
    request->done(std::move(reply), node_name);
    return;
  }
  const absl::Status& error = reply.status();
  if (RedisCommandNotSent(error)) {
    // The node could not be dialled (a master that died, not yet replaced
    // in the map): the command never left, so it may go where the fresh
    // map says.
    RefreshSoon();
    Retry(std::move(request), error);
    return;
  }
  if (std::optional<RedisRedirect> redirect = ParseRedirect(error)) {
    if (redirect->to.host.empty()) {
      // "MOVED 3999 :6381": the node does not know its own address; it is
      // the host we asked.
      redirect->to.host = node_name.substr(0, node_name.rfind(':'));
    }
    if (++request->redirects > kMaxRedirects) {
      request->done(
          StoreUnavailable(absl::StrCat("too many redirections for slot ",
                                        request->slot, ": ", error.message())),
          node_name);
      return;
    }
    if (redirect->ask) {
      counters_.ask.fetch_add(1, std::memory_order_relaxed);
      Send(std::move(request), &redirect->to);
      return;
    }
    counters_.moved.fetch_add(1, std::memory_order_relaxed);
    slots_.Assign(redirect->slot, redirect->to);
    SlotsMoved();
    RefreshSoon();
    Send(std::move(request));
    return;
  }
  const std::string code = RedisErrorCode(error);
  if (code == "NOSCRIPT" && request->is_script &&
      request->argv[0] == "EVALSHA") {
    // This node lost (or never had) the script: send the source once, and
    // load it there for the commands that follow.
    const std::string source(RedisClusterScriptSource(request->script));
    request->argv[0] = "EVAL";
    request->argv[1] = source;
    if (auto it = nodes_.find(node_name); it != nodes_.end()) {
      it->second->commands->Command({"SCRIPT", "LOAD", source},
                                    [](absl::StatusOr<RedisReply>) {});
    }
    Send(std::move(request), asked ? &*asked : nullptr);
    return;
  }
  if (IsRetryable(code)) {
    if (code != "TRYAGAIN") RefreshSoon();
    Retry(std::move(request), error);
    return;
  }
  request->done(std::move(reply), node_name);
}

void RedisClusterStore::Retry(std::shared_ptr<Request> request,
                              absl::Status why) {
  if (absl::Now() >= request->deadline || state_ != State::kUp) {
    request->done(AsUnavailable(why), "");
    return;
  }
  counters_.retries.fetch_add(1, std::memory_order_relaxed);
  // -ASK then -TRYAGAIN (a multi-key script on a slot being migrated)
  // repeats until the slot is moved: the deadline bounds it, not the
  // redirection count.
  request->redirects = 0;
  const absl::Duration delay = std::min(
      kRetryDelayMax, kRetryDelayMin * (1 << std::min(request->retries, 8)));
  ++request->retries;
  auto timer = std::make_shared<EventLoop::TimerId>(0);
  *timer = loop_.RunAfter(delay, [this, timer] {
    auto it = retrying_.find(*timer);
    if (it == retrying_.end()) return;
    std::shared_ptr<Request> request = std::move(it->second);
    retrying_.erase(it);
    Send(std::move(request));
  });
  retrying_[*timer] = std::move(request);
}

void RedisClusterStore::RunScript(RedisScript script,
                                  std::vector<std::string> keys,
                                  std::vector<std::string> args,
                                  ScriptDone done, Via via) {
  auto request = std::make_shared<Request>();
  // Every key of one operation shares a hash tag: one slot.
  request->slot = RedisHashSlot(keys.front());
  request->is_script = true;
  request->script = script;
  request->via = via;
  request->deadline = absl::Now() + options_.command_timeout;
  request->done = std::move(done);
  request->argv.reserve(3 + keys.size() + args.size());
  request->argv.push_back("EVALSHA");
  request->argv.push_back(script_shas_[static_cast<size_t>(script)]);
  request->argv.push_back(absl::StrCat(keys.size()));
  for (std::string& k : keys) request->argv.push_back(std::move(k));
  for (std::string& a : args) request->argv.push_back(std::move(a));
  Send(std::move(request));
}

// --- Replica acknowledgements
// -------------------------------------------------

void RedisClusterStore::AwaitReplicas(
    const std::string& node_name,
    absl::AnyInvocable<void(absl::Status)> acked) {
  auto it = nodes_.find(node_name);
  if (state_ != State::kUp || it == nodes_.end() || !it->second->grants) {
    acked(StoreUnavailable(
        absl::StrCat("connection to ", node_name, " lost before WAIT")));
    return;
  }
  Node& node = *it->second;
  node.ack_waiters.push_back(std::move(acked));
  if (!node.wait_in_flight) SendWait(node);
}

void RedisClusterStore::SendWait(Node& node) {
  node.wait_in_flight = true;
  const std::string name = node.name;
  const uint64_t id = node.id;
  const absl::Time sent_at = absl::Now();
  auto batch =
      std::make_shared<std::vector<absl::AnyInvocable<void(absl::Status)>>>(
          std::exchange(node.ack_waiters, {}));
  node.grants->Command(
      {"WAIT", absl::StrCat(options_.min_replica_acks),
       absl::StrCat(
           std::max<int64_t>(1, Millis(options_.replica_ack_timeout)))},
      [this, name, id, sent_at, batch](absl::StatusOr<RedisReply> reply) {
        const absl::Duration waited = absl::Now() - sent_at;
        absl::Status status;
        if (!reply.ok()) {
          status = AsUnavailable(reply.status());
        } else if (reply->type != RedisReply::Type::kInteger ||
                   reply->integer < options_.min_replica_acks) {
          status = StoreUnavailable(absl::StrCat(
              "only ", reply->integer, " of the ", options_.min_replica_acks,
              " replica acknowledgements required arrived from ", name,
              " (WAIT took ", absl::FormatDuration(waited), ", limit ",
              absl::FormatDuration(options_.replica_ack_timeout), ")"));
        }
        if (options_.on_replica_ack)
          options_.on_replica_ack(waited, status.ok());
        for (auto& acked : *batch) acked(status);
        Node* node = FindNode(name, id);
        if (node == nullptr) return;  // Its drop answered the rest.
        node->wait_in_flight = false;
        if (!node->ack_waiters.empty() && state_ == State::kUp) SendWait(*node);
      });
}

// --- Ping (the data operations are RedisBackedStore's)
// ------------------------------------------------------------------

void RedisClusterStore::Ping(StatusCallback done) {
  auto answer = [this](StatusCallback done, absl::Status status) {
    loop_.Post([done = std::move(done), status = std::move(status)]() mutable {
      done(std::move(status));
    });
  };
  if (state_ != State::kUp) {
    answer(std::move(done), DownStatus());
    return;
  }
  // Every master: a shard that does not answer is part of the keyspace
  // that cannot be served.
  struct Round {
    size_t left = 0;
    absl::Status first_error;
    StatusCallback done;
  };
  auto round = std::make_shared<Round>();
  round->done = std::move(done);
  std::vector<Node*> targets;
  for (const RedisAddress& master : slots_.masters()) {
    if (slots_.SlotsOf(RedisNodeName(master)).empty()) continue;
    Node* node = GetNode(master);
    if (node == nullptr) {
      if (round->first_error.ok())
        round->first_error = StoreUnavailable(
            absl::StrCat("cannot reach ", RedisNodeName(master)));
      continue;
    }
    targets.push_back(node);
  }
  round->left = targets.size();
  if (targets.empty()) {
    answer(std::move(round->done), round->first_error);
    return;
  }
  for (Node* node : targets) {
    node->commands->Command(
        {"PING"}, [round, answer](absl::StatusOr<RedisReply> reply) mutable {
          if (!reply.ok() && round->first_error.ok())
            round->first_error = AsUnavailable(reply.status());
          if (--round->left == 0)
            answer(std::move(round->done), round->first_error);
        });
  }
}

// --- Keep-alive
// ---------------------------------------------------------------

void RedisClusterStore::Tick() {
  tick_timer_ = 0;
  if (state_ == State::kShutdown) return;
  const absl::Time now = absl::Now();
  // hiredis 0.14 has no command timeout: hung nodes are noticed here.
  std::vector<std::string> hung;
  for (const auto& [name, node] : nodes_) {
    absl::Duration stalled = node->commands->StalledFor(now);
    if (node->subscriber)
      stalled = std::max(stalled, node->subscriber->StalledFor(now));
    if (node->grants) {
      stalled = std::max(stalled, node->grants->StalledFor(now) -
                                      options_.replica_ack_timeout);
    }
    if (stalled > options_.command_timeout) hung.push_back(name);
  }
  for (const std::string& name : hung) {
    DropNode(name, StoreUnavailable(absl::StrCat(
                       "Redis at ", name, " did not answer within ",
                       absl::FormatDuration(options_.command_timeout))));
  }
  if (state_ == State::kUp) {
    if (now - last_ping_ >= options_.ping_interval) {
      last_ping_ = now;
      for (const auto& [name, node] : nodes_)
        node->commands->Command({"PING"}, [](absl::StatusOr<RedisReply>) {});
    }
    // Periodically, so that nodes that joined and slots that moved without
    // our noticing are found.
    if (now - last_refresh_ >= 5 * options_.ping_interval) {
      last_refresh_ = now;
      Discover();
    }
    if (resubscribe_needed_) {
      resubscribe_needed_ = false;
      std::vector<std::string> orphans;
      for (const auto& [name, channel] : channels_)
        if (channel.node.empty()) orphans.push_back(name);
      for (const std::string& name : orphans) Subscribe(name);
    }
  }
  const absl::Duration shortest =
      std::min({options_.connect_timeout, options_.command_timeout,
                options_.ping_interval});
  const absl::Duration interval =
      std::clamp(shortest / 4, absl::Milliseconds(5), absl::Milliseconds(250));
  tick_timer_ = loop_.RunAfter(interval, [this] { Tick(); });
}

}  // namespace corral
