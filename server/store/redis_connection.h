// The one hiredis boundary (STYLE.md #4): one asynchronous Redis connection
// on the EventLoop. It owns the redisAsyncContext, attaches it to the loop's
// event_base, copies replies out of hiredis, and turns every hiredis error
// and error reply into an absl::Status here and nowhere else. Nothing outside
// this file sees a hiredis type.
//
// The same class serves the command connection (pipelined: commands are
// written back to back and answered in order) and the subscriber connection
// (SUBSCRIBE / UNSUBSCRIBE only, once its handshake is done: hiredis 0.14
// cannot match replies to other commands on a subscribed context).
//
// RedisPushConnection (below) is the subscriber of Redis Cluster mode:
// hiredis 0.14's async context aborts on sharded pub/sub replies
// (ssubscribe, smessage, sunsubscribe), so that connection is a libevent
// bufferevent read with hiredis' reply reader, and its replies are matched
// here.
//
// Threading: create, use and destroy on the loop thread (or after the loop
// has stopped). Callbacks run on the loop thread.
#ifndef CORRAL_SERVER_STORE_REDIS_CONNECTION_H_
#define CORRAL_SERVER_STORE_REDIS_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/event_loop.h"

struct redisAsyncContext;
struct redisReader;
struct bufferevent;

namespace corral {

// A reply, copied out of hiredis. Error replies never appear here: they
// arrive as a non-OK status (see RedisErrorCode).
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;                   // kString, kStatus
  std::vector<RedisReply> elements;  // kArray
};

// The Redis error code ("NOSCRIPT", "WRONGPASS", "ERR", ...) of a status made
// from an error reply; "" for any other status.
std::string RedisErrorCode(const absl::Status& status);

// Whether a failed command never reached the server: its connection never
// connected (refused, unreachable). Such a command may be sent elsewhere.
bool RedisCommandNotSent(const absl::Status& status);

// Where Redis sends a RESP2 client's tracking invalidations (CLIENT
// TRACKING ... REDIRECT <subscriber>).
inline constexpr absl::string_view kRedisInvalidateChannel =
    "__redis__:invalidate";

class RedisConnection {
 public:
  using ReplyCallback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>)>;

  struct Handlers {
    // hiredis dropped the connection by itself (connect failed, server
    // closed it, protocol error). Called once, posted to the loop, never
    // after Close(). Required.
    absl::AnyInvocable<void(absl::Status)> on_down;
    // Subscriber connections only. Run from inside hiredis' read handler;
    // they may call Close() but must not destroy the connection.
    absl::AnyInvocable<void(absl::string_view channel)> on_subscribed;
    absl::AnyInvocable<void(absl::string_view channel,
                            absl::string_view payload)>
        on_message;
    // Client-side caching: a message on kRedisInvalidateChannel names the
    // keys that changed; none means every key (FLUSHALL, FLUSHDB).
    absl::AnyInvocable<void(const std::vector<absl::string_view>& keys)>
        on_invalidate;
  };

  // Starts a non-blocking connect to host:port; commands may be issued at
  // once (hiredis buffers them until the socket is connected). Errors that
  // are known immediately come back as StoreUnavailable.
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Connect(
      EventLoop& loop, const std::string& host, int port, Handlers handlers);

  // Closes with a "closed" reason if still open.
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends one command; `args` are binary-safe (lengths, never formatting).
  // `done` runs exactly once on the loop thread: with the reply, an error
  // reply's status, or StoreUnavailable when the connection fails or is
  // closed first. Never inline from this call.
  void Command(const std::vector<std::string>& args, ReplyCallback done);

  // SUBSCRIBE / UNSUBSCRIBE one channel; confirmations and messages go to
  // the handlers. Ignored once the connection is closed.
  void Subscribe(absl::string_view channel);
  void Unsubscribe(absl::string_view channel);

  // Drops the connection: every unanswered command is answered with
  // `reason`, and no handler runs afterwards. Idempotent. Safe from inside
  // this connection's callbacks (hiredis then frees the context when the
  // callback returns); the object itself must outlive those callbacks, so
  // destroy it later (e.g. in a posted task), not from inside them.
  void Close(absl::Status reason);

  // How long commands (or subscription confirmations) have been waiting
  // with no reply at all arriving; zero when nothing is pending.
  absl::Duration StalledFor(absl::Time now) const;
  bool closed() const { return closing_ || ctx_ == nullptr; }
  const std::string& address() const { return address_; }

 private:
  struct Pending;
  struct ContextDeleter {
    void operator()(redisAsyncContext* ac) const;
  };

  RedisConnection(EventLoop& loop, std::string address, Handlers handlers);

  // hiredis callbacks (C linkage not needed: called through pointers).
  static void OnConnect(const redisAsyncContext* ac, int status);
  static void OnDisconnect(const redisAsyncContext* ac, int status);
  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnSubscriptionReply(redisAsyncContext* ac, void* reply,
                                  void* privdata);

  // The status for commands that will get no reply.
  absl::Status FailureStatus(const redisAsyncContext* ac) const;
  void PostDown(absl::Status status);
  void PostFailure(ReplyCallback done, absl::Status status);
  void SubscriptionCommand(const char* verb, absl::string_view channel);
  void Sent();
  void Answered();

  EventLoop& loop_;
  const std::string address_;  // "host:port", for messages
  Handlers handlers_;
  std::unique_ptr<redisAsyncContext, ContextDeleter> ctx_;
  bool connected_ = false;  // TCP connect completed
  bool closing_ = false;
  absl::Status close_reason_;
  size_t in_flight_ = 0;
  absl::Time progress_at_;
  // Posted tasks check it so they never touch a destroyed connection.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// A subscriber connection that speaks sharded pub/sub (Redis 7) as well as
