#include "server/core/local_values.h"

#include <utility>

namespace corral {

void LocalValues::Remember(const CacheKey& key, StoredValue value) {
  if (values_.size() >= kMaxKeys) values_.clear();
  values_[key] = std::move(value);
}

std::optional<StoredValue> LocalValues::FindFresh(const CacheKey& key,
                                                  absl::Time now) const {
  auto it = values_.find(key);
  if (it == values_.end() || it->second.expires_at <= now) return std::nullopt;
  return it->second;
}

}  // namespace corral
