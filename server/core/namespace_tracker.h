// Which namespaces this replica has state for, and a bound on the ones that
// callers bring (namespaces not listed in the config file).
//
// Every namespace a caller names costs this replica Prometheus series and a
// breaker entry (ticked every second, reloaded on every reconnect). Listed
// namespaces are bounded by the config file; dynamic ones are bounded here
// (limits.max_dynamic_namespaces) and forgotten once idle, so a caller that
// invents names cannot grow a replica's memory or its /metrics without
// bound.
//
// Threading: thread-safe (Use runs on gRPC threads for read-cache hits).
#ifndef CORRAL_SERVER_CORE_NAMESPACE_TRACKER_H_
#define CORRAL_SERVER_CORE_NAMESPACE_TRACKER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/clock.h"
#include "server/core/namespace_config.h"
#include "server/core/observer.h"

namespace corral {

class NamespaceTracker {
 public:
  // All references must outlive the tracker.
  NamespaceTracker(const NamespaceRegistry& registry, const Clock& clock,
                   CoordinatorObserver& observer);

  // A call names `ns` (already a valid, allowed name). OK, or
  // RESOURCE_EXHAUSTED too-many-namespaces when `ns` is a new dynamic
  // namespace and the limit is reached. The first use of any namespace is
  // reported to the observer (OnNamespaceFirstUse).
  absl::Status Use(absl::string_view ns);

  // Forgets the dynamic namespaces unused for limits.dynamic_namespace_idle
  // for which `busy` says false, reports each (OnNamespaceEvicted) and
  // answers them. The caller drops its own state for them.
  std::vector<std::string> EvictIdle(
      const std::function<bool(const std::string&)>& busy);

  // Dynamic namespaces currently tracked.
  size_t dynamic_count() const;

 private:
  const NamespaceRegistry& registry_;
  const Clock& clock_;
  CoordinatorObserver& observer_;
  mutable absl::Mutex mu_;
  // Last use of each namespace seen; listed ones are never evicted.
  absl::flat_hash_map<std::string, absl::Time> last_used_ ABSL_GUARDED_BY(mu_);
  size_t dynamic_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_NAMESPACE_TRACKER_H_
