// Structured log lines: one line per event, `key=value` fields, on stderr.
//
//   2026-11-26T07:50:01.123Z INFO lease_revoked ns=plant_id key=9f2c41d07ab3e215 fencing_token=17
//
// A cache key is logged only as its KeyHash, never raw, and values never.
#ifndef CORRAL_SERVER_CORE_LOG_H_
#define CORRAL_SERVER_CORE_LOG_H_

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

// Writes one line atomically. `fields` is already "k=v k=v". Thread-safe.
void LogLine(LogLevel level, absl::string_view event, absl::string_view fields);
// The same with ns= and key= (hashed) first; an empty key.ns omits both.
void LogKeyLine(LogLevel level, absl::string_view event, const CacheKey& key,
                absl::string_view fields);

}  // namespace corral

#define CORRAL_LOG(level, event, ...)                                   \
  do {                                                                  \
    if (::corral::LogEnabled(level))                                    \
      ::corral::LogLine(level, event, ::absl::StrCat(__VA_ARGS__));     \
  } while (0)

// An event about a key, at info level; LOG_DEBUG_EVENT for per-call noise.
#define LOG_EVENT(event, key, ...)                                          \
  do {                                                                      \
    if (::corral::LogEnabled(::corral::LogLevel::kInfo))                    \
      ::corral::LogKeyLine(::corral::LogLevel::kInfo, event, key,           \
                           ::absl::StrCat(__VA_ARGS__));                    \
  } while (0)
#define LOG_DEBUG_EVENT(event, key, ...)                                    \
  do {                                                                      \
    if (::corral::LogEnabled(::corral::LogLevel::kDebug))                   \
      ::corral::LogKeyLine(::corral::LogLevel::kDebug, event, key,          \
                           ::absl::StrCat(__VA_ARGS__));                    \
  } while (0)

#endif  // CORRAL_SERVER_CORE_LOG_H_
