#include "server/store/redis_scripts.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace corral {
namespace {

// Numbers leave Lua through string.format('%d'): tostring() would print
// microsecond timestamps (16 digits) as 1.7e+15. Lua numbers are doubles;
// every value here stays below 2^53, so integer replies are exact.

constexpr absl::string_view kGetSource = R"lua(
-- Redis drops the hash at its physical expiry (expires_at + stale window),
-- so anything still visible is fresh or inside its stale window.
local r = redis.call('HMGET', KEYS[1], 'v', 's', 'e', 'd')
-- A fresh value (by the caller's clock, ARGV[1]) answers alone: a
-- remembered failure matters only without one.
if r[3] and tonumber(r[3]) > tonumber(ARGV[1]) then
  return {r[1], r[2], r[3], r[4], false}
end
return {r[1], r[2], r[3], r[4], redis.call('GET', KEYS[2])}
)lua";

constexpr absl::string_view kPutSource = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Fenced: only the current holder of the lock may fill.
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
if ARGV[6] == '1' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if e and tonumber(e) > now then return 0 end
end
if ARGV[4] ~= '' and ARGV[5] == '1' then
  redis.call('DEL', KEYS[2], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
local expires = now + tonumber(ARGV[2])
local s = string.format('%d', now)
local e = string.format('%d', expires)
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', s, 'e', e, 'd', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], string.format('%d', expires + tonumber(ARGV[3])))
redis.call('PUBLISH', ARGV[7], 'G' .. s .. ':' .. e .. ':' .. ARGV[8] .. ':' .. ARGV[1])
return 1
)lua";

constexpr absl::string_view kDeleteSource = R"lua(
redis.call('DEL', KEYS[2])
return redis.call('DEL', KEYS[1])
)lua";

constexpr absl::string_view kRememberFailureSource = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = string.format('%d', now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], until_ms, 'PX', ARGV[1])
return until_ms
)lua";

constexpr absl::string_view kTryLockSource = R"lua(
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  -- Time-based, so tokens keep increasing after the fence key expires or
  -- Redis restarts empty (as long as its clock does not step back).
  local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
  redis.call('SET', KEYS[2], string.format('%d', fence), 'PX', ARGV[3])
  if KEYS[3] then
    -- The holder's first question: did a fill land since its miss?
    local r = redis.call('HMGET', KEYS[3], 'v', 's', 'e', 'd')
    local failed = redis.call('GET', KEYS[4])
    return {1, fence, now_ms + tonumber(ARGV[2]), r[1], r[2], r[3], r[4], failed}
  end
  return {1, fence, now_ms + tonumber(ARGV[2])}
end
return {0, 0, now_ms + redis.call('PTTL', KEYS[1])}
)lua";

constexpr absl::string_view kRenewSource = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now_ms + tonumber(ARGV[2])
)lua";

constexpr absl::string_view kReleaseSource = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
)lua";

constexpr absl::string_view kClaimHedgeSource = R"lua(
-- A hedge is counted per lease start: per lock token.
local holder = redis.call('GET', KEYS[1])
if not holder then return {2, 0, 0} end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pttl = redis.call('PTTL', KEYS[1])
local cur = redis.call('HMGET', KEYS[2], 't', 'c')
local count = 0
if cur[1] == holder then count = tonumber(cur[2]) end
local result = 1
if count < tonumber(ARGV[1]) then
  count = count + 1
  result = 0
end
redis.call('HSET', KEYS[2], 't', holder, 'c', string.format('%d', count))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {result, count, now_ms + pttl}
)lua";

// The budget scripts take "now" from ARGV when a test injects a clock,
// otherwise from Redis TIME: one clock for the fleet.
#define CORRAL_BUDGET_NOW(arg)                          \
  "local now\n"                                         \
  "if " arg " ~= '' then now = tonumber(" arg           \
  ") else\n"                                            \
  "  local t = redis.call('TIME')\n"                    \
  "  now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n" \
  "end\n"

// Keeps the slots key at least as long as `hold_us` from now.
#define CORRAL_BUDGET_KEEP(hold)                 \
  "local keep = math.ceil(tonumber(" hold        \
  ") / 1000) + 1000\n"                           \
  "if redis.call('PTTL', KEYS[1]) < keep then\n" \
  "  redis.call('PEXPIRE', KEYS[1], keep)\n"     \
  "end\n"

constexpr absl::string_view kBudgetChargeSource =
    CORRAL_BUDGET_NOW("ARGV[7]") R"lua(
