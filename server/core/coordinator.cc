// The Coordinator: construction, unary operations, store events, shutdown.
#include "server/core/coordinator.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/coordinator_internal.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"

namespace corral {

using namespace coordinator_internal;  // NOLINT: this file's own helpers.

Coordinator::Coordinator(Executor& executor, Store& store,
                         const NamespaceRegistry& registry, const Clock& clock,
                         CoordinatorObserver& observer)
    : executor_(executor),
      store_(store),
      registry_(registry),
      clock_(clock),
      observer_(observer),
      namespaces_(registry, clock, observer),
      breakers_(executor, store, clock, observer),
      budget_(store, executor, clock, observer) {
  store_.SetListener(this);
  const absl::Duration every =
      std::min(absl::Minutes(1), registry_.limits().dynamic_namespace_idle / 4);
  executor_.Post([this, every] { ArmEvictionTimer(every); });
}

void Coordinator::ArmEvictionTimer(absl::Duration every) {
  evict_timer_ = executor_.RunAfter(every, [this, every] {
    DoEvictIdleNamespaces([](size_t) {});
    ArmEvictionTimer(every);
  });
}

Coordinator::~Coordinator() {
  if (evict_timer_ != 0) executor_.Cancel(evict_timer_);
  store_.SetListener(nullptr);
}

absl::StatusOr<NamespaceSettings> Coordinator::Settings(
    const CacheKey& key) const {
  if (absl::Status s = ValidateKeyFields(key); !s.ok()) return s;
  return Settings(key.ns);
}

absl::StatusOr<NamespaceSettings> Coordinator::Settings(
    absl::string_view ns) const {
  auto settings = registry_.Find(ns);
  if (!settings.ok())
    return WithReason(settings.status(), kReasonUnknownNamespace);
  if (absl::Status used = namespaces_.Use(ns); !used.ok()) return used;
  return settings;
}

void Coordinator::EvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done) {
  executor_.Post([this, done = std::move(done)]() mutable {
    DoEvictIdleNamespaces(std::move(done));
  });
}

void Coordinator::DoEvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done) {
  // A namespace with a caller here (waiting, computing, reading) or breaker
  // work under way stays, however long ago it was last named.
  absl::flat_hash_set<std::string> active;
  for (const auto& [id, s] : sessions_) active.insert(s.lookup.key.ns);
  for (const auto& [id, w] : lock_waiters_) active.insert(w.request.key.ns);
  for (const auto& [key, f] : flights_) active.insert(key.ns);
  std::vector<std::string> evicted =
      namespaces_.EvictIdle([&](const std::string& ns) {
        return active.contains(ns) || breakers_.Busy(ns);
      });
  for (const std::string& ns : evicted) breakers_.Forget(ns);
  done(evicted.size());
}

std::string Coordinator::NewToken() {
  // 128 bits from the kernel's CSPRNG, so only the holder can renew or
  // release (absl::BitGen is fast but not meant for secrets).
  char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      // Never hand out a guessable lock token.
      std::fprintf(stderr, "corrald: getrandom failed: %s\n",
                   std::strerror(errno));
      std::abort();
    }
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

ValueView Coordinator::ViewOf(const StoredValue& value, Source source,
                              std::shared_ptr<const std::string> bytes) const {
  const absl::Time now = clock_.Now();
  ValueView view;
  view.value = bytes ? std::move(bytes)
                     : std::make_shared<const std::string>(value.value);
  view.source = source;
  view.age = std::max(absl::ZeroDuration(), now - value.stored_at);
  view.ttl_remaining = std::max(absl::ZeroDuration(), value.expires_at - now);
  view.stale = value.expires_at <= now;
  return view;
}

// ---------------------------------------------------------------------------
// Unary operations
// ---------------------------------------------------------------------------

void Coordinator::Get(CacheKey key, Callback<GetResult> done) {
  if (GetFromReadCache(key, done)) return;
  executor_.Post(
      [this, key = std::move(key), done = std::move(done)]() mutable {
        auto settings = Settings(key);
        if (!settings.ok()) return done(settings.status());
        // Concurrent reads of one key share one store round trip.
        FlightFor(key).get_readers.push_back(std::move(done));
        Read(key);
      });
}

