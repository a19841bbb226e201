// The Coordinator: construction, unary operations, store events, shutdown.
#include "server/core/coordinator.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"

namespace corral {

Coordinator::Coordinator(Executor& executor, Store& store,
                         const NamespaceRegistry& registry, const Clock& clock,
                         CoordinatorObserver& observer)
    : executor_(executor),
      store_(store),
      registry_(registry),
      clock_(clock),
      observer_(observer),
      namespaces_(registry, clock, observer),
      resolver_(registry, namespaces_),
      breakers_(executor, store, clock, observer),
      budget_(store, executor, clock, observer),
      flights_(executor, store, clock, registry.limits(), *this),
      lock_waiters_(executor, store, clock, observer, breakers_, budget_,
                    flights_, registry.limits()),
      sessions_(executor, store, clock, observer, breakers_, budget_, flights_,
                resolver_, early_refresh_draw_) {
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

void Coordinator::EvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done) {
  executor_.Post([this, done = std::move(done)]() mutable {
    DoEvictIdleNamespaces(std::move(done));
  });
}

void Coordinator::DoEvictIdleNamespaces(absl::AnyInvocable<void(size_t)> done) {
  // A namespace with a caller here (waiting, computing, reading) or breaker
  // work under way stays, however long ago it was last named.
  absl::flat_hash_set<std::string> active;
  sessions_.AddNamespaces(active);
  lock_waiters_.AddNamespaces(active);
  flights_.ForEach(
      [&active](const CacheKey& key, Flight&) { active.insert(key.ns); });
  std::vector<std::string> evicted =
      namespaces_.EvictIdle([&](const std::string& ns) {
        return active.contains(ns) || breakers_.Busy(ns);
      });
  for (const std::string& ns : evicted) breakers_.Forget(ns);
  done(evicted.size());
}

// ---------------------------------------------------------------------------
// The flight table's owner
// ---------------------------------------------------------------------------

Waiter* Coordinator::FindWaiter(CallId id) {
  // Ids come from one counter: an id names a session or a lock waiter.
  if (Waiter* w = sessions_.Find(id)) return w;
  return lock_waiters_.Find(id);
}

bool Coordinator::StillHoldsLock(CallId holder, const CacheKey& key) {
  return sessions_.StillHoldsLock(holder, key);
}

void Coordinator::OnRead(const CacheKey& key, absl::StatusOr<KeyRead> result) {
  sessions_.OnRead(key, std::move(result));
}

// ---------------------------------------------------------------------------
// GetOrCompute: the stream's messages go to the loop, to ComputeSessions
// ---------------------------------------------------------------------------

CallId Coordinator::StartCompute(std::shared_ptr<ComputeSink> sink) {
  CallId id = next_id_.fetch_add(1);
  executor_.Post([this, id, sink = std::move(sink)]() mutable {
    if (shutting_down_) return sink->Finish(ShuttingDown());
    sessions_.Start(id, std::move(sink));
  });
  return id;
}

CallId Coordinator::Lookup(CallId id, std::shared_ptr<ComputeSink> sink,
                           LookupRequest request) {
  if (id != 0) {
    ComputeLookup(id, std::move(request));
    return id;
  }
  // A client whose unary Get was told the value is due for an early
  // refresh says so (Lookup.refresh_due_for): no second draw here.
  absl::Time refresh_due_for = request.refresh_due_for;
  if (refresh_due_for == absl::InfinitePast() &&
      ServeFromReadCache(request, *sink, &refresh_due_for)) {
    return 0;
  }
  id = StartCompute(std::move(sink));
  PostLookup(id, std::move(request), refresh_due_for);
  return id;
}

void Coordinator::ComputeLookup(CallId id, LookupRequest request) {
  PostLookup(id, std::move(request), absl::InfinitePast());
}

void Coordinator::PostLookup(CallId id, LookupRequest request,
                             absl::Time refresh_due_for) {
  executor_.Post(
      [this, id, request = std::move(request), refresh_due_for]() mutable {
        sessions_.Lookup(id, std::move(request), refresh_due_for);
      });
}

void Coordinator::ComputeFill(CallId id, FillRequest request) {
  executor_.Post([this, id, request = std::move(request)]() mutable {
    sessions_.Fill(id, std::move(request));
  });
}

void Coordinator::ComputeAbandon(CallId id, AbandonRequest request) {
  executor_.Post([this, id, request = std::move(request)]() mutable {
    sessions_.Abandon(id, std::move(request));
  });
}

void Coordinator::ComputeHalfClosed(CallId id) {
  executor_.Post([this, id] { sessions_.HalfClosed(id); });
}

void Coordinator::ComputeGone(CallId id) {
  executor_.Post([this, id] { sessions_.Gone(id); });
}

// ---------------------------------------------------------------------------
// Unary operations
// ---------------------------------------------------------------------------

void Coordinator::Get(CacheKey key, Callback<GetResult> done) {
  if (GetFromReadCache(key, done)) return;
  executor_.Post(
      [this, key = std::move(key), done = std::move(done)]() mutable {
        auto settings = resolver_.Settings(key);
        if (!settings.ok()) return done(settings.status());
        // Concurrent reads of one key share one store round trip.
        flights_.For(key).get_readers.push_back(std::move(done));
        flights_.Read(key);
      });
}

void Coordinator::Set(SetRequest request, Callback<bool> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = resolver_.Settings(request.key);
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
    if (flights_.Find(request.key) != nullptr) for_waiters = request.value;
    CacheKey key = request.key;
    store_.Put(request.key, std::move(request.value), options,
               [this, key = std::move(key),
                for_waiters = std::move(for_waiters), ttl = *ttl,
                done = std::move(done)](absl::StatusOr<bool> stored) mutable {
                 if (stored.ok() && *stored && for_waiters.has_value()) {
                   const absl::Time now = clock_.Now();
                   sessions_.ServeAll(
                       key,
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
        auto settings = resolver_.Settings(key);
        if (!settings.ok()) return done(settings.status());
        store_.Delete(key, std::move(done));
      });
}

CallId Coordinator::AcquireLock(AcquireLockRequest request,
                                Callback<LockGrant> done) {
  CallId id = next_id_.fetch_add(1);
  executor_.Post([this, id, request = std::move(request),
                  done = std::move(done)]() mutable {
    if (shutting_down_) return done(ShuttingDown());
    auto settings = resolver_.Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    lock_waiters_.Start(id, std::move(request), *settings, std::move(done));
  });
  return id;
}

void Coordinator::CancelAcquire(CallId id) {
  executor_.Post([this, id] { lock_waiters_.Cancel(id); });
}

void Coordinator::RenewLock(RenewLockRequest request,
                            Callback<RenewResult> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = resolver_.Settings(request.key);
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
    // A lock grant's compute-budget slot (named by its token) lives as long
    // as the lock.
    if (settings->compute_budget.enabled())
      budget_.Renew(request.key.ns, request.token, *ttl);
  });
}

void Coordinator::ReleaseLock(ReleaseLockRequest request, Callback<bool> done) {
  executor_.Post([this, request = std::move(request),
                  done = std::move(done)]() mutable {
    auto settings = resolver_.Settings(request.key);
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
            breakers_.Record(ns, outcome == Outcome::kFailure
                                     ? ComputeOutcome::kFailure
                                     : ComputeOutcome::kSuccess);
          }
          done(std::move(released));
        });
  });
}

