#include "server/store/redis_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {
namespace {

bool IsStoreUnavailable(const absl::Status& status) {
  return ReasonOf(status) == kReasonStoreUnavailable;
}

// A connection's failure: whatever Redis said, the store is down.
absl::Status AsUnavailable(const absl::Status& status) {
  if (IsStoreUnavailable(status)) return status;
  return StoreUnavailable(status.message());
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// A handshake step's failure, worded for the operator. Transport failures
// stay as they are (retryable); Redis refusals are not retryable.
absl::Status HandshakeError(absl::string_view step, const absl::Status& error) {
  if (IsStoreUnavailable(error)) return error;
  const absl::string_view redis_message =
      absl::StripPrefix(error.message(), "Redis error: ");
  const std::string code = RedisErrorCode(error);
  if (error.code() == absl::StatusCode::kUnavailable) {  // LOADING, BUSY, ...
    return StoreUnavailable(absl::StrCat("Redis ", step, ": ", redis_message));
  }
  if (step == "AUTH") {
    return absl::PermissionDeniedError(
        absl::StrCat("Redis AUTH failed: ", redis_message));
  }
  if (code == "NOAUTH") {
    return absl::PermissionDeniedError(absl::StrCat(
        "Redis requires a password (put it in the URI): ", redis_message));
  }
  if (code == "NOPERM") {
    return absl::PermissionDeniedError(
        absl::StrCat("the Redis user may not run ", step, ": ", redis_message));
  }
  if (step == "SELECT") {  // The database number of the URI.
    return absl::InvalidArgumentError(
        absl::StrCat("Redis SELECT failed: ", redis_message));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("Redis ", step, " failed: ", redis_message));
}

// A channel no one subscribes to. Publishing to it checks the ACL channel
// permission up front: without it the scripts' PUBLISH would fail later,
// and SUBSCRIBE errors are invisible with hiredis 0.14.
constexpr absl::string_view kProbeChannel = "corral:{probe}:c";

}  // namespace

RedisStore::RedisStore(EventLoop& loop, RedisOptions options)
    : RedisBackedStore(loop, std::move(options)),
      host_(options_.host),
      port_(options_.port) {
  if (options_.sentinel()) {
    sentinel_ = std::make_unique<SentinelClient>(loop_, options_);
    down_reason_ = StoreUnavailable(
        absl::StrCat("not connected to the master ", options_.master_name));
  } else {
    down_reason_ =
        StoreUnavailable(absl::StrCat("not connected to ", host_, ":", port_));
  }
}

RedisStore::~RedisStore() {
  ShutdownOnLoop();
  alive_.reset();
}

void RedisStore::Start() {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired() || state_ != State::kIdle) return;
    if (sentinel_) {
      // The watch outlives sessions, so that a switch during a backoff
      // cuts the backoff short.
      sentinel_->Watch([this](const RedisAddress& master) {
        if (state_ == State::kUp && master.host == host_ &&
            master.port == port_)
          return;
        Rediscover(StoreUnavailable(absl::StrCat(
            "the sentinels switched the master ", options_.master_name, " to ",
            master.host, ":", master.port)));
      });
    }
    StartAttempt();
  });
}

void RedisStore::ShutdownOnLoop() {
  if (state_ == State::kShutdown) return;
  state_ = State::kShutdown;
  down_reason_ = StoreUnavailable("store shut down");
  if (tick_timer_ != 0) loop_.Cancel(std::exchange(tick_timer_, 0));
  if (reconnect_timer_ != 0) loop_.Cancel(std::exchange(reconnect_timer_, 0));
  if (sentinel_) sentinel_->Shutdown();
  // Not inside a hiredis callback here (those never call out to the owner of
  // the store), so the connections can go at once.
  CloseConnections(down_reason_, /*defer_destruction=*/false);
  channels_.clear();
  if (read_cache_) read_cache_->SetCoherent(false);
  MarkShutDown();
}

void RedisStore::StartAttempt() {
  reconnect_timer_ = 0;
  if (state_ == State::kShutdown) return;
  const uint64_t session = ++session_;
  state_ = State::kConnecting;
  attempt_started_ = absl::Now();
  handshake_left_ = 0;
  ScheduleTick();
  if (!sentinel_) {
    ConnectDataNode(session);
    return;
  }
  discovering_ = true;
  sentinel_->Discover([this, session](absl::StatusOr<RedisAddress> master) {
    if (session != session_ || state_ != State::kConnecting) return;
    discovering_ = false;
    if (!master.ok()) {
      Fail(session, master.status());
      return;
    }
    if (master->host != host_ || master->port != port_) {
      CORRAL_LOG(LogLevel::kInfo, "store_master_found",
                 "master=", options_.master_name, " address=", master->host,
                 ":", master->port);
    }
    host_ = master->host;
    port_ = master->port;
    attempt_started_ = absl::Now();
    ConnectDataNode(session);
  });
}

