#include "client/cpp/near_cache.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "client/cpp/convert.h"

namespace corral::client::internal {

namespace {
// A rough per-entry overhead (map slot, list node, strings' headers).
constexpr size_t kEntryOverhead = 128;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
constexpr absl::Duration kUnsupportedBackoff = absl::Seconds(30);
}  // namespace

NearCache::NearCache(corral::v1::Corral::Stub& stub, NearCacheLimits limits,
                     std::string client_name)
    : stub_(stub), limits_(limits), client_name_(std::move(client_name)) {
  thread_ = std::thread([this] { Run(); });
}

NearCache::~NearCache() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
  }
  thread_.join();
}

void NearCache::Run() {
  absl::Duration backoff = kFirstBackoff;
  while (true) {
    const absl::Time started = absl::Now();
    const bool unsupported = RunStream();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    // A stream that lived a while was healthy: start again quickly.
    if (absl::Now() - started > absl::Seconds(10)) backoff = kFirstBackoff;
    // A server without a near cache (an older corrald, --read_cache_mb=0):
    // ask again now and then, not every two seconds.
    if (unsupported) backoff = kUnsupportedBackoff;
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    if (stopping_) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

bool NearCache::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    stream_context_ = &context;
  }
  corral::v1::NearCacheRequest request;
  request.set_client_name(client_name_);
  std::unique_ptr<grpc::ClientReaderInterface<corral::v1::NearCacheEvent>>
      reader = stub_.NearCache(&context, request);
  corral::v1::NearCacheEvent event;
  while (reader->Read(&event)) {
    switch (event.event_case()) {
      case corral::v1::NearCacheEvent::kStarted:
        OnStarted(event.started().session());
        break;
      case corral::v1::NearCacheEvent::kInvalidations:
        OnInvalidate(event.invalidations());
        break;
      case corral::v1::NearCacheEvent::kReset:
        OnReset();
        break;
      default:
        break;  // A newer server's message: nothing to drop for it.
    }
  }
  const grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  stream_context_ = nullptr;
  // Changes may go unheard from now on: keep nothing.
  session_.clear();
  ++epoch_;
  ResetLocked();
  return status.error_code() == grpc::StatusCode::UNIMPLEMENTED;
}

void NearCache::OnStarted(std::string session) {
  absl::MutexLock lock(&mu_);
  ResetLocked();
  session_ = std::move(session);
  ++epoch_;
  ++stats_.near_sessions;
}

void NearCache::OnInvalidate(const corral::v1::NearCacheInvalidations& keys) {
  absl::MutexLock lock(&mu_);
  for (const corral::v1::NearCacheKey& k : keys.keys()) {
    NearCacheKey key{k.namespace_(), k.key()};
    const uint64_t now = ++seq_;
    if (auto p = pending_.find(key); p != pending_.end())
      p->second.invalidated_at = now;
    if (auto it = entries_.find(key); it != entries_.end()) EraseLocked(it);
    ++stats_.near_invalidations;
  }
}

void NearCache::OnReset() {
  absl::MutexLock lock(&mu_);
  ResetLocked();
  ++stats_.near_resets;
}

void NearCache::ResetLocked() {
  reset_at_ = ++seq_;
  entries_.clear();
  lru_.clear();
  bytes_ = 0;
}

void NearCache::EraseLocked(
    absl::flat_hash_map<NearCacheKey, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

std::optional<CachedValue> NearCache::Find(absl::string_view ns,
                                           absl::string_view key) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(NearCacheKey{std::string(ns), std::string(key)});
  if (it == entries_.end()) return std::nullopt;
  if (now >= it->second.until) {
    EraseLocked(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  ++stats_.near_hits;
  CachedValue value;
  value.value = it->second.value;
  value.source = Source::kNearCache;
  value.age = std::max(absl::ZeroDuration(), now - it->second.stored_at);
  value.ttl_remaining = it->second.expires_at - now;
  return value;
}

NearCache::Ticket NearCache::Begin(absl::string_view ns,
                                   absl::string_view key) {
  Ticket ticket;
  ticket.sent_at = absl::Now();
  absl::MutexLock lock(&mu_);
  if (session_.empty()) return ticket;
  ticket.session = session_;
  ticket.epoch = epoch_;
  ticket.seq = ++seq_;
  ++pending_[NearCacheKey{std::string(ns), std::string(key)}].reads;
  return ticket;
}

void NearCache::End(const Ticket& ticket, absl::string_view ns,
                    absl::string_view key, const corral::v1::Value* value) {
  if (ticket.session.empty()) return;
  NearCacheKey k{std::string(ns), std::string(key)};
  absl::MutexLock lock(&mu_);
  bool invalidated = false;
  if (auto p = pending_.find(k); p != pending_.end()) {
    invalidated = p->second.invalidated_at > ticket.seq;
    if (--p->second.reads == 0) {
      pending_.erase(p);
    } else {
      // Reads of the key still in flight may carry an older value than
      // this answer: none of them may plant it (so that no thread sees the
      // key go back in time through the near cache).
      p->second.invalidated_at = ++seq_;
    }
  }
  const absl::Duration keep = value != nullptr && value->has_near_cache_for()
                                  ? DurationFromProto(value->near_cache_for())
                                  : absl::ZeroDuration();
  if (keep <= absl::ZeroDuration() || invalidated || ticket.epoch != epoch_ ||
      ticket.seq <= reset_at_) {
    if (keep > absl::ZeroDuration()) ++stats_.near_refused;
    // What another thread planted meanwhile may be older than this answer:
    // unless it is the same value, it goes (a miss or an error counts as
    // different).
    if (auto old = entries_.find(k);
        old != entries_.end() &&
        (value == nullptr || old->second.value != value->value())) {
      EraseLocked(old);
    }
    return;
  }
  const size_t cost =
      kEntryOverhead + k.ns.size() + k.key.size() + value->value().size();
  if (cost > limits_.max_bytes / 8 || limits_.max_entries == 0) return;
  if (auto old = entries_.find(k); old != entries_.end()) EraseLocked(old);
  while (!lru_.empty() && (entries_.size() + 1 > limits_.max_entries ||
                           bytes_ + cost > limits_.max_bytes)) {
    EraseLocked(entries_.find(lru_.back()));
  }
  lru_.push_front(k);
  Entry entry;
  entry.value = value->value();
  entry.until = ticket.sent_at + keep;
  entry.expires_at = ticket.sent_at + DurationFromProto(value->ttl_remaining());
  entry.stored_at = ticket.sent_at - DurationFromProto(value->age());
  entry.bytes = cost;
  entry.lru = lru_.begin();
  entries_.emplace(std::move(k), std::move(entry));
  bytes_ += cost;
  ++stats_.near_planted;
}

bool NearCache::Connected() const {
  absl::MutexLock lock(&mu_);
  return !session_.empty();
}

bool NearCache::WaitConnected(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(this, &NearCache::HasSession),
                              timeout);
}

void NearCache::AddStats(ClientStats* out) const {
  absl::MutexLock lock(&mu_);
  out->near_hits = stats_.near_hits;
  out->near_planted = stats_.near_planted;
  out->near_refused = stats_.near_refused;
  out->near_invalidations = stats_.near_invalidations;
  out->near_resets = stats_.near_resets;
  out->near_sessions = stats_.near_sessions;
  out->near_entries = entries_.size();
  out->near_bytes = bytes_;
}

}  // namespace corral::client::internal