-- Slots whose lease ended without a return (its holder died) expire.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local over, limit, retry = 0, '', 0
local max_in_flight = tonumber(ARGV[2])
if max_in_flight > 0 and n >= max_in_flight then
  over, limit = 1, 'in_flight'
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  retry = math.min(tonumber(oldest[2]) - now, 1000000)
end
-- GCRA: the TAT may run ahead of now by burst - 1 periods.
local period = tonumber(ARGV[3])
local new_tat = nil
if over == 0 and period > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local tolerance = period * (tonumber(ARGV[4]) - 1)
  if tat - now > tolerance then
    over, limit, retry = 1, 'rate', tat - now - tolerance
  else
    new_tat = tat + period
  end
end
local admitted = 0
if over == 0 or ARGV[5] == '0' then
  admitted = 1
  if new_tat then
    redis.call('SET', KEYS[2], string.format('%d', new_tat), 'PX',
               string.format('%d', math.max(1, math.ceil((new_tat - now) / 1000))))
  end
  redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[6])), ARGV[1])
)lua" CORRAL_BUDGET_KEEP("ARGV[6]") R"lua(
end
return {admitted, over, limit, string.format('%d', retry), redis.call('ZCARD', KEYS[1])}
)lua";

constexpr absl::string_view kBudgetRenewSource =
    CORRAL_BUDGET_NOW("ARGV[3]") R"lua(
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
)lua" CORRAL_BUDGET_KEEP("ARGV[2]") R"lua(
return 1
)lua";

constexpr absl::string_view kBudgetReturnSource =
    CORRAL_BUDGET_NOW("ARGV[2]") R"lua(
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then return 0 end
return 1
)lua";

#undef CORRAL_BUDGET_NOW
#undef CORRAL_BUDGET_KEEP

bool ParseMillis(absl::string_view text, absl::Time* out) {
  int64_t ms = 0;
  if (text.empty() || !absl::SimpleAtoi(text, &ms)) return false;
  *out = absl::FromUnixMillis(ms);
  return true;
}

std::string ItemPrefix(const CacheKey& key) {
  return absl::StrCat("corral:{", KeyHash(key), "}:", key.ns, ":", key.key);
}

absl::Status Unexpected(absl::string_view script) {
  return absl::InternalError(
      absl::StrCat("unexpected reply from the Redis ", script, " script"));
}

bool IsInteger(const RedisReply& r) {
  return r.type == RedisReply::Type::kInteger;
}

// The key read from r.elements[at .. at + 4]: value, stored_ms, expires_ms,
// compute_ms, failed_until_ms, each possibly nil. `script` names it in
// errors.
absl::StatusOr<KeyRead> ParseKeyFields(const RedisReply& r, size_t at,
                                       absl::string_view script) {
  const auto is_string = [&r, at](size_t i) {
    return r.elements[at + i].type == RedisReply::Type::kString;
  };
  const auto str = [&r, at](size_t i) -> const std::string& {
    return r.elements[at + i].str;
  };
  KeyRead read;
  if (is_string(4) && !ParseMillis(str(4), &read.failed_until))
    return Unexpected(script);
  if (!is_string(0)) return read;
  StoredValue value;
  if (!is_string(1) || !is_string(2) ||
      !ParseMillis(str(1), &value.stored_at) ||
      !ParseMillis(str(2), &value.expires_at)) {
    return Unexpected(script);
  }
  // Values written before compute times were kept have none.
  if (is_string(3)) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(str(3), &ms)) return Unexpected(script);
    value.compute_time = absl::Milliseconds(ms);
  }
  value.value = str(0);
  read.value = std::move(value);
  return read;
}

}  // namespace

RedisItemKeys RedisKeysFor(const CacheKey& key) {
  const std::string prefix = ItemPrefix(key);
  return RedisItemKeys{absl::StrCat(prefix, ":v"), absl::StrCat(prefix, ":l"),
                       absl::StrCat(prefix, ":f"), absl::StrCat(prefix, ":c"),
                       absl::StrCat(prefix, ":n"), absl::StrCat(prefix, ":h")};
}

absl::string_view RedisTrackingProbeSource() {
  return R"lua(
if not redis.acl_check_cmd then return 0 end
if redis.acl_check_cmd('subscribe', '__redis__:invalidate')
    and redis.acl_check_cmd('client', 'id')
    and redis.acl_check_cmd('client', 'tracking', 'on', 'redirect', '1') then
  return 1
end
return 0
)lua";
}

std::optional<CacheKey> CacheKeyOfValueKey(absl::string_view redis_key) {
  // corral:{<hash>}:<ns>:<key bytes>:v, where ns holds no ':' and the hash
  // no '}'.
  absl::string_view rest = redis_key;
  if (!absl::ConsumePrefix(&rest, "corral:{") ||
      !absl::ConsumeSuffix(&rest, ":v")) {
    return std::nullopt;
  }
  const size_t tag_end = rest.find("}:");
  if (tag_end == absl::string_view::npos) return std::nullopt;
  rest.remove_prefix(tag_end + 2);
  const size_t ns_end = rest.find(':');
  if (ns_end == absl::string_view::npos) return std::nullopt;
  CacheKey key{std::string(rest.substr(0, ns_end)),
               std::string(rest.substr(ns_end + 1))};
  // Only a key we would have written: the hash must match too.
  if (RedisKeysFor(key).value != redis_key) return std::nullopt;
  return key;
}

