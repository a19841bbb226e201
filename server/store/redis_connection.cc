#include "server/store/redis_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "server/core/errors.h"

namespace corral {
namespace {

constexpr absl::string_view kRedisErrorPayload = "corral.dev/redis-error";
constexpr absl::string_view kNotSentPayload = "corral.dev/redis-not-sent";

absl::Status NotSent(absl::Status status) {
  status.SetPayload(kNotSentPayload, absl::Cord("1"));
  return status;
}

// Error replies: the code is the first word ("WRONGPASS invalid ...").
absl::Status ErrorReplyStatus(absl::string_view message) {
  const absl::string_view code = message.substr(0, message.find(' '));
  absl::StatusCode status_code = absl::StatusCode::kInternal;
  if (code == "NOSCRIPT") {
    status_code = absl::StatusCode::kFailedPrecondition;
  } else if (code == "WRONGPASS" || code == "NOAUTH" || code == "NOPERM") {
    status_code = absl::StatusCode::kPermissionDenied;
  } else if (code == "LOADING" || code == "BUSY" || code == "MASTERDOWN" ||
             code == "TRYAGAIN" || code == "CLUSTERDOWN" ||
             code == "READONLY") {
    // The server is there but cannot serve right now.
    status_code = absl::StatusCode::kUnavailable;
  }
  absl::Status status(status_code, absl::StrCat("Redis error: ", message));
  status.SetPayload(kRedisErrorPayload, absl::Cord(code));
  return status;
}

absl::StatusOr<RedisReply> CopyReply(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_ERROR:
      return ErrorReplyStatus(absl::string_view(r.str, r.len));
    case REDIS_REPLY_NIL:
      out.type = RedisReply::Type::kNil;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.type = r.type == REDIS_REPLY_STRING ? RedisReply::Type::kString
                                              : RedisReply::Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        absl::StatusOr<RedisReply> element = CopyReply(*r.element[i]);
        if (!element.ok()) return element.status();
        out.elements.push_back(*std::move(element));
      }
      break;
    default:
      return StoreUnavailable(
          absl::StrCat("unexpected Redis reply type ", r.type));
  }
  return out;
}

bool IsString(const redisReply* r) {
  return r != nullptr &&
         (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

absl::string_view View(const redisReply* r) {
  return absl::string_view(r->str, r->len);
}

}  // namespace

bool RedisCommandNotSent(const absl::Status& status) {
  return status.GetPayload(kNotSentPayload).has_value();
}

std::string RedisErrorCode(const absl::Status& status) {
  auto payload = status.GetPayload(kRedisErrorPayload);
  return payload ? std::string(*payload) : std::string();
}

// privdata of one command: who to answer.
struct RedisConnection::Pending {
  RedisConnection* conn;
  ReplyCallback done;
};

void RedisConnection::ContextDeleter::operator()(redisAsyncContext* ac) const {
  // Answers every pending callback with a NULL reply (see OnReply) and
  // detaches from libevent. Deferred by hiredis when called from inside one
  // of this context's callbacks.
  redisAsyncFree(ac);
}

RedisConnection::RedisConnection(EventLoop& loop, std::string address,
                                 Handlers handlers)
    : loop_(loop),
      address_(std::move(address)),
      handlers_(std::move(handlers)) {}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    EventLoop& loop, const std::string& host, int port, Handlers handlers) {
  std::string address = absl::StrCat(host, ":", port);
  redisAsyncContext* ac = redisAsyncConnect(host.c_str(), port);
  if (ac == nullptr) {
    return StoreUnavailable(
        absl::StrCat("cannot connect to ", address, ": out of memory"));
  }
  if (ac->err != 0) {
    absl::Status status = StoreUnavailable(
        absl::StrCat("cannot connect to ", address, ": ", ac->errstr));
    redisAsyncFree(ac);
    return status;
  }
  std::unique_ptr<RedisConnection> conn(
      new RedisConnection(loop, std::move(address), std::move(handlers)));
  ac->data = conn.get();
  conn->ctx_.reset(ac);
  if (redisLibeventAttach(ac, loop.base()) != REDIS_OK) {
    return StoreUnavailable("cannot attach the Redis connection to libevent");
  }
  redisAsyncSetConnectCallback(ac, &RedisConnection::OnConnect);
  redisAsyncSetDisconnectCallback(ac, &RedisConnection::OnDisconnect);
  return conn;
}

RedisConnection::~RedisConnection() {
  Close(StoreUnavailable(absl::StrCat("connection to ", address_, " closed")));
}

void RedisConnection::Close(absl::Status reason) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = std::move(reason);
  // reset() clears ctx_ before the deleter runs, so the callbacks the free
  // triggers see a closed connection.
  ctx_.reset();
}