void RedisStore::ConnectDataNode(uint64_t session) {
  RedisConnection::Handlers command_handlers;
  command_handlers.on_down = [this, session](absl::Status s) {
    Fail(session, std::move(s));
  };
  auto commands = RedisConnection::Connect(loop_, host_, port_,
                                           std::move(command_handlers));
  if (!commands.ok()) {
    Fail(session, commands.status());
    return;
  }
  commands_ = *std::move(commands);

  RedisConnection::Handlers subscriber_handlers;
  subscriber_handlers.on_down = [this, session](absl::Status s) {
    Fail(session, std::move(s));
  };
  subscriber_handlers.on_subscribed = [this, session](absl::string_view ch) {
    OnSubscribed(session, ch);
  };
  subscriber_handlers.on_message = [this, session](absl::string_view ch,
                                                   absl::string_view payload) {
    OnMessage(session, ch, payload);
  };
  subscriber_handlers.on_invalidate =
      [this, session](const std::vector<absl::string_view>& keys) {
        OnInvalidate(session, keys);
      };
  auto subscriber = RedisConnection::Connect(loop_, host_, port_,
                                             std::move(subscriber_handlers));
  if (!subscriber.ok()) {
    Fail(session, subscriber.status());
    return;
  }
  subscriber_ = *std::move(subscriber);
  if (options_.min_replica_acks > 0) {
    RedisConnection::Handlers grant_handlers;
    grant_handlers.on_down = [this, session](absl::Status s) {
      Fail(session, std::move(s));
    };
    auto grants = RedisConnection::Connect(loop_, host_, port_,
                                           std::move(grant_handlers));
    if (!grants.ok()) {
      Fail(session, grants.status());
      return;
    }
    grants_ = *std::move(grants);
  }

  // The handshake is pipelined behind the TCP connect: one round trip.
  if (!options_.password.empty() || !options_.user.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.user.empty()) auth.push_back(options_.user);
    auth.push_back(options_.password);
    Handshake(*commands_, auth, "AUTH");
    if (grants_) Handshake(*grants_, auth, "AUTH");
    Handshake(*subscriber_, std::move(auth), "AUTH");
  }
  if (options_.db != 0) {
    Handshake(*commands_, {"SELECT", absl::StrCat(options_.db)}, "SELECT");
    if (grants_)
      Handshake(*grants_, {"SELECT", absl::StrCat(options_.db)}, "SELECT");
  }
  // Scripts are loaded server-wide, so EVALSHA works on this one too.
  if (grants_) Handshake(*grants_, {"PING"}, "PING");
  if (sentinel_) {
    // What a sentinel said may be stale: never take a replica for the master.
    Handshake(*commands_, {"ROLE"}, "ROLE",
              [this](absl::StatusOr<RedisReply> reply) {
                return RoleIsMaster(reply);
              });
  }
  Handshake(*commands_, {"PUBLISH", std::string(kProbeChannel), ""}, "PUBLISH");
  for (int i = 0; i < kRedisScriptCount; ++i) {
    Handshake(*commands_,
              {"SCRIPT", "LOAD",
               std::string(RedisScriptSource(static_cast<RedisScript>(i)))},
              "SCRIPT LOAD", [this, i](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return reply.status();
                if (reply->type != RedisReply::Type::kString) {
                  return absl::InternalError("SCRIPT LOAD answered no SHA");
                }
                script_shas_[i] = std::move(reply->str);
                return absl::OkStatus();
              });
  }
  // Also what makes hiredis 0.14 notice that the socket connected. Pub/sub
  // is database-independent, so the subscriber needs no SELECT.
  Handshake(*subscriber_, {"PING"}, "PING");
  subscriber_id_ = 0;
  if (read_cache_ && !tracking_refused_) {
    // May this user track? Then: where the invalidations will go. Neither
    // is fatal: without them the read cache stays off.
    Handshake(*commands_,
              {"EVAL", std::string(RedisTrackingProbeSource()), "0"},
              "tracking probe", [this](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok() && IsStoreUnavailable(reply.status()))
                  return reply.status();
                if (!reply.ok()) {
                  TrackingUnavailable(reply.status());
                } else if (reply->type != RedisReply::Type::kInteger ||
                           reply->integer != 1) {
                  TrackingUnavailable(absl::PermissionDeniedError(
                      "Redis is older than 7.0, or its ACL user lacks "
                      "&__redis__:invalidate, "
                      "+client|id or +client|tracking"));
                } else {
                  Handshake(*subscriber_, {"CLIENT", "ID"}, "CLIENT ID",
                            [this](absl::StatusOr<RedisReply> id) {
                              if (!id.ok()) return id.status();
                              if (id->type == RedisReply::Type::kInteger) {
                                subscriber_id_ = id->integer;
                              }
                              return absl::OkStatus();
                            });
                }
                return absl::OkStatus();
              });
  }
}

