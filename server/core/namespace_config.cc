#include "server/core/namespace_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "server/core/file.h"
#include "server/core/status_macros.h"
#include "server/core/validation.h"

namespace corral {
namespace {

using corral::v1::BreakerConfig;
using corral::v1::NamespaceConfig;
using corral::v1::OnStoreUnavailable;
using corral::v1::OnWaitTimeout;

absl::Status ConfigError(absl::string_view where, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("config: ", where, ": ", problem));
}

// Overwrites `*out` with the duration when the field is set, after checking
// it lies in (0, max] (or [0, max] when zero is allowed).
absl::Status MergeDuration(const std::string& where, bool has,
                           const google::protobuf::Duration& d, bool allow_zero,
                           absl::Duration max, absl::Duration* out) {
  if (!has) return absl::OkStatus();
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 ||
      (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return ConfigError(where, "not a valid duration");
  }
  absl::Duration v = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (v < absl::ZeroDuration() || (!allow_zero && v == absl::ZeroDuration())) {
    return ConfigError(
        where, allow_zero ? "must not be negative" : "must be positive");
  }
  if (v > max) {
    return ConfigError(
        where, absl::StrCat("must be at most ", absl::FormatDuration(max)));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status MergeBreaker(const std::string& where, const BreakerConfig& in,
                          BreakerSettings* out) {
  const absl::Duration kDay = absl::Hours(24);
  if (in.has_consecutive_failures())
    out->consecutive_failures = in.consecutive_failures();
  if (in.has_failure_rate()) {
    if (!(in.failure_rate() > 0 && in.failure_rate() <= 1)) {
      return ConfigError(where + ".failure_rate", "must be in (0, 1]");
    }
    out->failure_rate = in.failure_rate();
  }
  if (in.has_minimum_calls()) {
    if (in.minimum_calls() == 0)
      return ConfigError(where + ".minimum_calls", "must be positive");
    out->minimum_calls = in.minimum_calls();
  }
  RETURN_IF_ERROR(MergeDuration(where + ".window", in.has_window(), in.window(),
                                false, kDay, &out->window));
  RETURN_IF_ERROR(MergeDuration(where + ".open_duration",
                                in.has_open_duration(), in.open_duration(),
                                false, kDay, &out->open_duration));
  if (in.has_half_open_probes()) {
    if (in.half_open_probes() == 0) {
      return ConfigError(where + ".half_open_probes", "must be positive");
    }
    out->half_open_probes = in.half_open_probes();
  }
  if (in.has_slow_call_duration()) {
    absl::Duration d;
    RETURN_IF_ERROR(MergeDuration(where + ".slow_call_duration", true,
                                  in.slow_call_duration(), false, kDay, &d));
    out->slow_call_duration = d;
  }
  if (in.has_slow_call_rate()) {
    if (!(in.slow_call_rate() > 0 && in.slow_call_rate() <= 1)) {
      return ConfigError(where + ".slow_call_rate", "must be in (0, 1]");
    }
    out->slow_call_rate = in.slow_call_rate();
  }
  return absl::OkStatus();
}

absl::Status MergeBudget(const std::string& where,
                         const corral::v1::ComputeBudget& in,
                         BudgetSettings* out) {
  if (in.has_max_in_flight()) out->max_in_flight = in.max_in_flight();
  if (in.has_rate_per_second()) {
    // At most a million a second: the rate's period is kept in whole
    // microseconds.
    if (!(in.rate_per_second() >= 0 && in.rate_per_second() <= 1e6)) {
      return ConfigError(where + ".rate_per_second",
                         "must be in [0, 1000000] (0: unlimited)");
    }
    out->rate_per_second = in.rate_per_second();
  }
  if (in.has_burst()) {
    if (in.burst() == 0 || in.burst() > 1'000'000) {
      return ConfigError(where + ".burst", "must be in 1..1000000");
    }
    out->burst = in.burst();
  }
  if (in.has_enforce()) out->enforce = in.enforce();
  return absl::OkStatus();
}

absl::Status MergeNamespace(const std::string& where, const NamespaceConfig& in,
                            const LimitSettings& limits,
                            NamespaceSettings* out) {
  RETURN_IF_ERROR(MergeDuration(where + ".ttl", in.has_ttl(), in.ttl(), false,
                                limits.max_ttl, &out->ttl));
  RETURN_IF_ERROR(MergeDuration(where + ".wait_timeout", in.has_wait_timeout(),
                                in.wait_timeout(), true, limits.max_wait,
                                &out->wait_timeout));
  RETURN_IF_ERROR(MergeDuration(where + ".lease_ttl", in.has_lease_ttl(),
                                in.lease_ttl(), false, limits.max_wait,
                                &out->lease_ttl));
  RETURN_IF_ERROR(MergeDuration(
      where + ".max_compute_time", in.has_max_compute_time(),
      in.max_compute_time(), false, limits.max_wait, &out->max_compute_time));
  RETURN_IF_ERROR(MergeDuration(where + ".stale_window", in.has_stale_window(),
                                in.stale_window(), true, limits.max_ttl,
                                &out->stale_window));
  RETURN_IF_ERROR(MergeDuration(where + ".negative_ttl", in.has_negative_ttl(),
                                in.negative_ttl(), true, limits.max_ttl,
                                &out->negative_ttl));
  if (in.has_read_cache()) out->read_cache = in.read_cache();
  if (in.has_near_cache()) out->near_cache = in.near_cache();
  if (in.has_early_refresh_beta()) {
    if (!(in.early_refresh_beta() >= 0 && in.early_refresh_beta() <= 100)) {
      return ConfigError(where + ".early_refresh_beta",
                         "must be in [0, 100] (0 disables)");
    }
    out->early_refresh_beta = in.early_refresh_beta();
  }
  switch (in.on_wait_timeout()) {
    case OnWaitTimeout::COMPUTE_UNLOCKED:
      out->on_wait_timeout = WaitTimeoutPolicy::kComputeUnlocked;
      break;
    case OnWaitTimeout::FAIL:
      out->on_wait_timeout = WaitTimeoutPolicy::kFail;
      break;
    case OnWaitTimeout::HEDGE:
      out->on_wait_timeout = WaitTimeoutPolicy::kHedge;
      break;
    default:
      break;
  }
  switch (in.on_store_unavailable()) {
    case OnStoreUnavailable::COORDINATE_LOCALLY:
      out->on_store_unavailable = StoreUnavailablePolicy::kCoordinateLocally;
      break;
    case OnStoreUnavailable::FAIL:
      out->on_store_unavailable = StoreUnavailablePolicy::kFail;
      break;
    default:
      break;
  }
  if (in.has_max_value_bytes()) {
    constexpr uint64_t kCeiling = 64ull << 20;
    if (in.max_value_bytes() == 0 || in.max_value_bytes() > kCeiling) {
      return ConfigError(where + ".max_value_bytes",
                         "must be in 1..67108864 (64 MiB)");
    }
    out->max_value_bytes = in.max_value_bytes();
  }
  if (in.has_max_hedges()) {
    if (in.max_hedges() > 100) {
      return ConfigError(where + ".max_hedges", "must be in 0..100");
    }
    out->max_hedges = in.max_hedges();
  }
  if (in.has_compute_budget())
    RETURN_IF_ERROR(MergeBudget(where + ".compute_budget", in.compute_budget(),
                                &out->compute_budget));
  if (in.has_breaker())
    RETURN_IF_ERROR(
        MergeBreaker(where + ".breaker", in.breaker(), &out->breaker));
  return absl::OkStatus();
}

absl::Status MergeLimits(const corral::v1::Limits& in, LimitSettings* out) {
  const absl::Duration kYear = absl::Hours(24 * 366);
  if (in.has_max_waiters()) out->max_waiters = in.max_waiters();
  if (in.has_max_waiters_per_key())
    out->max_waiters_per_key = in.max_waiters_per_key();
  if (in.has_max_concurrent_streams())
    out->max_concurrent_streams = in.max_concurrent_streams();
  if (in.has_max_dynamic_namespaces())
    out->max_dynamic_namespaces = in.max_dynamic_namespaces();
  if (in.has_memory_quota_bytes()) {
    if (in.memory_quota_bytes() < (16u << 20)) {
      return ConfigError("limits.memory_quota_bytes",
                         "must be at least 16 MiB");
    }
    out->memory_quota_bytes = in.memory_quota_bytes();
  }
  RETURN_IF_ERROR(MergeDuration("limits.drain_timeout", in.has_drain_timeout(),
                                in.drain_timeout(), true, absl::Hours(1),
                                &out->drain_timeout));
  RETURN_IF_ERROR(MergeDuration("limits.max_ttl", in.has_max_ttl(),
                                in.max_ttl(), false, kYear, &out->max_ttl));
  RETURN_IF_ERROR(MergeDuration("limits.max_wait", in.has_max_wait(),
                                in.max_wait(), false, kYear, &out->max_wait));
  RETURN_IF_ERROR(MergeDuration(
      "limits.dynamic_namespace_idle", in.has_dynamic_namespace_idle(),
      in.dynamic_namespace_idle(), false, kYear, &out->dynamic_namespace_idle));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NamespaceRegistry> NamespaceRegistry::Create(
    const corral::v1::ServerConfig& config) {
  NamespaceRegistry registry;
  registry.forbid_unknown_ = config.forbid_unknown_namespaces();
  RETURN_IF_ERROR(MergeLimits(config.limits(), &registry.limits_));
  RETURN_IF_ERROR(MergeNamespace("defaults", config.defaults(),
                                 registry.limits_, &registry.defaults_));
  for (int i = 0; i < config.namespaces_size(); ++i) {
    const NamespaceConfig& ns = config.namespaces(i);
    std::string where = absl::StrCat("namespaces[", i, "]");
    absl::Status name_ok = ValidateNamespace(where + ".name", ns.name());
    if (!name_ok.ok()) return ConfigError(where, name_ok.message());
    if (registry.namespaces_.contains(ns.name())) {
      return ConfigError(where + ".name",
                         absl::StrCat("\"", ns.name(), "\" is listed twice"));
    }
    NamespaceSettings settings = registry.defaults_;
    settings.name = ns.name();
    RETURN_IF_ERROR(MergeNamespace(absl::StrCat("namespaces[", ns.name(), "]"),
                                   ns, registry.limits_, &settings));
    registry.namespaces_.emplace(ns.name(), std::move(settings));
  }
  return registry;
}

absl::StatusOr<NamespaceSettings> NamespaceRegistry::Find(
    absl::string_view ns) const {
  auto it = namespaces_.find(ns);
  if (it != namespaces_.end()) return it->second;
  if (forbid_unknown_) {
    return absl::NotFoundError(absl::StrCat(
        "namespace \"", ns, "\" is not configured on this server"));
  }
  NamespaceSettings settings = defaults_;
  settings.name = std::string(ns);
  return settings;
}

bool NamespaceRegistry::UsesReadCache(absl::string_view ns) const {
  auto it = namespaces_.find(ns);
  if (it != namespaces_.end()) return it->second.read_cache;
  return !forbid_unknown_ && defaults_.read_cache;
}

bool NamespaceRegistry::UsesNearCache(absl::string_view ns,
                                      double* early_refresh_beta) const {
  auto it = namespaces_.find(ns);
  const NamespaceSettings* settings = nullptr;
  if (it != namespaces_.end()) {
    settings = &it->second;
  } else if (!forbid_unknown_) {
    settings = &defaults_;
  } else {
    return false;
  }
  *early_refresh_beta = settings->early_refresh_beta;
  return settings->near_cache;
}

bool NamespaceRegistry::AnyNearCache() const {
  if (!forbid_unknown_ && defaults_.near_cache) return true;
  for (const auto& [name, settings] : namespaces_) {
    if (settings.near_cache) return true;
  }
  return false;
}

uint64_t NamespaceRegistry::LargestValueBytes() const {
  uint64_t largest = defaults_.max_value_bytes;
  for (const auto& [name, settings] : namespaces_) {
    largest = std::max(largest, settings.max_value_bytes);
  }
  return largest;
}

namespace {
// Collects TextFormat parse errors with line and column.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty())
      first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ",
                            message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};
}  // namespace

absl::StatusOr<corral::v1::ServerConfig> LoadServerConfig(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok())
    return absl::NotFoundError(absl::StrCat("config: cannot open ", path));
  corral::v1::ServerConfig config;
  if (absl::EndsWith(path, ".json")) {
    auto status = google::protobuf::util::JsonStringToMessage(*text, &config);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config: ", path, ": ", status.ToString()));
    }
    return config;
  }
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(*text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", path, ": ", errors.first()));
  }
  return config;
}

}  // namespace corral
