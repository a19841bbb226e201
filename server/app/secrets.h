// corrald's secret files: the Redis password, the log key, and a warning for
// any secret file that other users of the host can read.
#ifndef CORRAL_SERVER_APP_SECRETS_H_
#define CORRAL_SERVER_APP_SECRETS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/redis_uri.h"

namespace corral::app {

// The contents of a secret file, without the trailing newline (or CRLF)
// that editors and `echo` add. INVALID_ARGUMENT when nothing is left.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// Why `path` is not corrald's alone: "every user" (world-readable) or "its
// group" (group-readable by a group other than corrald's effective one, as
// Kubernetes' fsGroup would be), with its mode; nullopt when it is private,
// or cannot be stat'ed (reading it reports that).
struct SecretFileExposure {
  std::string readable_by;
  unsigned mode = 0;  // Permission bits.
};
std::optional<SecretFileExposure> ExposureOf(const std::string& path);

// Logs a `secret_file_readable` warning when ExposureOf(path) finds one
// (not an error: a deploy may rely on it). `what` names the secret. Does
// nothing for an empty path.
void WarnIfShared(const std::string& path, absl::string_view what);

// Fills in the Redis password when the URI has none: from `password_file`,
// else $CORRAL_REDIS_PASSWORD. Never logs or echoes it. Errors are bad
// flags (a password given twice, an unreadable or empty file, an ACL user
// without a password), their messages corrald's exit-2 lines.
absl::Status ResolveRedisPassword(const std::string& password_file,
                                  RedisOptions& options);

// Keys the log's cache-key hashes with the key in `path`; with no path, logs
// that a random key of this process is used (a warning when `fleet`, since
// then replicas' logs cannot be correlated). Errors are bad flags.
absl::Status SetUpLogKey(const std::string& path, bool fleet);

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_SECRETS_H_