std::string RedisChannelFor(const CacheKey& key) {
  return absl::StrCat(ItemPrefix(key), ":c");
}

constexpr absl::string_view kBreakerLoadSource = R"lua(
return redis.call('HMGET', KEYS[1], 'v', 's')
)lua";

constexpr absl::string_view kBreakerCasSource = R"lua(
-- Compare-and-set of a namespace's breaker snapshot: replicas compute the
-- next state from the version they saw; only one write per version wins.
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur, redis.call('HGET', KEYS[1], 's') or ''}
end
local nv = cur + 1
redis.call('HSET', KEYS[1], 'v', string.format('%d', nv), 's', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. string.format('%d', nv) .. ' ' .. ARGV[2])
return {1, nv, ARGV[2]}
)lua";

absl::string_view RedisScriptSource(RedisScript script) {
  switch (script) {
    case RedisScript::kGet:
      return kGetSource;
    case RedisScript::kPut:
      return kPutSource;
    case RedisScript::kDelete:
      return kDeleteSource;
    case RedisScript::kRememberFailure:
      return kRememberFailureSource;
    case RedisScript::kTryLock:
      return kTryLockSource;
    case RedisScript::kRenew:
      return kRenewSource;
    case RedisScript::kRelease:
      return kReleaseSource;
    case RedisScript::kBreakerLoad:
      return kBreakerLoadSource;
    case RedisScript::kBreakerCas:
      return kBreakerCasSource;
    case RedisScript::kClaimHedge:
      return kClaimHedgeSource;
    case RedisScript::kBudgetCharge:
      return kBudgetChargeSource;
    case RedisScript::kBudgetRenew:
      return kBudgetRenewSource;
    case RedisScript::kBudgetReturn:
      return kBudgetReturnSource;
  }
  return "";
}

std::string RedisBreakerKey(const std::string& ns) {
  return absl::StrCat("corral:breaker:{", ns, "}");
}

std::string RedisBudgetSlotsKey(const std::string& ns) {
  return absl::StrCat("corral:budget:{", ns, "}:s");
}

std::string RedisBudgetRateKey(const std::string& ns) {
  return absl::StrCat("corral:budget:{", ns, "}:r");
}

absl::StatusOr<HedgeClaim> ParseClaimHedgeReply(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 3 ||
      !IsInteger(r.elements[0]) || !IsInteger(r.elements[1]) ||
      !IsInteger(r.elements[2]) || r.elements[0].integer < 0 ||
      r.elements[0].integer > 2) {
    return Unexpected("claim_hedge");
  }
  HedgeClaim claim;
  claim.result = r.elements[0].integer == 0   ? HedgeClaim::Result::kGranted
                 : r.elements[0].integer == 1 ? HedgeClaim::Result::kRefused
                                              : HedgeClaim::Result::kNoHolder;
  claim.hedges = static_cast<uint32_t>(r.elements[1].integer);
  if (claim.result != HedgeClaim::Result::kNoHolder)
    claim.holder_expires_at = absl::FromUnixMillis(r.elements[2].integer);
  return claim;
}

absl::StatusOr<BudgetCharge> ParseBudgetChargeReply(const RedisReply& r) {
  int64_t retry_us = 0;
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 5 ||
      !IsInteger(r.elements[0]) || !IsInteger(r.elements[1]) ||
      r.elements[2].type != RedisReply::Type::kString ||
      r.elements[3].type != RedisReply::Type::kString ||
      !absl::SimpleAtoi(r.elements[3].str, &retry_us) ||
      !IsInteger(r.elements[4])) {
    return Unexpected("budget_charge");
  }
  BudgetCharge charge;
  charge.admitted = r.elements[0].integer == 1;
  charge.over_budget = r.elements[1].integer == 1;
  charge.limit = r.elements[2].str;
  charge.retry_after = absl::Microseconds(retry_us);
  charge.in_flight = static_cast<uint32_t>(r.elements[4].integer);
  return charge;
}

absl::StatusOr<BreakerRecord> ParseBreakerLoadReply(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 2) {
    return Unexpected("breaker_load");
  }
  BreakerRecord record;
  if (r.elements[0].type == RedisReply::Type::kNil) return record;
  if (r.elements[0].type != RedisReply::Type::kString ||
      r.elements[1].type != RedisReply::Type::kString ||
      !absl::SimpleAtoi(r.elements[0].str, &record.version)) {
    return Unexpected("breaker_load");
  }
  record.state = r.elements[1].str;
  return record;
}

