#include "server/core/log.h"

#include <openssl/hmac.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace corral {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

// The log key: set at startup (SetLogKeySecret) or drawn at first use.
std::once_flag g_log_key_once;
std::string* g_log_key = nullptr;

const std::string& LogKey() {
  std::call_once(g_log_key_once, [] {
    if (g_log_key != nullptr) return;
    std::string key(32, '\0');
    size_t got = 0;
    while (got < key.size()) {
      const ssize_t n = getrandom(key.data() + got, key.size() - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
      } else if (errno != EINTR) {
        std::abort();  // No kernel randomness: nothing safe to key with.
      }
    }
    g_log_key = new std::string(std::move(key));
  });
  return *g_log_key;
}

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load();
}

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warning" || text == "warn")
    *level = LogLevel::kWarning;
  else if (text == "error")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

absl::Status SetLogKeySecret(absl::string_view secret) {
  if (secret.size() < 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("the log key is ", secret.size(),
                     " bytes; use at least 16 (e.g. "
                     "`head -c 32 /dev/urandom | base64`)"));
  }
  bool set = false;
  std::call_once(g_log_key_once, [&] {
    g_log_key = new std::string(secret);
    set = true;
  });
  if (!set)
    return absl::FailedPreconditionError("the log key is already in use");
  return absl::OkStatus();
}

std::string LogKeyHash(const CacheKey& key) {
  const std::string& secret = LogKey();
  std::string message = key.ns;
  message.push_back('\xff');  // ("ab","c") and ("a","bc") hash apart.
  message.append(key.key);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
       digest, &length);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

void LogLine(LogLevel level, absl::string_view event,
             absl::string_view fields) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " ", LevelName(level), " ", event, fields.empty() ? "" : " ",
                   fields, "\n");
  // One write(2) per line keeps lines whole when threads log at once.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void LogKeyLine(LogLevel level, absl::string_view event, const CacheKey& key,
                absl::string_view fields) {
  if (key.ns.empty()) return LogLine(level, event, fields);
  LogLine(level, event,
          absl::StrCat("ns=", key.ns, " key=", LogKeyHash(key),
                       fields.empty() ? "" : " ", fields));
}

std::string CallerField(absl::string_view name, absl::string_view value) {
  if (value.empty()) return "";
  return absl::StrCat(" ", name, "=\"", absl::CEscape(value), "\"");
}

}  // namespace corral