void Coordinator::Set(SetRequest request, Callback<bool> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (request.value.size() > settings->max_value_bytes) {
      return done(
          InvalidField("value", absl::StrCat("is ", request.value.size(),
                                             " bytes; the namespace limit is ",
                                             settings->max_value_bytes)));
    }
    auto ttl =
        ResolveDuration("ttl", request.ttl, settings->ttl,
                        DurationRule::kPositive, registry_.limits().max_ttl);
    if (!ttl.ok()) return done(ttl.status());
    if (!request.lock_token.empty()) {
      if (absl::Status s = ValidateToken("lock_token", request.lock_token);
          !s.ok()) {
        return done(s);
      }
    } else if (request.release_lock) {
      return done(InvalidField("release_lock", "needs lock_token"));
    }
    PutOptions options;
    options.ttl = *ttl;
    options.stale_window = settings->stale_window;
    options.lock_token = request.lock_token;
    options.release_lock = request.release_lock;
    // This replica's callers of the key may be waiting for a compute here
    // rather than watching the key: they take the value once it is stored.
    // (Callers that arrive later read it, or wait behind a flight that
    // exists now.) Only then is the value copied.
    std::optional<std::string> for_waiters;
    if (flights_.contains(request.key)) for_waiters = request.value;
    CacheKey key = request.key;
    store_.Put(request.key, std::move(request.value), options,
               [this, key = std::move(key),
                for_waiters = std::move(for_waiters), ttl = *ttl,
                done = std::move(done)](absl::StatusOr<bool> stored) mutable {
                 if (stored.ok() && *stored && for_waiters.has_value()) {
                   const absl::Time now = clock_.Now();
                   ServeAll(key,
                            StoredValue{*std::move(for_waiters), now, now + ttl,
                                        absl::ZeroDuration()},
                            Source::kPeerFill, LookupStage::kAfterWait);
                 }
                 done(std::move(stored));
               });
  });
}

void Coordinator::Invalidate(CacheKey key, Callback<bool> done) {
  executor_.Post(
      [this, key = std::move(key), done = std::move(done)]() mutable {
        auto settings = Settings(key);
        if (!settings.ok()) return done(settings.status());
        store_.Delete(key, std::move(done));
      });
}

void Coordinator::RenewLock(RenewLockRequest request,
                            Callback<RenewResult> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (absl::Status s = ValidateToken("token", request.token); !s.ok())
      return done(s);
    auto ttl =
        ResolveDuration("ttl", request.ttl, settings->lease_ttl,
                        DurationRule::kPositive, registry_.limits().max_wait);
    if (!ttl.ok()) return done(ttl.status());
    store_.RenewLock(request.key, request.token, *ttl,
                     [done = std::move(done)](
                         absl::StatusOr<std::optional<absl::Time>> r) mutable {
                       if (!r.ok()) return done(r.status());
                       RenewResult result;
                       if (r->has_value()) {
                         result.renewed = true;
                         result.expires_at = **r;
                       }
                       done(result);
                     });
    // The grant's compute-budget slot (named by the lock token) lives as
    // long as the lock.
    if (settings->compute_budget.enabled())
      budget_.Renew(request.key.ns, request.token, *ttl);
  });
}

void Coordinator::ReleaseLock(ReleaseLockRequest request, Callback<bool> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (absl::Status s = ValidateToken("token", request.token); !s.ok())
      return done(s);
    // OUTCOME_FAILURE is an upstream failure: like an Abandon with
    // upstream_failure, the key's GetOrCompute waiters share it.
    ReleaseNotice notice = request.outcome == Outcome::kFailure
                               ? ReleaseNotice::kUpstreamFailed
                               : ReleaseNotice::kReleased;
    const Outcome outcome = request.outcome;
    if (settings->compute_budget.enabled()) {
      std::string slot = request.token;
      budget_.Return(request.key.ns, &slot);
    }
    store_.ReleaseLock(
        request.key, request.token, notice,
        [this, outcome, ns = *std::move(settings),
         done = std::move(done)](absl::StatusOr<bool> released) mutable {
          // Only the holder's word counts for the breaker.
          if (released.ok() && *released && outcome != Outcome::kUnspecified) {
            RecordOutcome(ns, outcome == Outcome::kFailure
                                  ? ComputeOutcome::kFailure
                                  : ComputeOutcome::kSuccess);
          }
          done(std::move(released));
        });
  });
}

