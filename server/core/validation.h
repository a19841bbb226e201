// Input rules shared by every RPC. Errors are INVALID_ARGUMENT naming the
// field, with corral-reason: invalid-argument.
#ifndef CORRAL_SERVER_CORE_VALIDATION_H_
#define CORRAL_SERVER_CORE_VALIDATION_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"

namespace corral {

inline constexpr size_t kMaxNamespaceBytes = 128;
inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxTokenBytes = 128;
inline constexpr size_t kMaxLabelBytes = 256;

// [A-Za-z0-9_.-]{1,128}
absl::Status ValidateNamespace(absl::string_view field, absl::string_view ns);
// 1..1024 arbitrary bytes.
absl::Status ValidateKey(absl::string_view field, absl::string_view key);
// A lock token as corral issues them: 1..128 printable ASCII characters.
absl::Status ValidateToken(absl::string_view field, absl::string_view token);

// A caller's name for itself, for logs (Lookup.worker_id,
// AcquireLockRequest.owner): 0..256 bytes, none of them a control character.
absl::Status ValidateLabel(absl::string_view field, absl::string_view label);

// Validates namespace and key, the first thing every request checks.
absl::Status ValidateKeyFields(const CacheKey& key);

// How a request may spell a duration.
enum class DurationRule {
  kPositive,     // > 0
  kNonNegative,  // >= 0 (0 means "try once", "do not wait")
};

// Resolves an optional request duration: nullopt (field unset) gives
// `fallback`; a set one must satisfy `rule` and be at most `max`.
absl::StatusOr<absl::Duration> ResolveDuration(
    absl::string_view field, std::optional<absl::Duration> requested,
    absl::Duration fallback, DurationRule rule, absl::Duration max);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_VALIDATION_H_