absl::Status RedisStore::RoleIsMaster(
    const absl::StatusOr<RedisReply>& reply) const {
  if (!reply.ok()) return reply.status();
  const std::string role =
      reply->type == RedisReply::Type::kArray && !reply->elements.empty()
          ? reply->elements[0].str
          : std::string("?");
  if (role == "master") return absl::OkStatus();
  // Retryable: the next attempt asks the sentinels again.
  return StoreUnavailable(absl::StrCat(host_, ":", port_, " is not the master ",
                                       options_.master_name, " (ROLE says ",
                                       role, ")"));
}

void RedisStore::CheckRole() {
  const uint64_t session = session_;
  commands_->Command(
      {"ROLE"}, [this, session](absl::StatusOr<RedisReply> reply) {
        if (session != session_ || state_ != State::kUp || !reply.ok()) return;
        if (absl::Status master = RoleIsMaster(reply); !master.ok())
          Rediscover(master);
      });
}

void RedisStore::Rediscover(absl::Status why) {
  if (!sentinel_ || state_ == State::kShutdown || state_ == State::kIdle)
    return;
  if (state_ == State::kUp || state_ == State::kConnecting)
    Fail(session_, std::move(why));
  if (state_ != State::kBackoff) return;
  // Sentinels moved the master: no reason to wait out a backoff.
  if (reconnect_timer_ != 0) loop_.Cancel(std::exchange(reconnect_timer_, 0));
  backoff_ = absl::ZeroDuration();
  reconnect_timer_ =
      loop_.RunAfter(absl::ZeroDuration(), [this] { StartAttempt(); });
}

void RedisStore::Handshake(RedisConnection& conn, std::vector<std::string> args,
                           absl::string_view step, HandshakeReply take) {
  ++handshake_left_;
  const uint64_t session = session_;
  conn.Command(
      args, [this, session, step = std::string(step),
             take = std::move(take)](absl::StatusOr<RedisReply> reply) mutable {
        if (session != session_ || state_ != State::kConnecting) return;
        absl::Status taken = take ? take(std::move(reply)) : reply.status();
        if (!taken.ok()) {
          Fail(session, HandshakeError(step, taken));
          return;
        }
        if (--handshake_left_ == 0) Connected();
      });
}

void RedisStore::Connected() {
  state_ = State::kUp;
  backoff_ = absl::ZeroDuration();
  last_ping_ = absl::Now();
  CORRAL_LOG(
      LogLevel::kInfo, "store_connected", "redis=", options_.Describe(),
      sentinel_ ? absl::StrCat(" master=", host_, ":", port_) : std::string());
  MarkConnected();
  // Events published while we were away are lost: every watched key is
  // subscribed again and gets kWatching (re-read) once confirmed.
  absl::erase_if(channels_, [](const auto& kv) { return !kv.second.watched; });
  for (auto& [name, channel] : channels_) {
    channel.subscribes_in_flight = 1;
    subscriber_->Subscribe(name);
  }
  // Breaker changes of every namespace, for as long as we are connected.
  subscriber_->Subscribe(std::string(kRedisBreakerChannel));
  StartTracking();
}

