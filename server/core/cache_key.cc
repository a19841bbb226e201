#include "server/core/cache_key.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace corral {

std::string KeyHash(const CacheKey& key) {
  // FNV-1a: stable across processes and releases (absl::Hash is not).
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(key.ns);
  h ^= 0xff;  // Separator: ("ab","c") and ("a","bc") hash apart.
  h *= 1099511628211ull;
  mix(key.key);
  return absl::StrFormat("%016x", h);
}

}  // namespace corral
