// The read cache's own rules: nothing cached while incoherent, a read that
// an invalidation overtook plants nothing, a byte budget. Its coherence
// with Redis is tested in tests/server/store/redis_store_test.cc.
#include "server/core/read_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace corral {
namespace {

const CacheKey kKey{"ns", "k"};

StoredValue Value(std::string bytes) {
  StoredValue v;
  v.value = std::move(bytes);
  v.stored_at = absl::Now();
  v.expires_at = v.stored_at + absl::Seconds(60);
  return v;
}

std::string Cached(const ReadCache& cache, const CacheKey& key) {
  auto entry = cache.Find(key);
  return entry == nullptr ? "<none>" : *entry->bytes;
}

TEST(ReadCacheTest, CachesOnlyWhileCoherent) {
  ReadCache cache(ReadCacheOptions{1 << 20, nullptr, nullptr});
  const StoredValue v = Value("one");
  cache.EndRead(kKey, cache.BeginRead(kKey), &v);
  EXPECT_EQ(Cached(cache, kKey), "<none>");

  cache.SetCoherent(true);
  cache.EndRead(kKey, cache.BeginRead(kKey), &v);
  EXPECT_EQ(Cached(cache, kKey), "one");
  EXPECT_EQ(cache.Find(kKey)->meta.expires_at, v.expires_at);

  cache.SetCoherent(false);  // Everything goes.
  EXPECT_EQ(Cached(cache, kKey), "<none>");
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ReadCacheTest, AReadSentBeforeCoherenceCachesNothing) {
  ReadCache cache(ReadCacheOptions{1 << 20, nullptr, nullptr});
  const StoredValue v = Value("one");
  const uint64_t early = cache.BeginRead(kKey);
  cache.SetCoherent(true);
  cache.EndRead(kKey, early, &v);
  EXPECT_EQ(Cached(cache, kKey), "<none>");
}

TEST(ReadCacheTest, AnInvalidationDuringTheReadWins) {
  ReadCache cache(ReadCacheOptions{1 << 20, nullptr, nullptr});
  cache.SetCoherent(true);
  const StoredValue old_value = Value("old");
  const uint64_t racing = cache.BeginRead(kKey);
  cache.Invalidate(kKey);                        // Someone wrote while we read.
  const uint64_t later = cache.BeginRead(kKey);  // Sent after we heard.
  cache.EndRead(kKey, racing, &old_value);
  EXPECT_EQ(Cached(cache, kKey), "<none>");
  const StoredValue new_value = Value("new");
  cache.EndRead(kKey, later, &new_value);
  EXPECT_EQ(Cached(cache, kKey), "new");

  // Another key's invalidation does not matter.
  const uint64_t ticket = cache.BeginRead(kKey);
  cache.Invalidate(CacheKey{"ns", "other"});
  cache.EndRead(kKey, ticket, &old_value);
  EXPECT_EQ(Cached(cache, kKey), "old");

  // InvalidateAll (FLUSHALL) overtakes every read in flight.
  const uint64_t flushed = cache.BeginRead(kKey);
  cache.InvalidateAll();
  EXPECT_EQ(Cached(cache, kKey), "<none>");
  cache.EndRead(kKey, flushed, &new_value);
  EXPECT_EQ(Cached(cache, kKey), "<none>");
}

TEST(ReadCacheTest, KeepsOutNamespacesItMayNotCache) {
  ReadCache cache(ReadCacheOptions{
      1 << 20, [](absl::string_view ns) { return ns != "strict"; }, nullptr});
  cache.SetCoherent(true);
  const StoredValue v = Value("one");
  const CacheKey strict{"strict", "k"};
  cache.EndRead(strict, cache.BeginRead(strict), &v);
  cache.EndRead(kKey, cache.BeginRead(kKey), &v);
  EXPECT_EQ(Cached(cache, strict), "<none>");
  EXPECT_EQ(Cached(cache, kKey), "one");
}

TEST(ReadCacheTest, StaysWithinItsBudget) {
  ReadCache cache(ReadCacheOptions{64 * 1024, nullptr, nullptr});
  cache.SetCoherent(true);
  const StoredValue big = Value(std::string(6000, 'x'));
  for (int i = 0; i < 100; ++i) {
    const CacheKey key{"ns", std::to_string(i)};
    cache.EndRead(key, cache.BeginRead(key), &big);
    EXPECT_LE(cache.bytes(), cache.max_bytes());
  }
  EXPECT_GT(cache.entries(), 5u);
  EXPECT_LT(cache.entries(), 12u);
  // One value larger than an eighth of the budget is never cached.
  const StoredValue huge = Value(std::string(9000, 'x'));
  cache.EndRead(kKey, cache.BeginRead(kKey), &huge);
  EXPECT_EQ(Cached(cache, kKey), "<none>");
  // Invalidating gives the bytes back.
  for (int i = 0; i < 100; ++i)
    cache.Invalidate(CacheKey{"ns", std::to_string(i)});
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

// EndRead's answer is the near cache's grant (docs/ARCHITECTURE.md 3.8):
// true only for a read that nothing may have overtaken, whatever the cache
// holds or may hold.
TEST(ReadCacheTest, EndReadSaysWhetherTheReadWasTracked) {
  ReadCache cache(ReadCacheOptions{1 << 20, nullptr, nullptr});
  const StoredValue v = Value("one");
  EXPECT_FALSE(cache.EndRead(kKey, cache.BeginRead(kKey), &v));  // Incoherent.
  const uint64_t early = cache.BeginRead(kKey);
  cache.SetCoherent(true);
  EXPECT_FALSE(cache.EndRead(kKey, early, &v));  // Sent before coherence.
  EXPECT_TRUE(cache.EndRead(kKey, cache.BeginRead(kKey), &v));
  EXPECT_TRUE(cache.EndRead(kKey, cache.BeginRead(kKey), nullptr));  // Miss.
  const uint64_t racing = cache.BeginRead(kKey);
  cache.Invalidate(kKey);
  EXPECT_FALSE(cache.EndRead(kKey, racing, &v));
  EXPECT_FALSE(cache.EndRead(kKey, 12345, &v));  // Unpaired.
  // Another key's invalidation does not spoil it.
  const uint64_t other = cache.BeginRead(kKey);
  cache.Invalidate(CacheKey{"ns", "other"});
  EXPECT_TRUE(cache.EndRead(kKey, other, &v));
}

TEST(ReadCacheTest, ZeroBytesTracksReadsButCachesNothing) {
  int invalidations = 0;
  ReadCacheOptions options;
  options.on_invalidate = [&invalidations](const CacheKey*) {
    ++invalidations;
  };
  EXPECT_TRUE(options.Tracks());
  EXPECT_FALSE(ReadCacheOptions{}.Tracks());
  ReadCache cache(std::move(options));
  cache.SetCoherent(true);
  const StoredValue v = Value("one");
  EXPECT_TRUE(cache.EndRead(kKey, cache.BeginRead(kKey), &v));
  EXPECT_EQ(Cached(cache, kKey), "<none>");
  EXPECT_EQ(cache.bytes(), 0u);
  const int before = invalidations;
  const uint64_t racing = cache.BeginRead(kKey);
  cache.Invalidate(kKey);
  EXPECT_EQ(invalidations, before + 1);
  EXPECT_FALSE(cache.EndRead(kKey, racing, &v));
}

// A namespace kept out of the cache is still tracked: its values may be
// near-cached.
TEST(ReadCacheTest, AnUncacheableNamespaceIsStillTracked) {
  ReadCache cache(ReadCacheOptions{
      1 << 20, [](absl::string_view ns) { return ns != "ns"; }, nullptr});
  cache.SetCoherent(true);
  const StoredValue v = Value("one");
  EXPECT_TRUE(cache.EndRead(kKey, cache.BeginRead(kKey), &v));
  EXPECT_EQ(Cached(cache, kKey), "<none>");
}

}  // namespace
}  // namespace corral