void RedisStore::Fail(uint64_t session, absl::Status error) {
  if (session != session_ ||
      (state_ != State::kConnecting && state_ != State::kUp)) {
    return;
  }
  const bool was_up = state_ == State::kUp;
  state_ = State::kBackoff;
  discovering_ = false;
  if (sentinel_) sentinel_->CancelDiscovery();
  MarkDisconnected(error);
  down_reason_ = AsUnavailable(error);
  if (tick_timer_ != 0) loop_.Cancel(std::exchange(tick_timer_, 0));
  // Invalidations may be lost from here until tracking is back.
  if (read_cache_) read_cache_->SetCoherent(false);
  // Possibly inside a callback of one of these connections: destroy later.
  CloseConnections(down_reason_, /*defer_destruction=*/true);
  for (auto& [channel, c] : channels_) c.subscribes_in_flight = 0;

  const absl::Duration delay = NextBackoff();
  CORRAL_LOG(LogLevel::kWarning, was_up ? "store_lost" : "store_connect_failed",
             "redis=", options_.Describe(),
             " retry_in=", absl::FormatDuration(delay), " error=\"",
             error.message(), "\"");
  if (was_up) PostAvailability(false);
  reconnect_timer_ = loop_.RunAfter(delay, [this] { StartAttempt(); });
}

void RedisStore::CloseConnections(const absl::Status& reason,
                                  bool defer_destruction) {
  FailAckWaiters(reason);
  if (commands_) commands_->Close(reason);
  if (subscriber_) subscriber_->Close(reason);
  if (grants_) grants_->Close(reason);
  if (defer_destruction) {
    loop_.Post([commands = std::move(commands_),
                subscriber = std::move(subscriber_),
                grants = std::move(grants_)]() mutable {});
  } else {
    commands_.reset();
    subscriber_.reset();
    grants_.reset();
  }
}

absl::Duration RedisStore::NextBackoff() {
  backoff_ = backoff_ == absl::ZeroDuration()
                 ? options_.reconnect_backoff_min
                 : std::min(backoff_ * 2, options_.reconnect_backoff_max);
  // Jitter, so that a fleet does not reconnect in lockstep.
  return backoff_ * absl::Uniform(rng_, 0.5, 1.0);
}

void RedisStore::ScheduleTick() {
  const absl::Duration shortest =
      std::min({options_.connect_timeout, options_.command_timeout,
                options_.ping_interval});
  const absl::Duration interval =
      std::clamp(shortest / 4, absl::Milliseconds(5), absl::Milliseconds(250));
  tick_timer_ = loop_.RunAfter(interval, [this] {
    tick_timer_ = 0;
    Tick();
  });
}

void RedisStore::Tick() {
  const absl::Time now = absl::Now();
  // Sentinels that do not answer in time are skipped by this.
  if (sentinel_) sentinel_->Tick(now);
  if (state_ == State::kConnecting) {
    if (!discovering_ && now - attempt_started_ > options_.connect_timeout) {
      Fail(session_,
           StoreUnavailable(absl::StrCat(
               "cannot connect to ", host_, ":", port_, ": no answer within ",
               absl::FormatDuration(options_.connect_timeout))));
      return;
    }
  } else if (state_ == State::kUp) {
    // hiredis 0.14 has no command timeout: a hung server is noticed here.
    absl::Duration stalled =
        std::max(commands_->StalledFor(now), subscriber_->StalledFor(now));
    // A WAIT may rightly hold the grants connection for its whole timeout.
    if (grants_) {
      stalled = std::max(
          stalled, grants_->StalledFor(now) - options_.replica_ack_timeout);
    }
    if (stalled > options_.command_timeout) {
      Fail(session_,
           StoreUnavailable(absl::StrCat(
               "Redis at ", host_, ":", port_, " did not answer within ",
               absl::FormatDuration(options_.command_timeout))));
      return;
    }
    // The subscriber is not pinged (a subscribed context cannot PING in
    // hiredis 0.14); a hung server shows on the command connection, a
    // closed one on both.
    if (now - last_ping_ >= options_.ping_interval) {
      last_ping_ = now;
      if (sentinel_) {
        CheckRole();  // Also notices a master that was turned into a replica.
      } else {
        commands_->Command({"PING"}, [](absl::StatusOr<RedisReply>) {});
      }
    }
  } else {
    return;
  }
  ScheduleTick();
}

