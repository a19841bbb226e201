// Per-namespace settings, resolved from built-in defaults, the config file's
// `defaults` and its per-namespace entries (in that order).
#ifndef CORRAL_SERVER_CORE_NAMESPACE_CONFIG_H_
#define CORRAL_SERVER_CORE_NAMESPACE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "corral/v1/config.pb.h"

namespace corral {

enum class WaitTimeoutPolicy { kComputeUnlocked, kFail, kHedge };
enum class StoreUnavailablePolicy { kCoordinateLocally, kFail };

struct BreakerSettings {
  uint32_t consecutive_failures = 5;
  double failure_rate = 0.5;
  uint32_t minimum_calls = 20;
  absl::Duration window = absl::Seconds(60);
  absl::Duration open_duration = absl::Seconds(60);
  uint32_t half_open_probes = 1;
  std::optional<absl::Duration> slow_call_duration;
  std::optional<double> slow_call_rate;
};

// A namespace's compute budget (ComputeBudget in config.proto). Limits of 0
// are unlimited; a budget with neither limit is off.
struct BudgetSettings {
  uint32_t max_in_flight = 0;
  double rate_per_second = 0;
  uint32_t burst = 1;
  // false: shadow mode (over-budget grants are counted, not refused).
  bool enforce = true;
  bool enabled() const { return max_in_flight > 0 || rate_per_second > 0; }
};

struct NamespaceSettings {
  std::string name;
  absl::Duration ttl = absl::Hours(24);
  absl::Duration wait_timeout = absl::Seconds(15);
  absl::Duration lease_ttl = absl::Seconds(30);
  absl::Duration max_compute_time = absl::Seconds(120);
  WaitTimeoutPolicy on_wait_timeout = WaitTimeoutPolicy::kHedge;
  // kHedge: duplicate computes per key per lease start, fleet-wide.
  uint32_t max_hedges = 1;
  BudgetSettings compute_budget;
  StoreUnavailablePolicy on_store_unavailable =
      StoreUnavailablePolicy::kCoordinateLocally;
  BreakerSettings breaker;
  uint64_t max_value_bytes = 1 << 20;
  // After a value's TTL: kept for stale-while-revalidate and breaker-open
  // serving.
  absl::Duration stale_window = absl::ZeroDuration();
  // XFetch's beta: how eagerly a hit turns into an early refresh (0: never).
  double early_refresh_beta = 1.0;
  // How long an upstream failure is remembered (0: not at all).
  absl::Duration negative_ttl = absl::ZeroDuration();
  // Hits may come from the replica's read cache.
  bool read_cache = true;
  // Clients may keep values in their near cache (with or without the read
  // cache: the store tracks reads for it either way).
  bool near_cache = true;
};

struct LimitSettings {
  uint32_t max_waiters = 100000;
  uint32_t max_waiters_per_key = 20000;
  uint32_t max_concurrent_streams = 10000;
  absl::Duration drain_timeout = absl::Seconds(10);
  absl::Duration max_ttl = absl::Hours(24 * 7);
  absl::Duration max_wait = absl::Hours(1);
  uint64_t memory_quota_bytes = 2ull << 30;
  // Namespaces not listed in the config file that one replica keeps state
  // for at once; more are refused (RESOURCE_EXHAUSTED too-many-namespaces).
  uint32_t max_dynamic_namespaces = 1000;
  // An unlisted namespace unused this long (and with nothing in flight) is
  // forgotten: its breaker entry and metric series go.
  absl::Duration dynamic_namespace_idle = absl::Minutes(10);
};

// Immutable after construction; safe to share across threads.
class NamespaceRegistry {
 public:
  // Validates `config` (names, ranges, duplicates) and resolves every
  // namespace. Errors name the offending field.
  static absl::StatusOr<NamespaceRegistry> Create(
      const corral::v1::ServerConfig& config);

  // The settings for `ns`: the listed namespace, or the defaults under that
  // name. NOT_FOUND when unknown namespaces are forbidden. `ns` must already
  // be a valid namespace name.
  absl::StatusOr<NamespaceSettings> Find(absl::string_view ns) const;
  // Whether values of `ns` may enter a replica's read cache (its
  // read_cache setting), without copying its settings: the read cache asks
  // on every store read.
  bool UsesReadCache(absl::string_view ns) const;
  // Whether clients may near-cache values of `ns` (its near_cache
  // setting), and its early_refresh_beta; no copy (every near-cache Get
  // asks). False for an unknown namespace that is forbidden.
  bool UsesNearCache(absl::string_view ns, double* early_refresh_beta) const;
  // Whether any namespace (a listed one, or the defaults when unlisted
  // namespaces are allowed) may be near-cached: if none may, corrald
  // neither tracks reads for the near cache nor opens NearCache streams.
  bool AnyNearCache() const;
  // Whether `ns` is listed in the config file (not a dynamic namespace).
  bool IsListed(absl::string_view ns) const { return namespaces_.contains(ns); }

  const LimitSettings& limits() const { return limits_; }
  // The largest max_value_bytes of any namespace (message size limits).
  uint64_t LargestValueBytes() const;
  const NamespaceSettings& defaults() const { return defaults_; }

 private:
  NamespaceSettings defaults_;
  absl::flat_hash_map<std::string, NamespaceSettings> namespaces_;
  bool forbid_unknown_ = false;
  LimitSettings limits_;
};

// Reads a ServerConfig from a textproto (.textproto/.txtpb/.pbtxt/.txt) or
// JSON (.json) file. Errors say where the file is wrong.
absl::StatusOr<corral::v1::ServerConfig> LoadServerConfig(
    const std::string& path);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_NAMESPACE_CONFIG_H_
