// Fuzzes request validation and the key/state encodings: no input may crash,
// hang, or round-trip to something else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/core/breaker.h"
#include "server/core/cache_key.h"
#include "server/core/validation.h"
#include "server/store/redis_scripts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  // Split into a namespace and a key at the first NUL (or halfway).
  size_t cut = input.find('\0');
  if (cut == std::string::npos) cut = size / 2;
  const std::string ns = input.substr(0, cut);
  const std::string key = input.substr(std::min(cut + 1, size));

  const bool ns_ok = corral::ValidateNamespace("namespace", ns).ok();
  const bool key_ok = corral::ValidateKey("key", key).ok();
  (void)corral::ValidateToken("token", input).ok();
  if (ns_ok && key_ok) {
    corral::CacheKey k{ns, key};
    // Every Redis key of one item shares its hash tag; items never collide.
    corral::RedisItemKeys keys = corral::RedisKeysFor(k);
    const std::string tag = "{" + corral::KeyHash(k) + "}";
    if (keys.value.find(tag) == std::string::npos ||
        keys.lock.find(tag) == std::string::npos ||
        keys.fence.find(tag) == std::string::npos || keys.value == keys.lock) {
      std::abort();
    }
  }
  // Decoders of what Redis hands back must reject garbage, never crash.
  (void)corral::DecodeKeyMessage(input);
  (void)corral::DecodeBreakerMessage(input);
  auto snapshot = corral::BreakerSnapshot::Decode(input);
  if (snapshot.ok()) {
    auto again = corral::BreakerSnapshot::Decode(snapshot->Encode());
    if (!again.ok() || again->Encode() != snapshot->Encode()) std::abort();
  }
  return 0;
}