absl::StatusOr<BreakerCas> ParseBreakerCasReply(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 3 ||
      r.elements[0].type != RedisReply::Type::kInteger ||
      r.elements[1].type != RedisReply::Type::kInteger ||
      r.elements[2].type != RedisReply::Type::kString) {
    return Unexpected("breaker_cas");
  }
  BreakerCas cas;
  cas.stored = r.elements[0].integer == 1;
  cas.current.version = static_cast<uint64_t>(r.elements[1].integer);
  cas.current.state = r.elements[2].str;
  return cas;
}

absl::StatusOr<std::pair<std::string, BreakerRecord>> DecodeBreakerMessage(
    absl::string_view payload) {
  // "<namespace> <version> <state>"; namespaces and versions have no spaces.
  const size_t a = payload.find(' ');
  const size_t b = a == absl::string_view::npos ? a : payload.find(' ', a + 1);
  BreakerRecord record;
  if (b == absl::string_view::npos ||
      !absl::SimpleAtoi(payload.substr(a + 1, b - a - 1), &record.version)) {
    return absl::DataLossError("undecodable breaker message");
  }
  record.state = std::string(payload.substr(b + 1));
  return std::make_pair(std::string(payload.substr(0, a)), std::move(record));
}

absl::StatusOr<KeyRead> ParseGetReply(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 5)
    return Unexpected("get");
  return ParseKeyFields(r, 0, "get");
}

absl::StatusOr<absl::Time> ParseRememberFailureReply(const RedisReply& r) {
  absl::Time until;
  if (r.type != RedisReply::Type::kString || !ParseMillis(r.str, &until)) {
    return Unexpected("remember_failure");
  }
  return until;
}

absl::StatusOr<bool> ParseCountReply(const RedisReply& r) {
  if (!IsInteger(r)) return Unexpected("put/release/delete");
  return r.integer > 0;
}

absl::StatusOr<LockAttempt> ParseTryLockReply(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray ||
      (r.elements.size() != 3 && r.elements.size() != 8) ||
      !IsInteger(r.elements[0]) || !IsInteger(r.elements[1]) ||
      !IsInteger(r.elements[2])) {
    return Unexpected("trylock");
  }
  LockAttempt attempt;
  attempt.acquired = r.elements[0].integer == 1;
  attempt.fencing_token = static_cast<uint64_t>(r.elements[1].integer);
  attempt.expires_at = absl::FromUnixMillis(r.elements[2].integer);
  if (r.elements.size() == 8) {
    if (!attempt.acquired) return Unexpected("trylock");
    auto read = ParseKeyFields(r, 3, "trylock");
    if (!read.ok()) return read.status();
    attempt.read = *std::move(read);
  }
  return attempt;
}

absl::StatusOr<std::optional<absl::Time>> ParseRenewReply(const RedisReply& r) {
  if (r.type == RedisReply::Type::kNil) return std::nullopt;
  if (!IsInteger(r)) return Unexpected("renew");
  return absl::FromUnixMillis(r.integer);
}

absl::string_view ReleaseMessage(ReleaseNotice notice) {
  return notice == ReleaseNotice::kUpstreamFailed ? "X" : "R";
}

absl::StatusOr<KeyMessage> DecodeKeyMessage(absl::string_view payload) {
  if (payload == "R") {
    return KeyMessage{KeyEvent::Kind::kReleased, std::nullopt};
  }
  if (payload == "X") {
    return KeyMessage{KeyEvent::Kind::kUpstreamFailed, std::nullopt};
  }
  if (payload.empty() || (payload[0] != 'G' && payload[0] != 'F')) {
    return absl::DataLossError("unknown key message");
  }
  // The numbers before the value bytes: stored, expires (and compute for G).
  const int numbers = payload[0] == 'G' ? 3 : 2;
  int64_t fields[3] = {0, 0, 0};
  absl::string_view rest = payload.substr(1);
  for (int i = 0; i < numbers; ++i) {
    const size_t colon = rest.find(':');
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(rest.substr(0, colon), &fields[i])) {
      return absl::DataLossError("malformed fill message");
    }
    rest.remove_prefix(colon + 1);
  }
  StoredValue value;
  value.stored_at = absl::FromUnixMillis(fields[0]);
  value.expires_at = absl::FromUnixMillis(fields[1]);
  value.compute_time = absl::Milliseconds(fields[2]);
  value.value = std::string(rest);
  return KeyMessage{KeyEvent::Kind::kFilled, std::move(value)};
}

}  // namespace corral