void RedisStore::RunScript(RedisScript script, std::vector<std::string> keys,
                           std::vector<std::string> args, ScriptDone done,
                           Via via) {
  if (state_ != State::kUp) {
    done(DownStatus(), "");
    return;
  }
  const int index = static_cast<int>(script);
  // Shared: sent now, and kept for the EVAL fallback.
  auto argv = std::make_shared<std::vector<std::string>>();
  argv->reserve(3 + keys.size() + args.size());
  argv->push_back("EVALSHA");
  argv->push_back(script_shas_[index]);
  argv->push_back(absl::StrCat(keys.size()));
  for (std::string& k : keys) argv->push_back(std::move(k));
  for (std::string& a : args) argv->push_back(std::move(a));
  Connection(via).Command(*argv, [this, script, argv, via, session = session_,
                                  done = std::move(done)](
                                     absl::StatusOr<RedisReply> reply) mutable {
    if (!reply.ok() && sentinel_ && session == session_ &&
        state_ == State::kUp) {
      // This node stopped being a usable master (demoted, reloading, or cut
      // off from its replicas): the command was not run; find the master.
      const std::string code = RedisErrorCode(reply.status());
      if (code == "READONLY" || code == "LOADING" || code == "MASTERDOWN") {
        Rediscover(StoreUnavailable(absl::StrCat("Redis at ", host_, ":", port_,
                                                 " answered ",
                                                 reply.status().message())));
      }
    }
    // The script cache was flushed (SCRIPT FLUSH, a failover to a replica
    // that never saw SCRIPT LOAD): send the source once, and reload it for
    // the commands that follow.
    if (!reply.ok() && RedisErrorCode(reply.status()) == "NOSCRIPT" &&
        state_ == State::kUp) {
      const std::string source(RedisScriptSource(script));
      (*argv)[0] = "EVAL";
      (*argv)[1] = source;
      Connection(via).Command(
          *argv,
          [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
            done(std::move(reply), "");
          });
      Connection(via).Command({"SCRIPT", "LOAD", source},
                              [](absl::StatusOr<RedisReply>) {});
      return;
    }
    done(std::move(reply), "");
  });
}

void RedisStore::AwaitReplicas(const std::string& /*node*/,
                               absl::AnyInvocable<void(absl::Status)> acked) {
  if (state_ != State::kUp) {
    acked(DownStatus());
    return;
  }
  ack_waiters_.push_back(std::move(acked));
  if (!wait_in_flight_) SendWait();
}

void RedisStore::SendWait() {
  wait_in_flight_ = true;
  const uint64_t session = session_;
  const absl::Time sent_at = absl::Now();
  // Everyone waiting now: their writes all went out before this WAIT.
  auto batch =
      std::make_shared<std::vector<absl::AnyInvocable<void(absl::Status)>>>(
          std::exchange(ack_waiters_, {}));
  Connection(Via::kGrants)
      .Command(
          {"WAIT", absl::StrCat(options_.min_replica_acks),
           absl::StrCat(
               std::max<int64_t>(1, Millis(options_.replica_ack_timeout)))},
          [this, session, sent_at, batch](absl::StatusOr<RedisReply> reply) {
            const absl::Duration waited = absl::Now() - sent_at;
            absl::Status status;
            if (!reply.ok()) {
              status = CommandError(reply.status());
            } else if (reply->type != RedisReply::Type::kInteger ||
                       reply->integer < options_.min_replica_acks) {
              status = StoreUnavailable(absl::StrCat(
                  "only ", reply->integer, " of the ",
                  options_.min_replica_acks,
                  " replica acknowledgements required arrived (WAIT took ",
                  absl::FormatDuration(waited), ", limit ",
                  absl::FormatDuration(options_.replica_ack_timeout), ")"));
            }
            if (options_.on_replica_ack)
              options_.on_replica_ack(waited, status.ok());
            for (auto& acked : *batch) acked(status);
            if (session != session_)
              return;  // The session's end answered the rest.
            wait_in_flight_ = false;
            if (!ack_waiters_.empty() && state_ == State::kUp) SendWait();
          });
}

void RedisStore::FailAckWaiters(const absl::Status& why) {
  wait_in_flight_ = false;
  for (auto& acked : std::exchange(ack_waiters_, {})) acked(why);
}

void RedisStore::Ping(StatusCallback done) {
  auto answer = [this](StatusCallback done, absl::Status status) {
    loop_.Post([done = std::move(done), status = std::move(status)]() mutable {
      done(std::move(status));
    });
  };
  if (state_ != State::kUp) {
    answer(std::move(done), DownStatus());
    return;
  }
  commands_->Command({"PING"}, [this, answer, done = std::move(done)](
                                   absl::StatusOr<RedisReply> reply) mutable {
    answer(std::move(done),
           reply.ok() ? absl::OkStatus() : CommandError(reply.status()));
  });
}

void RedisStore::Watch(const CacheKey& key) {
  std::string name = RedisChannelFor(key);
  Channel& channel = channels_[name];
  if (channel.watched) return;  // The caller pairs Watch/Unwatch.
  channel.key = key;
  channel.watched = true;
  if (state_ == State::kUp) {
    ++channel.subscribes_in_flight;
    subscriber_->Subscribe(name);
  }
}

