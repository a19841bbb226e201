#include "server/core/validation.h"

#include "absl/strings/str_cat.h"
#include "server/core/errors.h"

namespace corral {

absl::Status ValidateNamespace(absl::string_view field, absl::string_view ns) {
  if (ns.empty()) return InvalidField(field, "must not be empty");
  if (ns.size() > kMaxNamespaceBytes) {
    return InvalidField(
        field, absl::StrCat("longer than ", kMaxNamespaceBytes, " characters"));
  }
  for (char c : ns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) {
      return InvalidField(field, "may only contain A-Z a-z 0-9 _ . -");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateKey(absl::string_view field, absl::string_view key) {
  if (key.empty()) return InvalidField(field, "must not be empty");
  if (key.size() > kMaxKeyBytes) {
    return InvalidField(
        field,
        absl::StrCat("is ", key.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateToken(absl::string_view field, absl::string_view token) {
  if (token.empty()) return InvalidField(field, "must not be empty");
  if (token.size() > kMaxTokenBytes) {
    return InvalidField(field, "is not a token corral issued (too long)");
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidField(field, "is not a token corral issued");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLabel(absl::string_view field, absl::string_view label) {
  if (label.size() > kMaxLabelBytes) {
    return InvalidField(field,
                        absl::StrCat("is ", label.size(), " bytes; at most ",
                                     kMaxLabelBytes, " are kept for the logs"));
  }
  for (unsigned char c : label) {
    if (c < 0x20 || c == 0x7f) {
      return InvalidField(field,
                          "must not hold control characters (it is logged)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> ResolveDuration(
    absl::string_view field, std::optional<absl::Duration> requested,
    absl::Duration fallback, DurationRule rule, absl::Duration max) {
  if (!requested.has_value()) return fallback;
  absl::Duration d = *requested;
  if (d < absl::ZeroDuration())
    return InvalidField(field, "must not be negative");
  if (rule == DurationRule::kPositive && d == absl::ZeroDuration()) {
    return InvalidField(field, "must be positive");
  }
  if (d > max) {
    return InvalidField(
        field, absl::StrCat("must be at most ", absl::FormatDuration(max)));
  }
  return d;
}

absl::Status ValidateKeyFields(const CacheKey& key) {
  if (absl::Status s = ValidateNamespace("namespace", key.ns); !s.ok())
    return s;
  return ValidateKey("key", key.key);
}

}  // namespace corral
