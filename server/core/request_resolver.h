// Resolves what a request names against the namespace settings
// (docs/ARCHITECTURE.md, section 3.5): the key's namespace, allowed and
// counted (NamespaceTracker::Use), and a Lookup's durations against the
// namespace defaults and the limits. Thread-safe: used on the loop and, for
// read-cache hits, on gRPC threads.
#ifndef CORRAL_SERVER_CORE_REQUEST_RESOLVER_H_
#define CORRAL_SERVER_CORE_REQUEST_RESOLVER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/namespace_config.h"
#include "server/core/namespace_tracker.h"
#include "server/core/types.h"

namespace corral {

// A Lookup's durations and namespace settings, resolved and checked.
struct ResolvedLookup {
  NamespaceSettings ns;
  absl::Duration ttl, wait_timeout, lease_ttl;
};

class RequestResolver {
 public:
  // Both must outlive this.
  RequestResolver(const NamespaceRegistry& registry, NamespaceTracker& tracker)
      : registry_(registry), tracker_(tracker) {}

  // A key's namespace settings, once the key is valid and its namespace
  // allowed (configured, or within the dynamic-namespace limit).
  absl::StatusOr<NamespaceSettings> Settings(const CacheKey& key) const;
  absl::StatusOr<NamespaceSettings> Settings(absl::string_view ns) const;
  // Settings, the worker_id label, and ttl, wait_timeout and lease_ttl.
  absl::StatusOr<ResolvedLookup> ResolveLookup(
      const LookupRequest& request) const;

  const LimitSettings& limits() const { return registry_.limits(); }

 private:
  const NamespaceRegistry& registry_;
  NamespaceTracker& tracker_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_REQUEST_RESOLVER_H_