void Coordinator::OnKeyEvent(const KeyEvent& event) {
  const CacheKey& key = event.key;
  if (!flights_.contains(key)) return;
  Flight& f = flights_.at(key);
  switch (event.kind) {
    case KeyEvent::Kind::kWatching:
    case KeyEvent::Kind::kResync:
      // Whatever happened before the store delivered events was not seen.
      f.watch_confirmed = true;
      f.known_miss = false;
      ReadAgain(key);
      Wake(key);
      return;
    case KeyEvent::Kind::kReleased:
      Wake(key);
      return;
    case KeyEvent::Kind::kUpstreamFailed:
      // Like singleflight sharing an error: the current waiters get it.
      FailWaiters(key, PeerComputeFailed());
      Wake(key);
      return;
    case KeyEvent::Kind::kFilled:
      f.known_miss = false;
      if (event.value.has_value()) {
        ServeAll(key, *event.value, Source::kPeerFill, LookupStage::kAfterWait);
      }
      Wake(key);  // A fenced fill may have freed the lock for lock waiters.
      return;
  }
}

void Coordinator::OnStoreAvailability(bool up) {
  LOG_EVENT(up ? "store_up" : "store_down", CacheKey{}, "");
  breakers_.OnStoreAvailability(up);
  if (up) degraded_values_.clear();
  if (!up) {
    // No events arrive now: new callers must not wait on one.
    for (auto& [key, flight] : flights_) flight.watch_confirmed = false;
    return;
  }
  // Events may have been lost while the store was away: re-read every key
  // someone waits on.
  std::vector<CacheKey> keys;
  for (auto& [key, flight] : flights_) {
    keys.push_back(key);
    flight.known_miss = false;
    flight.watch_confirmed = false;  // Until the store re-subscribes.
  }
  for (const CacheKey& key : keys) {
    ReadAgain(key);
    Wake(key);
  }
}

void Coordinator::DescribeBreaker(std::string ns, Callback<BreakerView> done) {
  executor_.Post([this, ns = std::move(ns), done = std::move(done)]() mutable {
    if (absl::Status s = ValidateNamespace("namespace", ns); !s.ok())
      return done(s);
    auto settings = Settings(ns);
    if (!settings.ok()) return done(settings.status());
    breakers_.Describe(*settings,
                       [done = std::move(done)](BreakerView view) mutable {
                         done(std::move(view));
                       });
  });
}

void Coordinator::OnBreakerChanged(const std::string& ns,
                                   const BreakerRecord& record) {
  breakers_.OnChanged(ns, record);
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

void Coordinator::Shutdown(absl::Duration timeout) {
  auto pending = std::make_shared<std::atomic<int>>(1);
  auto done = std::make_shared<absl::Notification>();
  auto finish_one = [pending, done] {
    if (pending->fetch_sub(1) == 1) done->Notify();
  };
  executor_.Post([this, pending, finish_one] {
    shutting_down_ = true;
    // Batched breaker successes go out first (before the releases, on the
    // same connection), so a stop loses none of them.
    pending->fetch_add(1);  // Held while they are counted.
    pending->fetch_add(breakers_.FlushPending(finish_one));
    finish_one();
    std::vector<CallId> ids;
    for (const auto& [id, s] : sessions_) ids.push_back(id);
    for (CallId id : ids) {
      auto it = sessions_.find(id);
      if (it == sessions_.end()) continue;
      Session& s = it->second;
      if (HoldsKeyLock(s)) {
        pending->fetch_add(1);
        store_.ReleaseLock(
            s.lookup.key, s.token, ReleaseNotice::kReleased,
            [finish_one](absl::StatusOr<bool>) { finish_one(); });
        s.revoked = true;
        EndLease(s);
      }
      if (s.state == SessionState::kLeased) {
        // Already released above; the caller's late Fill would be refused.
        if (s.sink) s.sink->Finish(ShuttingDown());
        RetireSession(s);
      } else {
        FinishSession(s, ShuttingDown());
      }
    }
    std::vector<CallId> lock_ids;
    for (const auto& [id, w] : lock_waiters_) lock_ids.push_back(id);
    for (CallId id : lock_ids) TakeLockWaiter(id, "").done(ShuttingDown());
    finish_one();
  });
  done->WaitForNotificationWithTimeout(timeout);
}

}  // namespace corral