void RedisStore::Unwatch(const CacheKey& key) {
  const std::string name = RedisChannelFor(key);
  auto it = channels_.find(name);
  if (it == channels_.end() || !it->second.watched) return;
  it->second.watched = false;
  if (state_ == State::kUp) subscriber_->Unsubscribe(name);
  if (it->second.subscribes_in_flight == 0) channels_.erase(it);
}

void RedisStore::OnSubscribed(uint64_t session, absl::string_view name) {
  if (session != session_) return;
  if (name == kRedisInvalidateChannel) return OnTrackingStep(session);
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  Channel& channel = it->second;
  if (channel.subscribes_in_flight > 0) --channel.subscribes_in_flight;
  if (channel.subscribes_in_flight > 0) return;  // A later one is coming.
  if (!channel.watched) {
    channels_.erase(it);
    return;
  }
  PostEvent(std::string(name),
            KeyEvent{KeyEvent::Kind::kWatching, channel.key, std::nullopt});
}

void RedisStore::OnMessage(uint64_t session, absl::string_view name,
                           absl::string_view payload) {
  if (session != session_) return;
  if (name == kRedisBreakerChannel) return PostBreakerMessage(payload);
  auto it = channels_.find(name);
  if (it == channels_.end() || !it->second.watched) return;
  absl::StatusOr<KeyMessage> message = DecodeKeyMessage(payload);
  if (!message.ok()) {
    LOG_EVENT("store_bad_message", it->second.key, "error=\"",
              message.status().message(), "\"");
    return;
  }
  PostEvent(std::string(name),
            KeyEvent{message->kind, it->second.key, std::move(message->value)});
}

void RedisStore::StartTracking() {
  if (!read_cache_ || tracking_refused_ || subscriber_id_ == 0) return;
  const uint64_t session = session_;
  tracking_steps_left_ = 2;
  subscriber_->Subscribe(kRedisInvalidateChannel);
  // Default mode: Redis remembers the keys each read touched (the read
  // script's too) and sends one invalidation when any of them changes.
  commands_->Command(
      {"CLIENT", "TRACKING", "on", "REDIRECT", absl::StrCat(subscriber_id_)},
      [this, session](absl::StatusOr<RedisReply> reply) {
        if (session != session_ || state_ != State::kUp) return;
        if (!reply.ok()) {
          // A dropped connection ends the session anyway.
          if (!IsStoreUnavailable(reply.status()))
            TrackingUnavailable(reply.status());
          return;
        }
        OnTrackingStep(session);
      });
}

void RedisStore::OnTrackingStep(uint64_t session) {
  if (session != session_ || state_ != State::kUp || tracking_steps_left_ == 0)
    return;
  if (--tracking_steps_left_ > 0) return;
  read_cache_->SetCoherent(true);
  CORRAL_LOG(LogLevel::kInfo, "read_cache_on", "redis=", options_.Describe(),
             " max_bytes=", read_cache_->max_bytes(),
             read_cache_->max_bytes() == 0
                 ? " (tracking only, for the clients' near cache)"
                 : "");
}

void RedisStore::OnInvalidate(uint64_t session,
                              const std::vector<absl::string_view>& keys) {
  if (session != session_ || !read_cache_) return;
  if (keys.empty()) return read_cache_->InvalidateAll();
  for (absl::string_view name : keys) {
    // Lock, failure and breaker keys are tracked too; only values matter.
    if (std::optional<CacheKey> key = CacheKeyOfValueKey(name))
      read_cache_->Invalidate(*key);
  }
}

void RedisStore::TrackingUnavailable(const absl::Status& why) {
  if (tracking_refused_) return;
  tracking_refused_ = true;
  CORRAL_LOG(LogLevel::kWarning, "read_cache_off",
             "redis=", options_.Describe(), " error=\"", why.message(),
             "\" (the read cache and the clients' near cache are off: every "
             "hit reads Redis)");
}

void RedisStore::PostEvent(std::string channel, KeyEvent event) {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_),
              channel = std::move(channel), event = std::move(event)] {
    if (alive.expired() || listener_ == nullptr) return;
    // Unwatched since: the listener expects only events of keys it watches.
    auto it = channels_.find(channel);
    if (it == channels_.end() || !it->second.watched) return;
    listener_->OnKeyEvent(event);
  });
}

}  // namespace corral
