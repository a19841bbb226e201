// Structured log lines: one line per event, `key=value` fields, on stderr.
//
//   2026-11-26T07:50:01.123Z INFO lease_revoked ns=plant_id
//   key=9f2c41d07ab3e215 fencing_token=17
//
// A cache key is logged only as its LogKeyHash, never raw, and values never.
// That hash is keyed (HMAC-SHA-256 under the log key), so that keys made of
// guessable things (user ids, e-mail addresses) cannot be recovered from the
// logs by hashing candidates; replicas that share the log key log the same
// hash for the same key, and nobody without it can compute one.
#ifndef CORRAL_SERVER_CORE_LOG_H_
#define CORRAL_SERVER_CORE_LOG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/core/cache_key.h"

namespace corral {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide threshold (set once from --log_level at startup).
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Parses "debug", "info", "warning", "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// The key under which log lines hash cache keys. Set once at startup,
// before any line is logged; unset, a random key of this process is used
// (its lines then do not correlate with other replicas'). Fails on a key
// shorter than 16 bytes.
absl::Status SetLogKeySecret(absl::string_view secret);
// 16 hex digits: HMAC-SHA-256(log key, ns 0xff key), truncated. Thread-safe.
std::string LogKeyHash(const CacheKey& key);

// Writes one line atomically. `fields` is already "k=v k=v". Thread-safe.
void LogLine(LogLevel level, absl::string_view event, absl::string_view fields);
// The same with ns= and key= (hashed) first; an empty key.ns omits both.
void LogKeyLine(LogLevel level, absl::string_view event, const CacheKey& key,
                absl::string_view fields);

// ` name="value"` for a log line (a caller's worker_id or lock owner,
// already validated: no control characters), or nothing when it is empty.
std::string CallerField(absl::string_view name, absl::string_view value);

}  // namespace corral

#define CORRAL_LOG(level, event, ...)                               \
  do {                                                              \
    if (::corral::LogEnabled(level))                                \
      ::corral::LogLine(level, event, ::absl::StrCat(__VA_ARGS__)); \
  } while (0)

// An event about a key, at info level; LOG_DEBUG_EVENT for per-call noise.
#define LOG_EVENT(event, key, ...)                                \
  do {                                                            \
    if (::corral::LogEnabled(::corral::LogLevel::kInfo))          \
      ::corral::LogKeyLine(::corral::LogLevel::kInfo, event, key, \
                           ::absl::StrCat(__VA_ARGS__));          \
  } while (0)
#define LOG_DEBUG_EVENT(event, key, ...)                           \
  do {                                                             \
    if (::corral::LogEnabled(::corral::LogLevel::kDebug))          \
      ::corral::LogKeyLine(::corral::LogLevel::kDebug, event, key, \
                           ::absl::StrCat(__VA_ARGS__));           \
  } while (0)

#endif  // CORRAL_SERVER_CORE_LOG_H_
