// A replica's copy of the values it has read, so that a hit on a hot key is
// answered on the gRPC thread that received it: no store round trip, no hop
// to the loop thread. The store that owns it keeps it coherent:
//
// - it turns coherence on only once it will hear of every change to the
//   keys it reads (Redis: server-assisted client-side caching, CLIENT
//   TRACKING with invalidation messages; embedded: every write is local),
//   and off, dropping everything, whenever it may miss one (a connection
//   lost);
// - it invalidates a key before it writes it (read-your-writes on one
//   replica) and when it hears that someone else changed it;
// - a read caches its answer only if nothing invalidated the key between
//   the read's start and its end (tickets, below), so a read that raced a
//   write cannot plant the old value.
//
// Another replica's write reaches this cache one invalidation message later
// (on loopback, well under a millisecond): the same bound as Redis's own
// client-side caching. Freshness is the reader's business: entries keep
// their expiry, and only the coordinator's clock decides whether one is
// still fresh. The cache never serves stale-window values.
//
// Bounded by bytes (values + keys); when full, arbitrary entries go.
//
// Threading: Find from any thread; everything else from the store's loop
// thread.
#ifndef CORRAL_SERVER_CORE_READ_CACHE_H_
#define CORRAL_SERVER_CORE_READ_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/core/cache_key.h"
#include "server/core/store.h"

namespace corral {

struct CachedValue {
  // Everything but the bytes (meta.value is empty).
  StoredValue meta;
  std::shared_ptr<const std::string> bytes;
};

struct ReadCacheOptions {
  // 0: nothing is cached. The store still tracks changes (coherence,
  // tickets, invalidations) when there is a listener: see Tracks().
  size_t max_bytes = 0;
  // Whether values of a namespace may be cached (null: all may). Called on
  // the store's loop thread.
  std::function<bool(absl::string_view ns)> cacheable;
  // Told of every invalidation, whether or not the key is cached (null key:
  // every key may have changed, including every loss or gain of coherence):
  // the clients' near cache (server/core/near_cache_hub.h). Loop thread;
  // must not block.
  std::function<void(const CacheKey* key)> on_invalidate;

  // Whether the store keeps a ReadCache at all: to cache values, or only to
  // hear of every change for the listener (the near cache works with a
  // read cache of zero bytes, docs/ARCHITECTURE.md 3.8).
  bool Tracks() const { return max_bytes > 0 || on_invalidate != nullptr; }
};

class ReadCache {
 public:
  explicit ReadCache(ReadCacheOptions options)
      : max_bytes_(options.max_bytes),
        cacheable_(std::move(options.cacheable)),
        on_invalidate_(std::move(options.on_invalidate)) {}
  ReadCache(const ReadCache&) = delete;
  ReadCache& operator=(const ReadCache&) = delete;

  // Any thread. The entry for `key`, fresh or not; null when none.
  std::shared_ptr<const CachedValue> Find(const CacheKey& key) const;

  // Loop thread. While not coherent (the start), nothing is cached.
  void SetCoherent(bool coherent);
  // A store read of `key` starts: pass the ticket to EndRead.
  uint64_t BeginRead(const CacheKey& key);
  // The read ends. True when the read is *tracked*: the cache was coherent
  // for the whole read and `key` was not invalidated since its BeginRead,
  // so every later change of the key will be heard of (the near cache's
  // grant, docs/ARCHITECTURE.md 3.8). `value` (null: none, or not worth
  // caching) is then cached, if its namespace is cacheable and it fits.
  bool EndRead(const CacheKey& key, uint64_t ticket, const StoredValue* value);
  // `key` changed, or may have.
  void Invalidate(const CacheKey& key);
  // Every key may have changed (FLUSHALL, a lost invalidation).
  void InvalidateAll();

  size_t entries() const;
  size_t bytes() const;
  size_t max_bytes() const { return max_bytes_; }

 private:
  struct Pending {
    int reads = 0;
    uint64_t invalidated_at = 0;  // The sequence number of the latest.
  };
  static size_t Cost(const CacheKey& key, const CachedValue& value);
  void EvictFor(size_t incoming) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  const std::function<bool(absl::string_view ns)> cacheable_;
  const std::function<void(const CacheKey* key)> on_invalidate_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<CacheKey, std::shared_ptr<const CachedValue>> entries_
      ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;

  // Loop thread only. Every BeginRead, invalidation and coherence change
  // takes the next sequence number; a read's ticket is the one it took.
  uint64_t seq_ = 0;
  // Reads that started at or before it may have missed an invalidation.
  uint64_t incoherent_until_ = 0;
  bool coherent_ = false;
  absl::flat_hash_map<CacheKey, Pending> pending_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_READ_CACHE_H_