absl::Status RedisConnection::FailureStatus(const redisAsyncContext* ac) const {
  if (closing_) return close_reason_;
  const char* err = ac != nullptr && ac->c.err != 0 ? ac->c.errstr : "closed";
  if (!connected_) {
    return NotSent(StoreUnavailable(
        absl::StrCat("cannot connect to ", address_, ": ", err)));
  }
  return StoreUnavailable(
      absl::StrCat("connection to ", address_, " lost: ", err));
}

void RedisConnection::OnConnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (status == REDIS_OK) {
    self->connected_ = true;
    return;
  }
  // hiredis frees the context as soon as this returns (after answering the
  // pending commands with NULL replies); it is no longer ours to free.
  (void)self->ctx_.release();
  if (!self->closing_) self->PostDown(self->FailureStatus(ac));
}

void RedisConnection::OnDisconnect(const redisAsyncContext* ac, int) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  // hiredis frees the context after this returns. After our own Close()
  // ctx_ is already empty and closing_ set.
  (void)self->ctx_.release();
  if (!self->closing_) self->PostDown(self->FailureStatus(ac));
}

void RedisConnection::OnReply(redisAsyncContext* ac, void* reply,
                              void* privdata) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
  RedisConnection* self = pending->conn;
  self->Answered();
  if (reply == nullptr) {
    // The context is being freed: by us (Close) or by hiredis (an error).
    pending->done(self->FailureStatus(ac));
    return;
  }
  pending->done(CopyReply(*static_cast<redisReply*>(reply)));
}

void RedisConnection::OnSubscriptionReply(redisAsyncContext*, void* reply,
                                          void* privdata) {
  auto* self = static_cast<RedisConnection*>(privdata);
  // NULL: the context is being freed; each channel's callback runs once.
  if (reply == nullptr || self->closing_) return;
  const auto* r = static_cast<const redisReply*>(reply);
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
      !IsString(r->element[0]) || !IsString(r->element[1])) {
    return;
  }
  const absl::string_view kind = View(r->element[0]);
  const absl::string_view channel = View(r->element[1]);
  if (kind == "message") {
    self->progress_at_ = absl::Now();
    if (channel == kRedisInvalidateChannel) {
      // An array of key names, or nil for "everything". Anything we do
      // not understand also counts as everything.
      std::vector<absl::string_view> keys;
      const redisReply* payload = r->element[2];
      if (payload->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < payload->elements; ++i) {
          if (!IsString(payload->element[i])) {
            keys.clear();
            break;
          }
          keys.push_back(View(payload->element[i]));
        }
      }
      if (self->handlers_.on_invalidate) self->handlers_.on_invalidate(keys);
      return;
    }
    if (IsString(r->element[2]) && self->handlers_.on_message) {
      self->handlers_.on_message(channel, View(r->element[2]));
    }
  } else if (kind == "subscribe") {
    self->Answered();
    if (self->handlers_.on_subscribed) self->handlers_.on_subscribed(channel);
  } else if (kind == "unsubscribe") {
    self->Answered();
  }
}

void RedisConnection::Command(const std::vector<std::string>& args,
                              ReplyCallback done) {
  if (closed()) {
    PostFailure(std::move(done), FailureStatus(nullptr));
    return;
  }
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* pending = new Pending{this, std::move(done)};
  // hiredis copies the arguments into its output buffer.
  if (redisAsyncCommandArgv(ctx_.get(), &RedisConnection::OnReply, pending,
                            static_cast<int>(argv.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    std::unique_ptr<Pending> owned(pending);
    PostFailure(std::move(owned->done),
                StoreUnavailable(absl::StrCat("connection to ", address_,
                                              " is disconnecting")));
    return;
  }
  Sent();
}

void RedisConnection::Subscribe(absl::string_view channel) {
  SubscriptionCommand("SUBSCRIBE", channel);
}

void RedisConnection::Unsubscribe(absl::string_view channel) {
  SubscriptionCommand("UNSUBSCRIBE", channel);
}

void RedisConnection::SubscriptionCommand(const char* verb,
                                          absl::string_view channel) {
  if (closed()) return;
  const char* argv[2] = {verb, channel.data()};
  const size_t lengths[2] = {absl::string_view(verb).size(), channel.size()};
  // privdata is the connection itself: hiredis keeps one callback per
  // channel and replaces it on a repeated SUBSCRIBE, so nothing is owned.
  // hiredis refuses UNSUBSCRIBE on a context with no subscription; there is
  // then nothing to undo.
  if (redisAsyncCommandArgv(ctx_.get(), &RedisConnection::OnSubscriptionReply,
                            this, 2, argv, lengths) == REDIS_OK) {
    Sent();
  }
}

void RedisConnection::Sent() {
  if (in_flight_++ == 0) progress_at_ = absl::Now();
}

void RedisConnection::Answered() {
  if (in_flight_ > 0) --in_flight_;
  progress_at_ = absl::Now();
}

absl::Duration RedisConnection::StalledFor(absl::Time now) const {
  if (in_flight_ == 0) return absl::ZeroDuration();
  return now - progress_at_;
}

void RedisConnection::PostDown(absl::Status status) {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_),
              status = std::move(status)]() mutable {
    if (alive.expired() || closing_) return;
    closing_ = true;  // Down is final: no handler runs after this one.
    close_reason_ = status;
    if (handlers_.on_down) handlers_.on_down(std::move(status));
  });
}

