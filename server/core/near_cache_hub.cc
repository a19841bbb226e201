#include "server/core/near_cache_hub.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "server/core/token.h"

namespace corral {

std::string NearCacheHub::Open(std::shared_ptr<NearCacheSink> sink) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) {
    sink->End();
    return "";
  }
  std::string id;
  do {
    // Knowing a session lets one register keys on it: not guessable.
    id = SecretBytes16();
  } while (sessions_.contains(id));
  sessions_[id].sink = std::move(sink);
  return id;
}

void NearCacheHub::Close(absl::string_view session) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  ForgetKeysLocked(it->first, it->second);
  sessions_.erase(it);
}

void NearCacheHub::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [id, session] : sessions_) session.sink->End();
  sessions_.clear();
  holders_.clear();
  registrations_ = 0;
}

bool NearCacheHub::Register(absl::string_view session, const CacheKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return false;
  Session& s = it->second;
  if (s.keys.contains(key)) return true;
  if (s.keys.size() >= kMaxKeysPerSession)
    ResetLocked(it->first, s, "too-many-keys");
  s.keys.insert(key);
  holders_[key].push_back(it->first);
  ++registrations_;
  return true;
}

void NearCacheHub::ForgetKeysLocked(const std::string& id, Session& session) {
  for (const CacheKey& key : session.keys) {
    auto h = holders_.find(key);
    if (h == holders_.end()) continue;
    auto& ids = h->second;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    if (ids.empty()) holders_.erase(h);
  }
  registrations_ -= session.keys.size();
  session.keys.clear();
}

void NearCacheHub::ResetLocked(const std::string& id, Session& session,
                               absl::string_view reason) {
  ForgetKeysLocked(id, session);
  session.sink->Reset(reason);
  resets_.fetch_add(1);
}

void NearCacheHub::OnInvalidate(const CacheKey* key) {
  absl::MutexLock lock(&mu_);
  if (key == nullptr) {
    for (auto& [id, session] : sessions_) {
      session.keys.clear();
      session.sink->Reset("store-changed");
      resets_.fetch_add(1);
    }
    holders_.clear();
    registrations_ = 0;
    return;
  }
  auto h = holders_.find(*key);
  if (h == holders_.end()) return;
  for (const std::string& id : h->second) {
    auto s = sessions_.find(id);
    if (s == sessions_.end()) continue;
    s->second.keys.erase(*key);
    --registrations_;
    s->second.sink->Invalidate({*key});
    keys_pushed_.fetch_add(1);
  }
  holders_.erase(h);
}

size_t NearCacheHub::sessions() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

size_t NearCacheHub::registrations() const {
  absl::MutexLock lock(&mu_);
  return registrations_;
}

absl::Time EarlyRefreshWindowStart(absl::Time expires_at,
                                   absl::Duration compute_time, double beta) {
  if (beta <= 0 || compute_time <= absl::ZeroDuration()) return expires_at;
  // XFetch refreshes a hit at t with probability exp((t - expiry) / (δβ)).
  return expires_at - compute_time * (beta * std::log(1000.0));
}

absl::Duration NearCacheFor(absl::Time now, absl::Time expires_at,
                            absl::Duration compute_time, double beta) {
  const absl::Time until =
      EarlyRefreshWindowStart(expires_at, compute_time, beta);
  return std::max(absl::ZeroDuration(), until - now);
}

}  // namespace corral