void Coordinator::OnKeyEvent(const KeyEvent& event) {
  const CacheKey& key = event.key;
  Flight* found = flights_.Find(key);
  if (found == nullptr) return;
  Flight& f = *found;
  switch (event.kind) {
    case KeyEvent::Kind::kWatching:
    case KeyEvent::Kind::kResync:
      // Whatever happened before the store delivered events was not seen.
      f.watch_confirmed = true;
      f.known_miss = false;
      flights_.ReadAgain(key);
      flights_.Wake(key);
      return;
    case KeyEvent::Kind::kReleased:
      flights_.Wake(key);
      return;
    case KeyEvent::Kind::kUpstreamFailed:
      // Like singleflight sharing an error: the current waiters get it.
      sessions_.FailWaiters(key, PeerComputeFailed());
      flights_.Wake(key);
      return;
    case KeyEvent::Kind::kFilled:
      f.known_miss = false;
      if (event.value.has_value()) {
        sessions_.ServeAll(key, *event.value, Source::kPeerFill,
                           LookupStage::kAfterWait);
      }
      flights_.Wake(
          key);  // A fenced fill may have freed the lock for lock waiters.
      return;
  }
}

void Coordinator::OnStoreAvailability(bool up) {
  LOG_EVENT(up ? "store_up" : "store_down", CacheKey{}, "");
  breakers_.OnStoreAvailability(up);
  if (up) sessions_.OnStoreUp();
  if (!up) {
    // No events arrive now: new callers must not wait on one.
    flights_.ForEach([](const CacheKey&, Flight& flight) {
      flight.watch_confirmed = false;
    });
    return;
  }
  // Events may have been lost while the store was away: re-read every key
  // someone waits on.
  std::vector<CacheKey> keys;
  flights_.ForEach([&keys](const CacheKey& key, Flight& flight) {
    keys.push_back(key);
    flight.known_miss = false;
    flight.watch_confirmed = false;  // Until the store re-subscribes.
  });
  for (const CacheKey& key : keys) {
    flights_.ReadAgain(key);
    flights_.Wake(key);
  }
}

void Coordinator::DescribeBreaker(std::string ns, Callback<BreakerView> done) {
  executor_.Post([this, ns = std::move(ns), done = std::move(done)]() mutable {
    if (absl::Status s = ValidateNamespace("namespace", ns); !s.ok())
      return done(s);
    auto settings = resolver_.Settings(ns);
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
    pending->fetch_add(1);  // Held while the releases are counted.
    pending->fetch_add(sessions_.ShutDown(finish_one));
    finish_one();
    lock_waiters_.ShutDown();
    finish_one();
  });
  done->WaitForNotificationWithTimeout(timeout);
}

}  // namespace corral