void RedisConnection::PostFailure(ReplyCallback done, absl::Status status) {
  loop_.Post([done = std::move(done), status = std::move(status)]() mutable {
    done(std::move(status));
  });
}

RedisPushConnection::RedisPushConnection(EventLoop& loop, std::string address,
                                         Handlers handlers)
    : loop_(loop),
      address_(std::move(address)),
      handlers_(std::move(handlers)) {}

absl::StatusOr<std::unique_ptr<RedisPushConnection>>
RedisPushConnection::Connect(EventLoop& loop, const std::string& host, int port,
                             Handlers handlers) {
  std::unique_ptr<RedisPushConnection> conn(new RedisPushConnection(
      loop, absl::StrCat(host, ":", port), std::move(handlers)));
  conn->reader_ = redisReaderCreate();
  if (conn->reader_ == nullptr) {
    return StoreUnavailable(
        absl::StrCat("cannot connect to ", conn->address_, ": out of memory"));
  }
  conn->bev_ = bufferevent_socket_new(
      loop.base(), -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (conn->bev_ == nullptr) {
    return StoreUnavailable(
        absl::StrCat("cannot connect to ", conn->address_, ": no socket"));
  }
  bufferevent_setcb(conn->bev_, &RedisPushConnection::OnRead, nullptr,
                    &RedisPushConnection::OnEvent, conn.get());
  bufferevent_enable(conn->bev_, EV_READ | EV_WRITE);
  // Hosts are addresses from the URI or CLUSTER SLOTS (no DNS base: a
  // name would be resolved blocking, once per connect).
  if (bufferevent_socket_connect_hostname(conn->bev_, nullptr, AF_UNSPEC,
                                          host.c_str(), port) != 0) {
    return StoreUnavailable(absl::StrCat("cannot connect to ", conn->address_));
  }
  return conn;
}

RedisPushConnection::~RedisPushConnection() {
  Close(StoreUnavailable(absl::StrCat("connection to ", address_, " closed")));
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void RedisPushConnection::Close(absl::Status reason) {
  closed_by_owner_ = true;
  Drop(std::move(reason));
}

void RedisPushConnection::Drop(absl::Status reason) {
  if (closing_) return;
  closing_ = true;
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
  FailPending(reason);
}

void RedisPushConnection::FailPending(const absl::Status& why) {
  for (Pending& pending : std::exchange(pending_, {})) {
    if (!pending.done) continue;
    loop_.Post([done = std::move(pending.done), why]() mutable { done(why); });
  }
}

void RedisPushConnection::Write(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* command = nullptr;
  const int len = redisFormatCommandArgv(
      &command, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (len > 0 && command != nullptr) {
    bufferevent_write(bev_, command, static_cast<size_t>(len));
  }
  free(command);
}

void RedisPushConnection::Command(const std::vector<std::string>& args,
                                  ReplyCallback done) {
  if (closing_) {
    loop_.Post([done = std::move(done),
                status = StoreUnavailable(absl::StrCat(
                    "connection to ", address_, " closed"))]() mutable {
      done(std::move(status));
    });
    return;
  }
  if (pending_.empty()) progress_at_ = absl::Now();
  pending_.push_back(Pending{std::move(done), std::string()});
  Write(args);
}

void RedisPushConnection::Unsubscribe(absl::string_view channel, bool sharded) {
  if (closing_) return;
  if (pending_.empty()) progress_at_ = absl::Now();
  pending_.push_back(Pending{nullptr, std::string(channel)});
  Write({sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", std::string(channel)});
}

absl::Duration RedisPushConnection::StalledFor(absl::Time now) const {
  if (pending_.empty()) return absl::ZeroDuration();
  return now - progress_at_;
}

void RedisPushConnection::OnEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<RedisPushConnection*>(arg);
  if (self->closing_) return;
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    self->connected_ = true;
    return;
  }
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
    const int err = EVUTIL_SOCKET_ERROR();
    const std::string why =
        (what & BEV_EVENT_EOF) != 0
            ? std::string("closed by the server")
            : std::string(evutil_socket_error_to_string(err));
    self->Down(self->connected_
                   ? StoreUnavailable(absl::StrCat(
                         "connection to ", self->address_, " lost: ", why))
                   : NotSent(StoreUnavailable(absl::StrCat(
                         "cannot connect to ", self->address_, ": ", why))));
  }
}

void RedisPushConnection::OnRead(bufferevent* bev, void* arg) {
  auto* self = static_cast<RedisPushConnection*>(arg);
  evbuffer* input = bufferevent_get_input(bev);
  char chunk[16384];
  int n;
  while (!self->closing_ &&
         (n = evbuffer_remove(input, chunk, sizeof(chunk))) > 0) {
    if (redisReaderFeed(self->reader_, chunk, static_cast<size_t>(n)) !=
        REDIS_OK) {
      self->Down(StoreUnavailable(
          absl::StrCat("connection to ", self->address_, ": out of memory")));
      return;
    }
    self->Drain();
  }
}

void RedisPushConnection::Drain() {
  // A handler may close us: the reader stays ours until the destructor.
  std::weak_ptr<int> alive = alive_;
  while (!closing_) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
      Down(StoreUnavailable(absl::StrCat("protocol error from ", address_, ": ",
                                         reader_->errstr)));
      return;
    }
    if (raw == nullptr) return;  // No complete reply yet.
    const auto* r = static_cast<const redisReply*>(raw);
    absl::StatusOr<RedisReply> copied = CopyReply(*r);
    freeReplyObject(raw);
    progress_at_ = absl::Now();
    if (copied.ok()) {
      Dispatch(*std::move(copied), absl::OkStatus());
    } else {
      Dispatch(RedisReply{}, copied.status());
    }
    if (alive.expired()) return;
  }
}