// plain pub/sub, driven by hiredis' reply reader over a bufferevent.
//
// Every command expects exactly one reply, matched in order: AUTH, PING
// before subscribing; then SSUBSCRIBE or SUBSCRIBE with one channel each
// (answered by its confirmation or an error reply such as -MOVED), and
// Unsubscribe()'s SUNSUBSCRIBE (answered by its confirmation, or -MOVED
// when the channel's slot is elsewhere, both consumed here). Pushes are
// told apart by their kind: "message" and "smessage" go to on_message (or
// on_invalidate); an "sunsubscribe" that does not answer our own
// Unsubscribe() goes to on_dropped: the server dropped that shard channel
// by itself because its slot moved to another node.
class RedisPushConnection {
 public:
  using ReplyCallback = RedisConnection::ReplyCallback;

  struct Handlers {
    // The connection failed or was closed by the server. Posted, once,
    // never after Close(). Required.
    absl::AnyInvocable<void(absl::Status)> on_down;
    absl::AnyInvocable<void(absl::string_view channel,
                            absl::string_view payload)>
        on_message;
    // As RedisConnection::Handlers::on_invalidate.
    absl::AnyInvocable<void(const std::vector<absl::string_view>& keys)>
        on_invalidate;
    absl::AnyInvocable<void(absl::string_view channel)> on_dropped;
  };

  static absl::StatusOr<std::unique_ptr<RedisPushConnection>> Connect(
      EventLoop& loop, const std::string& host, int port, Handlers handlers);
  ~RedisPushConnection();
  RedisPushConnection(const RedisPushConnection&) = delete;
  RedisPushConnection& operator=(const RedisPushConnection&) = delete;

  // Sends a command that gets one reply (see above). `done` runs once, on
  // the loop thread, never inline: with the reply, an error reply's status,
  // or StoreUnavailable when the connection fails or is closed first.
  void Command(const std::vector<std::string>& args, ReplyCallback done);
  // SUNSUBSCRIBE `channel` (UNSUBSCRIBE when !sharded); its answer is
  // consumed here. Ignored once closed.
  void Unsubscribe(absl::string_view channel, bool sharded);
  // Unanswered commands are answered with `reason` (posted); no handler
  // runs afterwards. Idempotent; safe from inside the handlers (the object
  // must outlive them: destroy it later).
  void Close(absl::Status reason);

  absl::Duration StalledFor(absl::Time now) const;
  bool closed() const { return closing_; }
  const std::string& address() const { return address_; }

 private:
  RedisPushConnection(EventLoop& loop, std::string address, Handlers handlers);
  static void OnRead(bufferevent* bev, void* self);
  static void OnEvent(bufferevent* bev, short what, void* self);
  void Write(const std::vector<std::string>& args);
  // Reads every complete reply in the reader.
  void Drain();
  // A reply: an answer to the oldest command, or a push.
  void Dispatch(RedisReply reply, absl::Status error);
  void Down(absl::Status status);
  void Drop(absl::Status reason);
  void FailPending(const absl::Status& why);

  EventLoop& loop_;
  const std::string address_;
  Handlers handlers_;
  bufferevent* bev_ = nullptr;
  redisReader* reader_ = nullptr;
  bool connected_ = false;
  bool closing_ = false;
  bool closed_by_owner_ = false;
  struct Pending {
    ReplyCallback done;       // Commands.
    std::string unsubscribe;  // Unsubscribe(): the channel.
  };
  std::deque<Pending> pending_;  // Oldest first.
  absl::Time progress_at_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_CONNECTION_H_
