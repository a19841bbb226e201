// hiredis is included here only: the baseline talks to Redis directly,
// everything else in the tools goes through corrald.
#include "client/bench/redis_baseline.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <cmath>
#include <memory>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/bench/probes.h"

namespace corral::bench {
namespace {

// python-redis-lock's UNLOCK_SCRIPT: compare-and-delete, and wake one waiter
// through the signal list (which expires after signal_expire ms).
constexpr char kUnlockScript[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 1 else "
    "redis.call('del', KEYS[2]) redis.call('lpush', KEYS[2], 1) "
    "redis.call('pexpire', KEYS[2], ARGV[2]) redis.call('del', KEYS[1]) return "
    "0 end";

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using SyncContext = std::unique_ptr<redisContext, ContextFree>;
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct Run;

// One simulated worker: its connection and where it is in the pattern.
// Lives in Run::callers; hiredis callbacks carry a pointer to it.
struct Caller {
  Run* run = nullptr;
  redisAsyncContext* ac = nullptr;  // Owned by hiredis once connected.
  std::string token;
  absl::Time start, end;
  bool connected = false;
  bool finished = false;
  bool failed = false;
  bool holding = false;  // Holds the lock (release after the write).
  bool wait_timed_out = false;
  bool computed = false;
  bool unlocked = false;   // Computed after a lock-wait timeout.
  bool fell_back = false;  // Its lock wait timed out (the seed's fallback).
};

struct Run {
  explicit Run(const BaselineOptions& o) : options(o) {}
  const BaselineOptions& options;
  event_base* base = nullptr;
  std::vector<Caller> callers;
  std::string key, lock_key, signal_key, value, unlock_sha;
  int next_connect = 0, in_flight = 0, settled = 0, finished = 0;
  bool closing = false;
};

using Step = void (*)(Caller*, redisReply*);

template <Step step>
void Trampoline(redisAsyncContext*, void* reply, void* privdata) {
  auto* c = static_cast<Caller*>(privdata);
  if (c->run->closing || c->finished) return;
  step(c, static_cast<redisReply*>(reply));
}

bool IsError(const redisReply* r) {
  return r == nullptr || r->type == REDIS_REPLY_ERROR;
}
bool IsString(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_STRING;
}

void Finish(Caller* c, bool failed) {
  c->end = absl::Now();
  c->finished = true;
  c->failed = failed;
  if (++c->run->finished == static_cast<int>(c->run->callers.size())) {
    event_base_loopbreak(c->run->base);
  }
}

template <Step step>
void Send(Caller* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAsyncCommandArgv(c->ac, &Trampoline<step>, c,
                            static_cast<int>(args.size()), argv.data(),
                            lens.data()) != REDIS_OK) {
    Finish(c, /*failed=*/true);
  }
}

std::string Millis(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

void AfterRelease(Caller* c, redisReply* r) { Finish(c, IsError(r)); }

void Release(Caller* c) {
  const Run& run = *c->run;
  Send<&AfterRelease>(
      c, {"EVALSHA", run.unlock_sha, "2", run.lock_key, run.signal_key,
          c->token, Millis(run.options.signal_expire)});
}

void AfterWrite(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  if (c->holding) return Release(c);
  Finish(c, false);
}

void OnComputed(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Caller*>(arg);
  if (c->run->closing || c->finished) return;
  const Run& run = *c->run;
  Send<&AfterWrite>(
      c, {"SET", run.key, run.value, "PX", Millis(run.options.value_ttl)});
}

void Compute(Caller* c) {
  c->computed = true;
  timeval tv = absl::ToTimeval(c->run->options.compute_time);
  event_base_once(c->run->base, -1, EV_TIMEOUT, &OnComputed, c, &tv);
}

// cache-aside, or the seed's last cache check before its unlocked fallback.
void AfterFinalGet(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  if (IsString(r)) return Finish(c, false);
  c->unlocked = c->wait_timed_out;
  Compute(c);
}

void AfterDoubleCheck(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  if (IsString(r)) return Release(c);
  Compute(c);
}

void TryLock(Caller* c);

void AfterBlpop(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  // nil: the wait timed out; python-redis-lock tries SET NX once more.
  if (r->type == REDIS_REPLY_NIL) c->wait_timed_out = true;
  TryLock(c);
}

void AfterLock(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  const Run& run = *c->run;
  if (r->type == REDIS_REPLY_STATUS) {  // OK: taken.
    c->holding = true;
    c->wait_timed_out = false;
    return Send<&AfterDoubleCheck>(c, {"GET", run.key});
  }
  if (c->wait_timed_out) {
    c->fell_back = true;
    return Send<&AfterFinalGet>(c, {"GET", run.key});
  }
  const int64_t wait_s = static_cast<int64_t>(
      std::ceil(absl::ToDoubleSeconds(run.options.lock_wait)));
  Send<&AfterBlpop>(c, {"BLPOP", run.signal_key, absl::StrCat(wait_s)});
}

void TryLock(Caller* c) {
  const Run& run = *c->run;
  Send<&AfterLock>(c, {"SET", run.lock_key, c->token, "NX", "PX",
                       Millis(run.options.lock_expire)});
}

void AfterFirstGet(Caller* c, redisReply* r) {
  if (IsError(r)) return Finish(c, true);
  if (IsString(r)) return Finish(c, false);
  if (c->run->options.pattern == BaselinePattern::kCacheAside)
    return Compute(c);
  TryLock(c);
}

void Begin(Caller* c) {
  c->start = absl::Now();
  Send<&AfterFirstGet>(c, {"GET", c->run->key});
}

// --- connection setup: at most connect_parallel connects in flight.

void ConnectMore(Run* run);

void Settle(Run* run) {
  --run->in_flight;
  if (++run->settled == static_cast<int>(run->callers.size())) {
    event_base_loopbreak(run->base);
  } else {
    ConnectMore(run);
  }
}

void OnPing(redisAsyncContext*, void* reply, void* privdata) {
  auto* c = static_cast<Caller*>(privdata);
  if (c->run->closing) return;
  c->connected = reply != nullptr && !IsError(static_cast<redisReply*>(reply));
  Settle(c->run);
}

void OnConnect(const redisAsyncContext* ac, int status) {
  // On failure hiredis frees the context (and answers the PING with null).
  if (status != REDIS_OK) static_cast<Caller*>(ac->data)->ac = nullptr;
}

void OnDisconnect(const redisAsyncContext* ac, int) {
  static_cast<Caller*>(ac->data)->ac = nullptr;
}

void ConnectMore(Run* run) {
  const int n = static_cast<int>(run->callers.size());
  while (run->in_flight < run->options.connect_parallel &&
         run->next_connect < n) {
    Caller* c = &run->callers[run->next_connect++];
    ++run->in_flight;
    c->ac = redisAsyncConnect(run->options.host.c_str(), run->options.port);
    if (c->ac == nullptr || c->ac->err) {
      if (c->ac != nullptr) redisAsyncFree(c->ac);
      c->ac = nullptr;
      Settle(run);
      continue;
    }
    c->ac->data = c;
    redisLibeventAttach(c->ac, run->base);
    redisAsyncSetConnectCallback(c->ac, &OnConnect);
    redisAsyncSetDisconnectCallback(c->ac, &OnDisconnect);
    redisAsyncCommand(c->ac, &OnPing, c, "PING");
  }
}

void OnDeadline(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<Run*>(arg)->base);
}

}  // namespace

std::string BaselineReport::Summary() const {
  return absl::StrFormat(
      "callers=%d computes=%d unlocked_computes=%d lock_timeouts=%d errors=%d "
      "connect_failures=%d connect=%s elapsed=%s latency p50=%s p99=%s max=%s",
      callers, computes, unlocked_computes, lock_timeouts, errors,
      connect_failures, absl::FormatDuration(connect_time),
      absl::FormatDuration(elapsed), absl::FormatDuration(p50),
      absl::FormatDuration(p99), absl::FormatDuration(max));
}

BaselineReport RunRedisBaseline(const BaselineOptions& options,
                                const std::function<void()>& on_ready) {
  BaselineReport report;
  Run run(options);
  absl::BitGen rng;
  const std::string name =
      absl::StrCat("baseline-", absl::Uniform<uint64_t>(rng));
  run.key = name;
  run.lock_key = absl::StrCat("lock:", name);  // python-redis-lock's names.
  run.signal_key = absl::StrCat("lock-signal:", name);
  run.value = "value-0";

  SyncContext sync(redisConnect(options.host.c_str(), options.port));
  if (sync == nullptr || sync->err) {
    report.errors = options.callers;
    return report;
  }
  Reply loaded(static_cast<redisReply*>(
      redisCommand(sync.get(), "SCRIPT LOAD %s", kUnlockScript)));
  if (!IsString(loaded.get())) {
    report.errors = options.callers;
    return report;
  }
  run.unlock_sha.assign(loaded->str, loaded->len);

  run.base = event_base_new();
  run.callers.resize(options.callers);
  for (Caller& c : run.callers) {
    c.run = &run;
    c.token = absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(rng),
                              absl::Uniform<uint64_t>(rng));
  }
  const absl::Time connect_start = absl::Now();
  ConnectMore(&run);
  if (!run.callers.empty()) event_base_dispatch(run.base);
  report.connect_time = absl::Now() - connect_start;

