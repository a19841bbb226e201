// What corral keeps in Redis and the Lua that changes it: the key layout,
// one script per atomic step, and the pub/sub message those scripts
// publish (encoded in Lua, decoded here, nowhere else).
//
// Layout of one cache item; every key shares the hash tag, so one item lives
// in one hash slot (Redis Cluster ready):
//   corral:{<KeyHash>}:<ns>:<raw key bytes>:v  HASH v=value s=stored_at_ms
//                                              e=expires_at_ms d=compute_ms;
//                                              PEXPIREAT e + stale window
//   ...:l  STRING lock token, PX lease ttl
//   ...:f  STRING last fencing token (kept a few days)
//   ...:n  STRING failed-until ms of a remembered upstream failure, PX the
//          namespace's negative_ttl
//   ...:c  pub/sub channel of the item
//   ...:h  HASH t=lock token c=hedges claimed under it (HEDGE policy),
//          PX the namespace's max_compute_time
// A namespace's compute budget, under the namespace's hash tag:
//   corral:budget:{<ns>}:s  ZSET in-flight slots, score = expiry (us)
//   corral:budget:{<ns>}:r  STRING the GCRA's TAT (us), PX until it passes
// Namespaces are [A-Za-z0-9_.-], so "<ns>:" cannot be confused with the key
// bytes that follow; the hash tag covers both anyway.
//
// Time inside the scripts that write comes from Redis TIME: one clock for
// the fleet. The get script alone takes corrald's clock (ARGV[1]) to decide
// whether a value is fresh enough to answer without the failure record.
#ifndef CORRAL_SERVER_STORE_REDIS_SCRIPTS_H_
#define CORRAL_SERVER_STORE_REDIS_SCRIPTS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"
#include "server/core/store.h"
#include "server/store/redis_connection.h"

