// Local coordination's memory (docs/ARCHITECTURE.md, section 3.4): values
// this replica computed while the store was unreachable, so that it
// computes each key once per outage, not once per wave of callers. Dropped
// when the store is back (the store is the truth again).
//
// Loop thread only.
#ifndef CORRAL_SERVER_CORE_LOCAL_VALUES_H_
#define CORRAL_SERVER_CORE_LOCAL_VALUES_H_

#include <cstddef>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/store.h"

namespace corral {

class LocalValues {
 public:
  // At most this many keys are kept; past it, everything is dropped (an
  // outage that long computes again rather than grow without bound).
  static constexpr size_t kMaxKeys = 10000;

  void Remember(const CacheKey& key, StoredValue value);
  // The value kept for `key` if it is still fresh at `now`.
  std::optional<StoredValue> FindFresh(const CacheKey& key,
                                       absl::Time now) const;
  void Clear() { values_.clear(); }
  size_t size() const { return values_.size(); }

 private:
  absl::flat_hash_map<CacheKey, StoredValue> values_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_LOCAL_VALUES_H_
