#include "server/store/sentinel_client.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {
namespace {

constexpr absl::string_view kSwitchChannel = "+switch-master";

std::string AddressText(const RedisAddress& a) {
  return absl::StrCat(a.host, ":", a.port);
}

// SENTINEL get-master-addr-by-name answers [host, port], or nil for a
// master it does not monitor.
absl::StatusOr<RedisAddress> ParseMasterAddress(const RedisReply& reply,
                                                absl::string_view name) {
  if (reply.type == RedisReply::Type::kNil) {
    return StoreUnavailable(
        absl::StrCat("does not monitor a master named ", name));
  }
  RedisAddress address;
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 ||
      !absl::SimpleAtoi(reply.elements[1].str, &address.port) ||
      address.port < 1 || address.port > 65535 ||
      reply.elements[0].str.empty()) {
    return StoreUnavailable("answered something that is not [host, port]");
  }
  address.host = reply.elements[0].str;
  return address;
}

}  // namespace

SentinelClient::SentinelClient(EventLoop& loop, const RedisOptions& options)
    : loop_(loop),
      sentinels_(options.sentinels),
      master_name_(options.master_name),
      password_(options.sentinel_password),
      timeout_(options.connect_timeout) {}

SentinelClient::~SentinelClient() { Shutdown(); }

void SentinelClient::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  CancelDiscovery();
  on_switch_ = nullptr;
  if (watch_) watch_->Close(StoreUnavailable("sentinel watch closed"));
  Retire(std::move(watch_), StoreUnavailable("sentinel watch closed"));
}

std::unique_ptr<RedisConnection> SentinelClient::OpenConnection(
    const RedisAddress& sentinel, RedisConnection::Handlers handlers,
    absl::Status* error) {
  auto conn = RedisConnection::Connect(loop_, sentinel.host, sentinel.port,
                                       std::move(handlers));
  if (!conn.ok()) {
    *error = conn.status();
    return nullptr;
  }
  if (!password_.empty()) {
    (*conn)->Command(
        {"AUTH", password_},
        [alive = std::weak_ptr<int>(alive_),
         where = AddressText(sentinel)](absl::StatusOr<RedisReply> reply) {
          if (alive.expired() || reply.ok()) return;
          CORRAL_LOG(LogLevel::kWarning, "sentinel_auth_failed",
                     "sentinel=", where, " error=\"", reply.status().message(),
                     "\"");
        });
  }
  return *std::move(conn);
}

void SentinelClient::Retire(std::unique_ptr<RedisConnection> conn,
                            const absl::Status& reason) {
  if (!conn) return;
  conn->Close(reason);
  loop_.Post([conn = std::move(conn)]() mutable {});
}

void SentinelClient::Discover(DiscoverCallback done) {
  CancelDiscovery();
  if (shut_down_) return;
  done_ = std::move(done);
  ++query_;
  asked_ = 0;
  errors_.clear();
  AskNext();
}

void SentinelClient::CancelDiscovery() {
  done_ = nullptr;
  ++query_;
  Retire(std::move(conn_), StoreUnavailable("sentinel query abandoned"));
}

void SentinelClient::AskNext() {
  if (asked_ == sentinels_.size()) {
    DiscoverCallback done = std::move(done_);
    done_ = nullptr;
    done(StoreUnavailable(absl::StrCat("no sentinel named the master ",
                                       master_name_, ": ",
                                       absl::StrJoin(errors_, "; "))));
    return;
  }
  current_ = (preferred_ + asked_++) % sentinels_.size();
  const RedisAddress& sentinel = sentinels_[current_];
  const uint64_t query = query_;
  asked_at_ = absl::Now();
  RedisConnection::Handlers handlers;
  handlers.on_down = [this, query](absl::Status s) {
    QueryFailed(query, std::move(s));
  };
  absl::Status error;
  conn_ = OpenConnection(sentinel, std::move(handlers), &error);
  if (!conn_) {
    QueryFailed(query, error);
    return;
  }
  conn_->Command({"SENTINEL", "get-master-addr-by-name", master_name_},
                 [this, query](absl::StatusOr<RedisReply> reply) {
                   if (query != query_) return;
                   absl::StatusOr<RedisAddress> master =
                       reply.ok() ? ParseMasterAddress(*reply, master_name_)
                                  : reply.status();
                   if (!master.ok()) {
                     QueryFailed(query, master.status());
                     return;
                   }
                   preferred_ = current_;
                   Retire(std::move(conn_),
                          StoreUnavailable("sentinel query done"));
                   ++query_;
                   DiscoverCallback done = std::move(done_);
                   done_ = nullptr;
                   done(*std::move(master));
                 });
}

void SentinelClient::QueryFailed(uint64_t query, absl::Status error) {
  if (query != query_ || !done_) return;
  errors_.push_back(absl::StrCat("sentinel ", AddressText(sentinels_[current_]),
                                 " ", error.message()));
  Retire(std::move(conn_), error);
  ++query_;
  const uint64_t next = query_;
  // The next sentinel is asked from a fresh task, not from inside this
  // connection's callback.
  loop_.Post([this, alive = std::weak_ptr<int>(alive_), next] {
    if (alive.expired() || next != query_ || !done_) return;
    AskNext();
  });
}

void SentinelClient::Watch(SwitchCallback on_switch) {
  on_switch_ = std::move(on_switch);
  OpenWatch();
}

void SentinelClient::OpenWatch() {
  if (shut_down_ || watch_ || !on_switch_) return;
  const RedisAddress& sentinel = sentinels_[watch_index_ % sentinels_.size()];
  RedisConnection::Handlers handlers;
  handlers.on_down = [this](absl::Status) {
    // Another sentinel next time; a dropped watch costs only the early
    // warning (loss, errors and the periodic ROLE check remain).
    ++watch_index_;
    watch_retry_at_ = absl::Now() + timeout_;
    Retire(std::move(watch_), StoreUnavailable("sentinel watch lost"));
  };
  handlers.on_message = [this](absl::string_view channel,
                               absl::string_view payload) {
    if (channel == kSwitchChannel) OnSwitchMessage(payload);
  };
  absl::Status error;
  watch_ = OpenConnection(sentinel, std::move(handlers), &error);
  if (!watch_) {
    ++watch_index_;
    watch_retry_at_ = absl::Now() + timeout_;
    return;
  }
  watch_->Subscribe(kSwitchChannel);
}

void SentinelClient::OnSwitchMessage(absl::string_view payload) {
  // "<name> <old-ip> <old-port> <new-ip> <new-port>"
  std::vector<absl::string_view> parts = absl::StrSplit(payload, ' ');
  RedisAddress master;
  if (parts.size() != 5 || parts[0] != master_name_ ||
      !absl::SimpleAtoi(parts[4], &master.port)) {
    return;
  }
  master.host = std::string(parts[3]);
  CORRAL_LOG(LogLevel::kWarning, "sentinel_switch_master",
             "master=", master_name_, " from=", parts[1], ":", parts[2],
             " to=", AddressText(master));
  if (on_switch_) on_switch_(master);
}

void SentinelClient::Tick(absl::Time now) {
  if (shut_down_) return;
  if (conn_ && done_ && now - asked_at_ > timeout_) {
    QueryFailed(query_,
                StoreUnavailable(absl::StrCat("did not answer within ",
                                              absl::FormatDuration(timeout_))));
  }
  if (!watch_ && on_switch_ && now >= watch_retry_at_) OpenWatch();
}

}  // namespace corral