namespace corral {

struct RedisItemKeys {
  std::string value;
  std::string lock;
  std::string fence;
  std::string channel;
  std::string failure;
  std::string hedges;
};
RedisItemKeys RedisKeysFor(const CacheKey& key);
std::string RedisChannelFor(const CacheKey& key);
// A script that answers 1 when this connection's user may turn on
// client-side caching with RESP2 invalidations (CLIENT ID, CLIENT TRACKING,
// SUBSCRIBE __redis__:invalidate), 0 otherwise (or before Redis 7, which
// lacks redis.acl_check_cmd). Asking first keeps a refused SUBSCRIBE from
// dropping the subscriber connection, and refusals out of the ACL LOG.
absl::string_view RedisTrackingProbeSource();

// The cache key whose value key (RedisItemKeys::value) is `redis_key`;
// nullopt for any other Redis key (locks, fences, breakers, strangers').
std::optional<CacheKey> CacheKeyOfValueKey(absl::string_view redis_key);

enum class RedisScript {
  // KEYS: value, failure. ARGV: now_ms. Answers {value, stored_ms,
  // expires_ms, compute_ms, failed_until_ms}, any of them nil;
  // failed_until_ms is nil when the value is fresh at now_ms (not read).
  kGet,
  // KEYS: value, lock, failure. ARGV: value, ttl_ms, stale_ms, lock token
  // ("" = unfenced), release ("1"/"0"), only_if_absent ("1"/"0"), channel,
  // compute_ms. Answers 1 stored / 0 refused; publishes a fill message and
  // forgets a remembered failure when stored.
  kPut,
  // KEYS: value, failure. Answers 1 if a value existed, else 0.
  kDelete,
  // KEYS: failure. ARGV: ttl_ms. Answers failed_until_ms.
  kRememberFailure,
  // KEYS: lock, fence [, value, failure]. ARGV: token, ttl_ms, fence_keep_ms.
  // Answers {1, fencing_token, expires_ms} or {0, 0, holder_expires_ms};
  // with the value and failure keys, an acquired lock also answers the
  // key's read: {1, fencing_token, expires_ms, value, stored_ms,
  // expires_ms, compute_ms, failed_until_ms} (the last five may be nil).
  kTryLock,
  // KEYS: lock. ARGV: token, ttl_ms. Answers expires_ms or nil (not ours).
  kRenew,
  // KEYS: lock. ARGV: token, notice message, channel. Answers 1 / 0.
  kRelease,
  // KEYS: breaker. Answers {version or nil, state or nil}.
  kBreakerLoad,
  // KEYS: breaker. ARGV: expected version, state, channel, namespace.
  // Answers {1 stored / 0 refused, version now, state now}; publishes
  // "<namespace> <version> <state>" on the breaker channel when stored.
  kBreakerCas,
  // KEYS: lock, hedges. ARGV: max_hedges, keep_ms. Answers {result, hedges,
  // holder_expires_ms}: result 0 granted, 1 refused, 2 no holder.
  kClaimHedge,
  // KEYS: slots, tat. ARGV: slot, max_in_flight, period_us (0: no rate),
  // burst, enforce ("1"/"0"), hold_us, now_us ("" = Redis TIME). Answers
  // {admitted, over, limit, retry_after_us, in_flight}.
  kBudgetCharge,
  // KEYS: slots. ARGV: slot, hold_us, now_us. Answers 1 held / 0 gone.
  kBudgetRenew,
  // KEYS: slots. ARGV: slot, now_us. Answers 1 held / 0 gone.
  kBudgetReturn,
};
inline constexpr int kRedisScriptCount = 13;

absl::string_view RedisScriptSource(RedisScript script);

// Reads each script's answer. Shapes that the script cannot produce are
// INTERNAL errors (a different script under our SHA, or a bug).
absl::StatusOr<KeyRead> ParseGetReply(const RedisReply& r);
absl::StatusOr<absl::Time> ParseRememberFailureReply(const RedisReply& r);
// kPut, kRelease (1/0) and kDelete (count): whether anything happened.
absl::StatusOr<bool> ParseCountReply(const RedisReply& r);
absl::StatusOr<LockAttempt> ParseTryLockReply(const RedisReply& r);
absl::StatusOr<std::optional<absl::Time>> ParseRenewReply(const RedisReply& r);

absl::StatusOr<HedgeClaim> ParseClaimHedgeReply(const RedisReply& r);
absl::StatusOr<BudgetCharge> ParseBudgetChargeReply(const RedisReply& r);
// The budget keys of namespace `ns`: {slots, tat}.
std::string RedisBudgetSlotsKey(const std::string& ns);
std::string RedisBudgetRateKey(const std::string& ns);

// Breaker state: one hash per namespace, one channel for all namespaces
// (every replica listens to it all the time).
std::string RedisBreakerKey(const std::string& ns);
inline constexpr absl::string_view kRedisBreakerChannel = "corral:breaker";
absl::StatusOr<BreakerRecord> ParseBreakerLoadReply(const RedisReply& r);
absl::StatusOr<BreakerCas> ParseBreakerCasReply(const RedisReply& r);
// Decodes a breaker channel message into its namespace and record.
absl::StatusOr<std::pair<std::string, BreakerRecord>> DecodeBreakerMessage(
    absl::string_view payload);

// The notice ARGV of kRelease.
absl::string_view ReleaseMessage(ReleaseNotice notice);

// A message on an item's channel: a fill (with the value) or a release.
struct KeyMessage {
  KeyEvent::Kind kind;
  std::optional<StoredValue> value;  // kFilled only
};
// Decodes what kPut and kRelease publish:
// "G<stored_ms>:<expires_ms>:<compute_ms>:<value bytes>", "R" (released) or
// "X" (upstream failed). Also reads "F<stored_ms>:<expires_ms>:<value bytes>",
// the fill message of corrald before compute times were kept, so that a
// fleet can be upgraded one replica at a time (an older replica ignores "G").
absl::StatusOr<KeyMessage> DecodeKeyMessage(absl::string_view payload);

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_SCRIPTS_H_