void RedisPushConnection::Dispatch(RedisReply reply, absl::Status error) {
  const bool push = error.ok() && reply.type == RedisReply::Type::kArray &&
                    reply.elements.size() >= 3 &&
                    reply.elements[0].type == RedisReply::Type::kString;
  const std::string kind = push ? reply.elements[0].str : std::string();
  if (kind == "message" || kind == "smessage") {
    const std::string& channel = reply.elements[1].str;
    const RedisReply& payload = reply.elements[2];
    if (channel == kRedisInvalidateChannel) {
      // An array of key names, or nil for "everything"; anything else
      // counts as everything too.
      std::vector<absl::string_view> keys;
      if (payload.type == RedisReply::Type::kArray) {
        for (const RedisReply& key : payload.elements) {
          if (key.type != RedisReply::Type::kString) {
            keys.clear();
            break;
          }
          keys.push_back(key.str);
        }
      }
      if (handlers_.on_invalidate) handlers_.on_invalidate(keys);
      return;
    }
    if (payload.type == RedisReply::Type::kString && handlers_.on_message)
      handlers_.on_message(channel, payload.str);
    return;
  }
  if (kind == "sunsubscribe" || kind == "unsubscribe") {
    const std::string& channel = reply.elements[1].str;
    if (!pending_.empty() && !pending_.front().done &&
        pending_.front().unsubscribe == channel) {
      pending_.pop_front();  // Answers our own Unsubscribe().
      if (!pending_.empty()) progress_at_ = absl::Now();
      return;
    }
    if (handlers_.on_dropped) handlers_.on_dropped(channel);
    return;
  }
  if (pending_.empty()) {
    // Nothing asked for it: a server we cannot follow.
    Down(StoreUnavailable(absl::StrCat("unexpected reply from ", address_,
                                       error.ok() ? "" : ": ",
                                       error.message())));
    return;
  }
  Pending pending = std::move(pending_.front());
  pending_.pop_front();
  if (!pending_.empty()) progress_at_ = absl::Now();
  // An Unsubscribe() refused (-MOVED: the channel's slot is elsewhere, so
  // we are not subscribed to it here anyway).
  if (!pending.done) return;
  if (error.ok()) {
    pending.done(std::move(reply));
  } else {
    pending.done(std::move(error));
  }
}

void RedisPushConnection::Down(absl::Status status) {
  if (closing_) return;
  Drop(status);
  loop_.Post([this, alive = std::weak_ptr<int>(alive_),
              status = std::move(status)]() mutable {
    if (alive.expired() || closed_by_owner_ || !handlers_.on_down) return;
    handlers_.on_down(std::move(status));
  });
}

}  // namespace corral
