#include "server/core/read_cache.h"

#include <utility>

namespace corral {

namespace {
// A rough per-entry overhead (hash slot, control block, CachedValue).
constexpr size_t kEntryOverhead = 160;
}  // namespace

size_t ReadCache::Cost(const CacheKey& key, const CachedValue& value) {
  return kEntryOverhead + key.ns.size() + key.key.size() + value.bytes->size();
}

std::shared_ptr<const CachedValue> ReadCache::Find(const CacheKey& key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

void ReadCache::SetCoherent(bool coherent) {
  if (coherent_ == coherent) return;
  coherent_ = coherent;
  // Reads in flight now were sent while changes could be missed (or, on
  // the way up, before the store heard of every change): never cached.
  InvalidateAll();
}

uint64_t ReadCache::BeginRead(const CacheKey& key) {
  ++pending_[key].reads;
  return ++seq_;
}

bool ReadCache::EndRead(const CacheKey& key, uint64_t ticket,
                        const StoredValue* value) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return false;  // Unpaired: nothing to trust.
  const bool invalidated = it->second.invalidated_at > ticket;
  if (--it->second.reads == 0) pending_.erase(it);
  if (invalidated || !coherent_ || ticket <= incoherent_until_) return false;
  if (value == nullptr || max_bytes_ == 0) return true;
  if (cacheable_ && !cacheable_(key.ns)) return true;
  auto entry = std::make_shared<CachedValue>();
  entry->meta = *value;
  entry->bytes =
      std::make_shared<const std::string>(std::move(entry->meta.value));
  entry->meta.value.clear();
  const size_t cost = Cost(key, *entry);
  if (cost > max_bytes_ / 8) return true;  // May not crowd out the rest.
  absl::MutexLock lock(&mu_);
  if (auto old = entries_.find(key); old != entries_.end()) {
    bytes_ -= Cost(key, *old->second);
    entries_.erase(old);
  }
  EvictFor(cost);
  entries_.emplace(key, std::move(entry));
  bytes_ += cost;
  return true;
}

void ReadCache::EvictFor(size_t incoming) {
  auto it = entries_.begin();
  while (bytes_ + incoming > max_bytes_ && it != entries_.end()) {
    bytes_ -= Cost(it->first, *it->second);
    entries_.erase(it++);
  }
}

void ReadCache::Invalidate(const CacheKey& key) {
  const uint64_t now = ++seq_;
  if (auto it = pending_.find(key); it != pending_.end())
    it->second.invalidated_at = now;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      bytes_ -= Cost(key, *it->second);
      entries_.erase(it);
    }
  }
  // After the entry is gone: a near-cache Get that registers from here on
  // cannot be granted the old value.
  if (on_invalidate_) on_invalidate_(&key);
}

void ReadCache::InvalidateAll() {
  incoherent_until_ = ++seq_;
  {
    absl::MutexLock lock(&mu_);
    entries_.clear();
    bytes_ = 0;
  }
  if (on_invalidate_) on_invalidate_(nullptr);
}

size_t ReadCache::entries() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

size_t ReadCache::bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return bytes_;
}

}  // namespace corral
