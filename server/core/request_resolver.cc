#include "server/core/request_resolver.h"

#include <utility>

#include "server/core/errors.h"
#include "server/core/status_macros.h"
#include "server/core/validation.h"

namespace corral {

absl::StatusOr<NamespaceSettings> RequestResolver::Settings(
    const CacheKey& key) const {
  if (absl::Status s = ValidateKeyFields(key); !s.ok()) return s;
  return Settings(key.ns);
}

absl::StatusOr<NamespaceSettings> RequestResolver::Settings(
    absl::string_view ns) const {
  auto settings = registry_.Find(ns);
  if (!settings.ok())
    return WithReason(settings.status(), kReasonUnknownNamespace);
  if (absl::Status used = tracker_.Use(ns); !used.ok()) return used;
  return settings;
}

absl::StatusOr<ResolvedLookup> RequestResolver::ResolveLookup(
    const LookupRequest& request) const {
  auto settings = Settings(request.key);
  if (!settings.ok()) return settings.status();
  RETURN_IF_ERROR(ValidateLabel("lookup.worker_id", request.worker_id));
  const LimitSettings& limits = registry_.limits();
  auto ttl = ResolveDuration("lookup.ttl", request.ttl, settings->ttl,
                             DurationRule::kPositive, limits.max_ttl);
  if (!ttl.ok()) return ttl.status();
  auto wait = ResolveDuration("lookup.wait_timeout", request.wait_timeout,
                              settings->wait_timeout,
                              DurationRule::kNonNegative, limits.max_wait);
  if (!wait.ok()) return wait.status();
  auto lease_ttl = ResolveDuration("lookup.lease_ttl", request.lease_ttl,
                                   settings->lease_ttl, DurationRule::kPositive,
                                   limits.max_wait);
  if (!lease_ttl.ok()) return lease_ttl.status();
  return ResolvedLookup{*std::move(settings), *ttl, *wait, *lease_ttl};
}

}  // namespace corral