  std::vector<Caller*> live;
  for (Caller& c : run.callers) {
    if (c.connected && c.ac != nullptr) {
      live.push_back(&c);
    } else {
      ++report.connect_failures;
      c.finished = true;  // Not part of the stampede.
    }
  }
  run.finished = static_cast<int>(run.callers.size() - live.size());
  on_ready();
  const absl::Time start = absl::Now();
  timeval deadline = absl::ToTimeval(options.deadline);
  event_base_once(run.base, -1, EV_TIMEOUT, &OnDeadline, &run, &deadline);
  for (Caller* c : live) Begin(c);
  if (run.finished < static_cast<int>(run.callers.size()))
    event_base_dispatch(run.base);
  const absl::Time end = absl::Now();

  std::vector<absl::Duration> latencies;
  for (Caller* c : live) {
    ++report.callers;
    if (!c->finished || c->failed) {
      ++report.errors;
      continue;
    }
    latencies.push_back(c->end - c->start);
    report.computes += c->computed;
    report.unlocked_computes += c->unlocked;
  }
  for (Caller* c : live) report.lock_timeouts += c->fell_back;
  report.elapsed = end - start;
  report.p50 = Quantile(latencies, 0.5);
  report.p99 = Quantile(latencies, 0.99);
  report.max = Quantile(latencies, 1.0);

  run.closing = true;
  for (Caller& c : run.callers) {
    if (c.ac != nullptr)
      redisAsyncFree(c.ac);  // Its disconnect callback nulls c.ac.
  }
  event_base_free(run.base);
  // The key is left behind (a fresh name each run keeps the next one cold).
  return report;
}

}  // namespace corral::bench
