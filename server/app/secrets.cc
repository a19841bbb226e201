#include "server/app/secrets.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/file.h"
#include "server/core/log.h"

namespace corral::app {

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) return contents.status();
  std::string secret = *std::move(contents);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return secret;
}

std::optional<SecretFileExposure> ExposureOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  // A group that is corrald's own (Kubernetes' fsGroup) shares nothing.
  const bool group = (st.st_mode & S_IRGRP) != 0 && st.st_gid != ::getegid();
  if (!group && (st.st_mode & S_IROTH) == 0) return std::nullopt;
  return SecretFileExposure{(st.st_mode & S_IROTH) ? "every user" : "its group",
                            static_cast<unsigned>(st.st_mode & 07777)};
}

void WarnIfShared(const std::string& path, absl::string_view what) {
  if (path.empty()) return;
  std::optional<SecretFileExposure> exposure = ExposureOf(path);
  if (!exposure.has_value()) return;
  CORRAL_LOG(LogLevel::kWarning, "secret_file_readable", "file=", path,
             " holds=", what, absl::StrFormat(" mode=%04o", exposure->mode),
             " WARNING: readable by ", exposure->readable_by,
             " of this host; chmod 600 it (owned by corrald's user)");
}

absl::Status ResolveRedisPassword(const std::string& password_file,
                                  RedisOptions& options) {
  if (!options.password.empty()) {
    if (!password_file.empty()) {
      return absl::InvalidArgumentError(
          "--redis_password_file: the --redis URI already holds a password; "
          "give it once");
    }
    return absl::OkStatus();
  }
  if (!password_file.empty()) {
    absl::StatusOr<std::string> password = ReadSecretFile(password_file);
    if (!password.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--redis_password_file: ", password.status().message()));
    }
    options.password = *std::move(password);
    WarnIfShared(password_file, "redis_password");
  } else if (const char* pw = std::getenv("CORRAL_REDIS_PASSWORD");
             pw != nullptr && *pw) {
    options.password = pw;
  }
  if (!options.user.empty() && options.password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis names the ACL user \"", options.user,
                     "\" but no password: put it in --redis_password_file or "
                     "$CORRAL_REDIS_PASSWORD"));
  }
  return absl::OkStatus();
}

absl::Status SetUpLogKey(const std::string& path, bool fleet) {
  if (path.empty()) {
    CORRAL_LOG(
        fleet ? LogLevel::kWarning : LogLevel::kInfo, "log_key_random",
        "key hashes in the logs are keyed with a random key of this process: "
        "they match no other replica's (nor this one's after a restart); give "
        "every replica the same --log_key_file to correlate them");
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> key = ReadSecretFile(path);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_key_file: ", key.status().message()));
  }
  if (absl::Status set = SetLogKeySecret(*key); !set.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_key_file: ", path, ": ", set.message()));
  }
  WarnIfShared(path, "log_key");
  return absl::OkStatus();
}

}  // namespace corral::app
