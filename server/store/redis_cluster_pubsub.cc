// RedisClusterStore's pub/sub (sharded channels per master, the breaker
// channel) and its read cache (CLIENT TRACKING per master): see
// redis_cluster_store.h. Routing, discovery and operations are in
// redis_cluster_store.cc.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/store/redis_cluster_store.h"

namespace corral {
namespace {

bool IsStoreUnavailable(const absl::Status& status) {
  return ReasonOf(status) == kReasonStoreUnavailable;
}

}  // namespace

// --- Pub/sub
// -----------------------------------------------------------------------

void RedisClusterStore::Watch(const CacheKey& key) {
  std::string name = RedisChannelFor(key);
  if (channels_.contains(name)) return;  // The caller pairs Watch/Unwatch.
  Channel& channel = channels_[name];
  channel.key = key;
  channel.slot = RedisHashSlot(name);
  if (state_ == State::kUp) Subscribe(name);
}

void RedisClusterStore::Unwatch(const CacheKey& key) {
  const std::string name = RedisChannelFor(key);
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  if (!it->second.node.empty()) {
    if (auto node = nodes_.find(it->second.node);
        node != nodes_.end() && node->second->subscriber) {
      node->second->subscriber->Unsubscribe(name, /*sharded=*/true);
    }
  }
  channels_.erase(it);
}

void RedisClusterStore::Subscribe(const std::string& name) {
  auto it = channels_.find(name);
  if (it == channels_.end() || state_ != State::kUp) return;
  Channel& channel = it->second;
  const RedisAddress* owner = slots_.Owner(channel.slot);
  Node* node = owner != nullptr ? GetNode(*owner) : nullptr;
  // Off the node it was on, if it moved.
  if (!channel.node.empty() &&
      (node == nullptr || node->name != channel.node)) {
    if (auto old = nodes_.find(channel.node);
        old != nodes_.end() && old->second->subscriber) {
      old->second->subscriber->Unsubscribe(name, /*sharded=*/true);
    }
  }
  channel.confirmed = false;
  if (node == nullptr) {
    channel.node.clear();
    resubscribe_needed_ = true;
    RefreshSoon();
    return;
  }
  channel.node = node->name;
  const uint64_t attempt = ++next_attempt_;
  channel.attempt = attempt;
  node->subscriber->Command(
      {"SSUBSCRIBE", name}, [this, name, attempt, node_name = node->name](
                                absl::StatusOr<RedisReply> reply) {
        if (state_ != State::kUp) return;
        auto it = channels_.find(name);
        if (it == channels_.end() || it->second.attempt != attempt) return;
        Channel& channel = it->second;
        if (reply.ok()) {
          channel.confirmed = true;
          PostEvent(name, KeyEvent{KeyEvent::Kind::kWatching, channel.key,
                                   std::nullopt});
          return;
        }
        channel.node.clear();
        if (std::optional<RedisRedirect> redirect =
                ParseRedirect(reply.status());
            redirect && !redirect->ask) {
          if (redirect->to.host.empty())
            redirect->to.host = node_name.substr(0, node_name.rfind(':'));
          slots_.Assign(redirect->slot, redirect->to);
          RefreshSoon();
          if (++channel.redirects <= kMaxRedirects) {
            Subscribe(name);
            return;
          }
        }
        channel.redirects = 0;
        resubscribe_needed_ = true;
        RefreshSoon();
      });
}

void RedisClusterStore::OnDropped(const std::string& node_name,
                                  absl::string_view channel_name) {
  auto it = channels_.find(channel_name);
  if (it == channels_.end() || it->second.node != node_name) return;
  // The server dropped it: the slot moved. Subscribe where it went (a
  // stale map answers -MOVED, which says where), then re-read.
  it->second.node.clear();
  it->second.confirmed = false;
  RefreshSoon();
  Subscribe(std::string(channel_name));
}

void RedisClusterStore::SubscribeBreaker() {
  if (state_ != State::kUp) return;
  if (!breaker_node_.empty() && nodes_.contains(breaker_node_)) return;
  breaker_node_.clear();
  const RedisAddress* owner = slots_.Owner(RedisHashSlot(kRedisBreakerChannel));
  Node* node = owner != nullptr ? GetNode(*owner) : nullptr;
  if (node == nullptr) return;  // The next refresh tries again.
  breaker_node_ = node->name;
  // Plain pub/sub: the cluster broadcasts PUBLISH, so any node hears every
  // namespace's changes.
  node->subscriber->Command({"SUBSCRIBE", std::string(kRedisBreakerChannel)},
                            [](absl::StatusOr<RedisReply>) {});
}

void RedisClusterStore::OnMessage(absl::string_view name,
                                  absl::string_view payload) {
  if (name == kRedisBreakerChannel) return PostBreakerMessage(payload);
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  absl::StatusOr<KeyMessage> message = DecodeKeyMessage(payload);
  if (!message.ok()) {
    LOG_EVENT("store_bad_message", it->second.key, "error=\"",
              message.status().message(), "\"");
    return;
  }
  PostEvent(std::string(name),
            KeyEvent{message->kind, it->second.key, std::move(message->value)});
}

void RedisClusterStore::PostEvent(std::string channel, KeyEvent event) {
  loop_.Post([this, alive = std::weak_ptr<int>(alive_),
              channel = std::move(channel), event = std::move(event)] {
    if (alive.expired() || listener_ == nullptr) return;
    if (!channels_.contains(channel)) return;  // Unwatched since.
    listener_->OnKeyEvent(event);
  });
}

// --- Read cache
// ----------------------------------------------------------------

void RedisClusterStore::StartTracking(Node& node) {
  if (!read_cache_ || tracking_refused_) return;
  const std::string name = node.name;
  const uint64_t id = node.id;
  // CLIENT ID before any subscription (a subscribed RESP2 connection may
  // not run it); then where the invalidations go, and tracking on the
  // command connection, which is where Get reads.
  node.subscriber->Command(
      {"CLIENT", "ID"}, [this, name, id](absl::StatusOr<RedisReply> reply) {
        Node* node = FindNode(name, id);
        if (node == nullptr || state_ == State::kShutdown) return;
        if (!reply.ok() || reply->type != RedisReply::Type::kInteger) {
          OnTrackingStep(name, id,
                         reply.ok() ? absl::StatusOr<RedisReply>(
                                          absl::InternalError("CLIENT ID"))
                                    : reply);
          return;
        }
        node->subscriber->Command(
            {"SUBSCRIBE", std::string(kRedisInvalidateChannel)},
            [this, name, id](absl::StatusOr<RedisReply> r) {
              OnTrackingStep(name, id, r);
            });
        node->commands->Command({"CLIENT", "TRACKING", "on", "REDIRECT",
                                 absl::StrCat(reply->integer)},
                                [this, name, id](absl::StatusOr<RedisReply> r) {
                                  OnTrackingStep(name, id, r);
                                });
      });
}

void RedisClusterStore::OnTrackingStep(
    const std::string& node_name, uint64_t id,
    const absl::StatusOr<RedisReply>& reply) {
  Node* node = FindNode(node_name, id);
  if (node == nullptr || state_ == State::kShutdown) return;
  if (!reply.ok()) {
    // A dropped connection drops the node anyway; a refusal (an ACL without
    // +client|tracking or &__redis__:invalidate) holds for every node.
    if (!IsStoreUnavailable(reply.status()) && !tracking_refused_) {
      tracking_refused_ = true;
      CORRAL_LOG(LogLevel::kWarning, "read_cache_off",
                 "redis=", options_.Describe(), " node=", node_name,
                 " error=\"", reply.status().message(),
                 "\" (the read cache and the clients' near cache are off: "
                 "every hit reads Redis)");
      UpdateCoherence();
    }
    return;
  }
  if (node->tracking_steps_left > 0 && --node->tracking_steps_left == 0)
    UpdateCoherence();
}

void RedisClusterStore::OnInvalidate(
    const std::vector<absl::string_view>& keys) {
  if (!read_cache_) return;
  if (keys.empty()) return read_cache_->InvalidateAll();
  for (absl::string_view name : keys) {
    if (std::optional<CacheKey> key = CacheKeyOfValueKey(name))
      read_cache_->Invalidate(*key);
  }
}

void RedisClusterStore::UpdateCoherence() {
  if (!read_cache_) return;
  bool coherent = state_ == State::kUp && !tracking_refused_;
  for (const RedisAddress& master : slots_.masters()) {
    if (!coherent) break;
    const std::string name = RedisNodeName(master);
    if (slots_.SlotsOf(name).empty()) continue;
    auto it = nodes_.find(name);
    coherent = it != nodes_.end() && it->second->tracking_steps_left == 0;
  }
  if (coherent == coherent_) return;
  coherent_ = coherent;
  if (coherent) {
    // Reads sent before every node tracked them must not be kept.
    read_cache_->InvalidateAll();
    CORRAL_LOG(LogLevel::kInfo, "read_cache_on", "redis=", options_.Describe(),
               " max_bytes=", read_cache_->max_bytes(),
               read_cache_->max_bytes() == 0
                   ? " (tracking only, for the clients' near cache)"
                   : "");
  }
  read_cache_->SetCoherent(coherent);
}

void RedisClusterStore::SlotsMoved() {
  if (read_cache_) read_cache_->InvalidateAll();
}

}  // namespace corral
