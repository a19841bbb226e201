// The Coordinator: hits answered from the store's read cache on the caller's
// thread (server/core/read_cache.h). The loop, the flight and the store are
// not involved; everything here is const or thread-safe.
#include <memory>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "server/core/coordinator.h"
#include "server/core/early_refresh.h"
#include "server/core/value_view.h"

namespace corral {

namespace {
// XFetch's draw for callers off the loop thread (rng_ is the loop's).
double DrawOpenClosed() {
  thread_local absl::BitGen gen;
  return absl::Uniform<double>(absl::IntervalOpenClosed, gen, 0.0, 1.0);
}
}  // namespace

std::shared_ptr<const CachedValue> Coordinator::FreshCached(
    const CacheKey& key) const {
  const ReadCache* cache = store_.read_cache();
  if (cache == nullptr) return nullptr;
  std::shared_ptr<const CachedValue> entry = cache->Find(key);
  if (entry == nullptr || entry->meta.expires_at <= clock_.Now())
    return nullptr;
  return entry;
}

bool Coordinator::GetFromReadCache(const CacheKey& key,
                                   Callback<GetResult>& done) {
  // Only keys that passed Settings() were ever read into the cache, but
  // their namespace may have been evicted since: it is used again (or, past
  // the limit, refused on the loop's path).
  std::shared_ptr<const CachedValue> hit = FreshCached(key);
  if (hit == nullptr || !namespaces_.Use(key.ns).ok()) return false;
  observer_.OnReadCacheHit(key.ns);
  GetResult got;
  got.found = true;
  got.value = ViewOf(hit->meta, Source::kCache, clock_.Now(), hit->bytes);
  done(std::move(got));
  return true;
}

bool Coordinator::ServeFromReadCache(const LookupRequest& request,
                                     ComputeSink& sink,
                                     absl::Time* refresh_due_for) {
  std::shared_ptr<const CachedValue> hit = FreshCached(request.key);
  if (hit == nullptr) return false;
  // DoLookup's checks: a lookup it would refuse gets its error there.
  auto resolved = resolver_.ResolveLookup(request);
  if (!resolved.ok()) return false;
  const double u =
      early_refresh_draw_ ? early_refresh_draw_() : DrawOpenClosed();
  if (EarlyRefreshDue(clock_.Now(), resolved->ns.early_refresh_beta, hit->meta,
                      u)) {
    *refresh_due_for = hit->meta.expires_at;
    return false;
  }
  observer_.OnLookup(request.key.ns, LookupStage::kInitial, true);
  observer_.OnReadCacheHit(request.key.ns);
  sink.SendValue(ViewOf(hit->meta, Source::kCache, clock_.Now(), hit->bytes));
  return true;
}

}  // namespace corral
