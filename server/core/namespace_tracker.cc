#include "server/core/namespace_tracker.h"

#include "absl/strings/str_cat.h"
#include "server/core/errors.h"
#include "server/core/log.h"

namespace corral {

NamespaceTracker::NamespaceTracker(const NamespaceRegistry& registry,
                                   const Clock& clock,
                                   CoordinatorObserver& observer)
    : registry_(registry), clock_(clock), observer_(observer) {}

absl::Status NamespaceTracker::Use(absl::string_view ns) {
  const absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    if (auto it = last_used_.find(ns); it != last_used_.end()) {
      it->second = now;
      return absl::OkStatus();
    }
    const bool listed = registry_.IsListed(ns);
    if (!listed) {
      const uint32_t limit = registry_.limits().max_dynamic_namespaces;
      if (dynamic_ >= limit) {
        return WithReason(
            absl::ResourceExhaustedError(absl::StrCat(
                "namespace \"", ns,
                "\" is not configured and this server already serves ", limit,
                " such namespaces (limits.max_dynamic_namespaces); list it in "
                "the "
                "config file or reuse a namespace")),
            kReasonTooManyNamespaces);
      }
      ++dynamic_;
    }
    last_used_.emplace(ns, now);
  }
  // Outside the lock: the observer may take its own.
  observer_.OnNamespaceFirstUse(ns);
  return absl::OkStatus();
}

std::vector<std::string> NamespaceTracker::EvictIdle(
    const std::function<bool(const std::string&)>& busy) {
  const absl::Time cutoff =
      clock_.Now() - registry_.limits().dynamic_namespace_idle;
  std::vector<std::string> evicted;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = last_used_.begin(); it != last_used_.end();) {
      auto current = it++;
      if (current->second > cutoff || registry_.IsListed(current->first) ||
          busy(current->first)) {
        continue;
      }
      evicted.push_back(current->first);
      last_used_.erase(current);
      --dynamic_;
    }
  }
  for (const std::string& ns : evicted) observer_.OnNamespaceEvicted(ns);
  if (!evicted.empty()) {
    CORRAL_LOG(LogLevel::kInfo, "namespaces_evicted", "count=", evicted.size(),
               " idle_for=",
               absl::FormatDuration(registry_.limits().dynamic_namespace_idle));
  }
  return evicted;
}

size_t NamespaceTracker::dynamic_count() const {
  absl::MutexLock lock(&mu_);
  return dynamic_;
}

}  // namespace corral
