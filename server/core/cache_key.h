// The identity of one cached item: a namespace and a binary-safe key.
#ifndef CORRAL_SERVER_CORE_CACHE_KEY_H_
#define CORRAL_SERVER_CORE_CACHE_KEY_H_

#include <string>
#include <utility>

#include "absl/hash/hash.h"

namespace corral {

struct CacheKey {
  std::string ns;
  std::string key;  // Arbitrary bytes, 1..1024 of them once validated.

  friend bool operator==(const CacheKey& a, const CacheKey& b) {
    return a.ns == b.ns && a.key == b.key;
  }
  template <typename H>
  friend H AbslHashValue(H h, const CacheKey& k) {
    return H::combine(std::move(h), k.ns, k.key);
  }
};

// A short, stable name for a key: 16 hex digits of a 64-bit FNV-1a over
// namespace and key. It is the Redis hash tag of the key's entries (so it
// must never change), and it is not secret: anyone can compute it from a
// guessed key. Logs use the keyed LogKeyHash (log.h) instead.
std::string KeyHash(const CacheKey& key);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_CACHE_KEY_H_
