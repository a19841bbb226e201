#include "server/core/coordinator.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"

namespace corral {
namespace {

absl::string_view ModeLabel(LeaseMode mode) {
  switch (mode) {
    case LeaseMode::kLocked:
      return "locked";
    case LeaseMode::kUnlockedTimeout:
      return "unlocked_timeout";
    case LeaseMode::kUnlockedDegraded:
      return "unlocked_degraded";
    case LeaseMode::kRefresh:
      return "refresh";
  }
  return "unknown";
}

absl::Status ProtocolError(absl::string_view what) {
  return WithReason(absl::InvalidArgumentError(what), kReasonInvalidArgument);
}

absl::Status BreakerOpen(absl::Duration retry_after) {
  return WithRetryAfter(
      WithReason(absl::UnavailableError(
                     "the circuit breaker for this namespace is open: its upstream is failing"),
                 kReasonBreakerOpen),
      retry_after);
}

absl::Status TooManyWaiters(absl::string_view what, uint32_t limit) {
  return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                        "too many callers waiting ", what, " (limit ", limit, ")")),
                    kReasonTooManyWaiters);
}

absl::Status ShuttingDown() {
  return WithReason(absl::UnavailableError("corrald is shutting down"),
                    kReasonShuttingDown);
}

// Validates namespace and key, the first thing every request checks.
absl::Status ValidateKeyFields(const CacheKey& key) {
  if (absl::Status s = ValidateNamespace("namespace", key.ns); !s.ok()) return s;
  return ValidateKey("key", key.key);
}

}  // namespace

Coordinator::Coordinator(EventLoop& loop, Store& store,
                         const NamespaceRegistry& registry, const Clock& clock,
                         CoordinatorObserver& observer)
    : loop_(loop),
      store_(store),
      registry_(registry),
      clock_(clock),
      observer_(observer),
      breakers_(loop, store, clock, observer) {
  store_.SetListener(this);
}

Coordinator::~Coordinator() { store_.SetListener(nullptr); }

absl::StatusOr<NamespaceSettings> Coordinator::Settings(const CacheKey& key) const {
  if (absl::Status s = ValidateKeyFields(key); !s.ok()) return s;
  auto settings = registry_.Find(key.ns);
  if (!settings.ok()) return WithReason(settings.status(), kReasonUnknownNamespace);
  return settings;
}

std::string Coordinator::NewToken() {
  // 128 random bits: unguessable, so only the holder can renew or release.
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(rng_),
                         absl::Uniform<uint64_t>(rng_));
}

ValueView Coordinator::ViewOf(const StoredValue& value, Source source) const {
  const absl::Time now = clock_.Now();
  ValueView view;
  view.value = value.value;
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
  loop_.Post([this, key = std::move(key), done = std::move(done)]() mutable {
    auto settings = Settings(key);
    if (!settings.ok()) return done(settings.status());
    store_.Get(key, [this, done = std::move(done)](
                        absl::StatusOr<std::optional<StoredValue>> r) mutable {
      if (!r.ok()) return done(r.status());
      GetResult result;
      if (r->has_value() && IsFresh(**r)) {
        result.found = true;
        result.value = ViewOf(**r, Source::kCache);
      }
      done(std::move(result));
    });
  });
}

void Coordinator::Set(SetRequest request, Callback<bool> done) {
  loop_.Post([this, request = std::move(request), done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (request.value.size() > settings->max_value_bytes) {
      return done(InvalidField("value", absl::StrCat("is ", request.value.size(),
                                                     " bytes; the namespace limit is ",
                                                     settings->max_value_bytes)));
    }
    auto ttl = ResolveDuration("ttl", request.ttl, settings->ttl, DurationRule::kPositive,
                               registry_.limits().max_ttl);
    if (!ttl.ok()) return done(ttl.status());
    if (!request.lock_token.empty()) {
      if (absl::Status s = ValidateToken("lock_token", request.lock_token); !s.ok()) {
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
    store_.Put(request.key, std::move(request.value), options, std::move(done));
  });
}

void Coordinator::Invalidate(CacheKey key, Callback<bool> done) {
  loop_.Post([this, key = std::move(key), done = std::move(done)]() mutable {
    auto settings = Settings(key);
    if (!settings.ok()) return done(settings.status());
    store_.Delete(key, std::move(done));
  });
}

void Coordinator::RenewLock(RenewLockRequest request, Callback<RenewResult> done) {
  loop_.Post([this, request = std::move(request), done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (absl::Status s = ValidateToken("token", request.token); !s.ok()) return done(s);
    auto ttl = ResolveDuration("ttl", request.ttl, settings->lease_ttl,
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
  });
}

void Coordinator::ReleaseLock(ReleaseLockRequest request, Callback<bool> done) {
  loop_.Post([this, request = std::move(request), done = std::move(done)]() mutable {
    auto settings = Settings(request.key);
    if (!settings.ok()) return done(settings.status());
    if (absl::Status s = ValidateToken("token", request.token); !s.ok()) return done(s);
    // OUTCOME_FAILURE is an upstream failure: like an Abandon with
    // upstream_failure, the key's GetOrCompute waiters share it.
    ReleaseNotice notice = request.outcome == Outcome::kFailure
                               ? ReleaseNotice::kUpstreamFailed
                               : ReleaseNotice::kReleased;
    const Outcome outcome = request.outcome;
    store_.ReleaseLock(request.key, request.token, notice,
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

// ---------------------------------------------------------------------------
// AcquireLock
// ---------------------------------------------------------------------------

Coordinator::CallId Coordinator::AcquireLock(AcquireLockRequest request,
                                             Callback<LockGrant> done) {
  CallId id = next_id_.fetch_add(1);
  loop_.Post([this, id, request = std::move(request), done = std::move(done)]() mutable {
    DoAcquireLock(id, std::move(request), std::move(done));
  });
  return id;
}

void Coordinator::DoAcquireLock(CallId id, AcquireLockRequest request,
                                Callback<LockGrant> done) {
  if (shutting_down_) return done(ShuttingDown());
  auto settings = Settings(request.key);
  if (!settings.ok()) return done(settings.status());
  const LimitSettings& limits = registry_.limits();
  auto ttl = ResolveDuration("ttl", request.ttl, settings->lease_ttl,
                             DurationRule::kPositive, limits.max_wait);
  if (!ttl.ok()) return done(ttl.status());
  auto wait = ResolveDuration("wait_timeout", request.wait_timeout,
                              settings->wait_timeout, DurationRule::kNonNegative,
                              limits.max_wait);
  if (!wait.ok()) return done(wait.status());

  // The waiter exists from here on, so a cancellation at any point finds it.
  const absl::Time now = clock_.Now();
  LockWaiter& w = lock_waiters_[id];
  w.id = id;
  w.ttl = *ttl;
  w.token = NewToken();
  w.started = now;
  w.done = std::move(done);
  w.request = std::move(request);
  // A lock is taken to compute: an open breaker fails it fast.
  breakers_.Admit(*settings, [this, id, wait = *wait](BreakerVerdict verdict) {
    auto it = lock_waiters_.find(id);
    if (it == lock_waiters_.end()) return;  // Cancelled meanwhile.
    if (!verdict.allowed) {
      LockWaiter w = std::move(it->second);
      lock_waiters_.erase(it);
      return w.done(BreakerOpen(verdict.retry_after));
    }
    StartLockWait(id, wait);
  });
}

void Coordinator::StartLockWait(CallId id, absl::Duration wait) {
  LockWaiter& w = lock_waiters_.at(id);
  if (shutting_down_) {
    LockWaiter gone = std::move(w);
    lock_waiters_.erase(id);
    return gone.done(ShuttingDown());
  }
  const absl::Time now = clock_.Now();
  absl::Duration budget = std::min(wait, w.request.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Try once, outside the queue: nobody waits, so nobody is overtaken.
    CacheKey key = w.request.key;
    store_.TryLock(key, w.token, w.ttl,
                   [this, id, key, token = w.token](absl::StatusOr<LockAttempt> r) {
                     auto it = lock_waiters_.find(id);
                     if (it == lock_waiters_.end()) {
                       // Cancelled while we asked: give back what we got.
                       if (r.ok() && r->acquired) {
                         store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                                            [](absl::StatusOr<bool>) {});
                       }
                       return;
                     }
                     LockWaiter waiter = std::move(it->second);
                     lock_waiters_.erase(it);
                     const std::string& ns = waiter.request.key.ns;
                     if (!r.ok()) {
                       observer_.OnLockAcquisition(ns, "error");
                       return waiter.done(r.status());
                     }
                     LockGrant grant;
                     grant.acquired = r->acquired;
                     if (r->acquired) {
                       grant.token = waiter.token;
                       grant.fencing_token = r->fencing_token;
                       grant.expires_at = r->expires_at;
                     }
                     observer_.OnLockAcquisition(ns, r->acquired ? "acquired" : "contended");
                     waiter.done(grant);
                   });
    return;
  }
  if (absl::Status admitted = AdmitWaiter(w.request.key); !admitted.ok()) {
    LockWaiter gone = std::move(w);
    lock_waiters_.erase(id);
    return gone.done(admitted);
  }
  w.timer = loop_.RunAfter(budget, [this, id] { OnLockWaitTimeout(id); });
  observer_.OnWaitersChanged(w.request.key.ns, +1);
  Enqueue(w.request.key, QueueEntry{true, id});
  Pump(w.request.key);
}

void Coordinator::CancelAcquire(CallId id) {
  loop_.Post([this, id] {
    auto it = lock_waiters_.find(id);
    if (it == lock_waiters_.end()) return;
    LockWaiter& w = it->second;
    loop_.Cancel(w.timer);
    CacheKey key = w.request.key;
    bool queued = w.timer != 0;
    if (queued) {
      observer_.OnWaitersChanged(key.ns, -1);
      observer_.OnWaitEnded(key.ns, clock_.Now() - w.started);
    }
    lock_waiters_.erase(it);
    if (queued) LeaveQueue(key);
  });
}

void Coordinator::OnLockWaitTimeout(CallId id) {
  auto it = lock_waiters_.find(id);
  if (it == lock_waiters_.end()) return;
  LockWaiter w = std::move(it->second);
  lock_waiters_.erase(it);
  const absl::Duration waited = clock_.Now() - w.started;
  observer_.OnWaitersChanged(w.request.key.ns, -1);
  observer_.OnWaitEnded(w.request.key.ns, waited);
  observer_.OnLockAcquisition(w.request.key.ns, "timeout");
  LeaveQueue(w.request.key);
  LockGrant grant;
  grant.acquired = false;
  grant.waited = waited;
  w.done(grant);
}

// ---------------------------------------------------------------------------
// GetOrCompute sessions
// ---------------------------------------------------------------------------

Coordinator::CallId Coordinator::StartCompute(std::shared_ptr<ComputeSink> sink) {
  CallId id = next_id_.fetch_add(1);
  loop_.Post([this, id, sink = std::move(sink)]() mutable {
    if (shutting_down_) return sink->Finish(ShuttingDown());
    Session& s = sessions_[id];
    s.id = id;
    s.sink = std::move(sink);
  });
  return id;
}

void Coordinator::ComputeLookup(CallId id, LookupRequest request) {
  loop_.Post([this, id, request = std::move(request)]() mutable {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    if (s.state != SessionState::kAwaitLookup) {
      return FinishSession(s, ProtocolError("a second Lookup on one stream"));
    }
    DoLookup(s, std::move(request));
  });
}

void Coordinator::ComputeFill(CallId id, FillRequest request) {
  loop_.Post([this, id, request = std::move(request)]() mutable {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    if (s.state == SessionState::kAwaitLookup) {
      return FinishSession(s, ProtocolError("the first message must be a Lookup"));
    }
    if (s.state != SessionState::kLeased || s.fill_in_flight) {
      return FinishSession(s, ProtocolError("Fill without a lease"));
    }
    DoFill(s, std::move(request));
  });
}

void Coordinator::ComputeAbandon(CallId id, AbandonRequest request) {
  loop_.Post([this, id, request = std::move(request)]() mutable {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    if (s.state == SessionState::kAwaitLookup) {
      return FinishSession(s, ProtocolError("the first message must be a Lookup"));
    }
    if (s.state != SessionState::kLeased || s.fill_in_flight) {
      return FinishSession(s, ProtocolError("Abandon without a lease"));
    }
    DoAbandon(s, std::move(request));
  });
}

void Coordinator::ComputeHalfClosed(CallId id) {
  loop_.Post([this, id] {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    s.half_closed = true;
    switch (s.state) {
      case SessionState::kAwaitLookup:
        return FinishSession(s, ProtocolError("the stream closed before a Lookup"));
      case SessionState::kLeased:
        // A leaseholder that can no longer send a Fill has abandoned.
        if (!s.fill_in_flight) DoAbandon(s, AbandonRequest{"half-closed", false});
        return;
      default:
        return;  // A waiter may half-close; it still gets its answer.
    }
  });
}

void Coordinator::ComputeGone(CallId id) {
  loop_.Post([this, id] { DoGone(id); });
}

void Coordinator::DoGone(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.sink.reset();  // Nobody listens any more.
  switch (s.state) {
    case SessionState::kLeased:
      if (!s.fill_in_flight) DoAbandon(s, AbandonRequest{"stream ended", false});
      return;
    case SessionState::kWaiting:
      loop_.Cancel(s.wait_timer);
      observer_.OnWaitersChanged(s.lookup.key.ns, -1);
      observer_.OnWaitEnded(s.lookup.key.ns, clock_.Now() - s.wait_started);
      {
        CacheKey key = s.lookup.key;
        sessions_.erase(it);
        LeaveQueue(key);
      }
      return;
    case SessionState::kReading:
      // The flight's reader list still names it; OnRead skips missing ids.
      sessions_.erase(it);
      return;
    default:
      sessions_.erase(it);
      return;
  }
}

void Coordinator::DoLookup(Session& s, LookupRequest request) {
  auto settings = Settings(request.key);
  if (!settings.ok()) return FinishSession(s, settings.status());
  const LimitSettings& limits = registry_.limits();
  auto ttl = ResolveDuration("lookup.ttl", request.ttl, settings->ttl,
                             DurationRule::kPositive, limits.max_ttl);
  if (!ttl.ok()) return FinishSession(s, ttl.status());
  auto wait = ResolveDuration("lookup.wait_timeout", request.wait_timeout,
                              settings->wait_timeout, DurationRule::kNonNegative,
                              limits.max_wait);
  if (!wait.ok()) return FinishSession(s, wait.status());
  auto lease_ttl = ResolveDuration("lookup.lease_ttl", request.lease_ttl,
                                   settings->lease_ttl, DurationRule::kPositive,
                                   limits.max_wait);
  if (!lease_ttl.ok()) return FinishSession(s, lease_ttl.status());
  s.ns = *std::move(settings);
  s.ttl = *ttl;
  s.wait_timeout = *wait;
  s.lease_ttl = *lease_ttl;
  s.lookup = std::move(request);
  s.state = SessionState::kReading;
  s.wait_started = clock_.Now();
  Flight& f = FlightFor(s.lookup.key);
  if (f.known_miss && f.held_elsewhere && f.watch_confirmed) {
    // Another caller's compute is under way and its fill will be delivered
    // to this flight: wait for it without asking the store again.
    observer_.OnLookup(s.lookup.key.ns, LookupStage::kInitial, false);
    return BeginWait(s);
  }
  f.readers.push_back(s.id);
  Read(s.lookup.key);
}

void Coordinator::SendValue(Session& s, const StoredValue& value, Source source) {
  if (s.sink) s.sink->SendValue(ViewOf(value, source));
  RetireSession(s);
}

void Coordinator::FinishSession(Session& s, absl::Status status) {
  if (s.state == SessionState::kWaiting) {
    loop_.Cancel(s.wait_timer);
    observer_.OnWaitersChanged(s.lookup.key.ns, -1);
    CacheKey key = s.lookup.key;
    if (s.sink) s.sink->Finish(std::move(status));
    RetireSession(s);
    LeaveQueue(key);
    return;
  }
  if (s.state == SessionState::kLeased) {
    // A protocol error while holding the lease: release it as an abandon.
    if (!s.fill_in_flight) {
      AbandonRequest abandon{"protocol error", false};
      std::shared_ptr<ComputeSink> sink = std::move(s.sink);
      DoAbandon(s, abandon);  // Retires the session.
      if (sink) sink->Finish(std::move(status));
      return;
    }
  }
  if (s.sink) s.sink->Finish(std::move(status));
  RetireSession(s);
}

void Coordinator::RetireSession(Session& s) {
  EndLease(s);
  const bool degraded =
      s.state == SessionState::kLeased && s.mode == LeaseMode::kUnlockedDegraded;
  const CacheKey key = s.lookup.key;
  const CallId id = s.id;
  s.state = SessionState::kDone;
  sessions_.erase(id);
  if (degraded) EndDegraded(key, id);
}

// ---------------------------------------------------------------------------
// The flight: shared reads, one FIFO, one lock attempt at a time
// ---------------------------------------------------------------------------

void Coordinator::Read(const CacheKey& key) {
  Flight& f = FlightFor(key);
  if (f.read_in_flight) {
    f.reread = true;
    return;
  }
  f.read_in_flight = true;
  store_.Get(key, [this, key](absl::StatusOr<std::optional<StoredValue>> r) {
    OnRead(key, std::move(r));
  });
}

void Coordinator::OnRead(const CacheKey& key,
                         absl::StatusOr<std::optional<StoredValue>> result) {
  // read_in_flight stays set while the readers are handled, so the flight
  // cannot be retired under us.
  std::vector<CallId> readers;
  readers.swap(FlightFor(key).readers);
  const bool hit = result.ok() && result->has_value() && IsFresh(**result);
  // A value past its TTL, kept for the stale window: served to allow_stale
  // callers if the breaker refuses the compute.
  if (result.ok() && result->has_value() && !hit) FlightFor(key).stale = **result;

  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading) continue;
    Session& s = it->second;
    observer_.OnLookup(key.ns, LookupStage::kInitial, hit);
    if (hit) {
      SendValue(s, **result, Source::kCache);
      continue;
    }
    if (!result.ok() && !(absl::IsUnavailable(result.status()) &&
                          s.ns.on_store_unavailable ==
                              StoreUnavailablePolicy::kCoordinateLocally)) {
      FinishSession(s, result.status());
      continue;
    }
    if (!result.ok()) {
      // Coordinating locally: a value this replica computed during the
      // outage serves like a cache hit.
      auto local = degraded_values_.find(key);
      if (local != degraded_values_.end() && IsFresh(local->second)) {
        SendValue(s, local->second, Source::kCache);
        continue;
      }
    }
    // A miss (or, with the store down, coordination on this replica alone).
    BeginWait(s);
  }
  // A read that an event asked for (kWatching/kResync) serves the waiters.
  if (hit) ServeAll(key, **result, Source::kPeerFill, LookupStage::kAfterWait);

  Flight& f = FlightFor(key);
  f.read_in_flight = false;
  if (result.ok()) f.known_miss = !hit;
  if (f.reread) {
    f.reread = false;
    Read(key);
  }
  Pump(key);
  MaybeRetire(key);
}

void Coordinator::BeginWait(Session& s) {
  // A miss. While the breaker is open it fails fast (no wait for a compute
  // that would be refused).
  if (auto verdict = breakers_.Peek(s.ns); verdict.has_value() && !verdict->allowed) {
    return RejectForBreaker(s, *verdict);
  }
  // Wait in line for the lock (or for someone else's fill).
  const CacheKey& key = s.lookup.key;
  if (absl::Status admitted = AdmitWaiter(key); !admitted.ok()) {
    return FinishSession(s, admitted);
  }
  s.state = SessionState::kWaiting;
  observer_.OnWaitersChanged(key.ns, +1);
  Enqueue(key, QueueEntry{false, s.id});
  absl::Duration budget = std::min(s.wait_timeout, s.lookup.deadline - clock_.Now());
  if (budget <= absl::ZeroDuration()) {
    // Zero wait: straight to the timeout policy.
    OnWaitTimeout(s.id);
    return;
  }
  CallId sid = s.id;
  s.wait_timer = loop_.RunAfter(budget, [this, sid] { OnWaitTimeout(sid); });
}

absl::Status Coordinator::AdmitWaiter(const CacheKey& key) {
  // The first caller of a key is the one that will compute; the limits are
  // about callers piling up behind it.
  if (FlightFor(key).waiting == 0) return absl::OkStatus();
  const LimitSettings& limits = registry_.limits();
  if (total_waiting_ >= static_cast<int>(limits.max_waiters)) {
    return TooManyWaiters("on this server", limits.max_waiters);
  }
  if (FlightFor(key).waiting >= static_cast<int>(limits.max_waiters_per_key)) {
    return TooManyWaiters("for this key", limits.max_waiters_per_key);
  }
  return absl::OkStatus();
}

void Coordinator::Enqueue(const CacheKey& key, QueueEntry entry) {
  Flight& f = FlightFor(key);
  f.queue.push_back(entry);
  ++f.waiting;
  ++total_waiting_;
}

void Coordinator::LeaveQueue(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  --f.waiting;
  --total_waiting_;
  // Drop skipped entries at the front now, the rest when they come up.
  while (!f.queue.empty()) {
    const QueueEntry& e = f.queue.front();
    bool live = e.is_lock ? lock_waiters_.contains(e.id) : IsWaitingSession(e.id, key);
    if (live) break;
    f.queue.pop_front();
  }
  // A queue mostly made of departed callers is compacted.
  if (f.queue.size() > 64 && f.queue.size() > 4 * static_cast<size_t>(f.waiting)) {
    std::deque<QueueEntry> kept;
    for (const QueueEntry& e : f.queue) {
      bool live = e.is_lock ? lock_waiters_.contains(e.id) : IsWaitingSession(e.id, key);
      if (live) kept.push_back(e);
    }
    f.queue.swap(kept);
  }
  MaybeRetire(key);
}

bool Coordinator::IsWaitingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.state == SessionState::kWaiting &&
         it->second.lookup.key == key;
}

void Coordinator::Pump(const CacheKey& key) {
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  Flight& f = fit->second;
  if (f.waiting == 0 || f.held_elsewhere || f.attempt_in_flight || f.degraded_holder != 0) {
    return;
  }
  // The head: the first live waiter that can take the lock. A GetOrCompute
  // waiter that half-closed cannot send a Fill, so it only waits for one.
  std::optional<QueueEntry> head;
  while (!f.queue.empty()) {
    const QueueEntry& e = f.queue.front();
    bool live = e.is_lock ? lock_waiters_.contains(e.id) : IsWaitingSession(e.id, key);
    if (!live) {
      f.queue.pop_front();
      continue;
    }
    break;
  }
  for (const QueueEntry& e : f.queue) {
    if (e.is_lock) {
      if (lock_waiters_.contains(e.id)) {
        head = e;
        break;
      }
    } else if (IsWaitingSession(e.id, key) && !sessions_.at(e.id).half_closed) {
      head = e;
      break;
    }
  }
  if (!head) return;
  std::string token;
  absl::Duration ttl;
  if (head->is_lock) {
    const LockWaiter& w = lock_waiters_.at(head->id);
    token = w.token;
    ttl = w.ttl;
  } else {
    token = NewToken();
    ttl = sessions_.at(head->id).lease_ttl;
  }
  f.attempt_in_flight = true;
  f.repump = false;
  store_.TryLock(key, token, ttl,
                 [this, key, h = *head, token, ttl](absl::StatusOr<LockAttempt> r) mutable {
                   OnAttempt(key, h, std::move(token), ttl, std::move(r));
                 });
}

void Coordinator::Wake(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  f.held_elsewhere = false;
  if (f.attempt_in_flight) {
    f.repump = true;  // The attempt under way may predate the wake-up.
    return;
  }
  Pump(key);
}

void Coordinator::FinishAttempt(const CacheKey& key, bool pump) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  f.attempt_in_flight = false;
  pump = pump || f.repump;
  f.repump = false;
  if (pump) Pump(key);
  MaybeRetire(key);
}

void Coordinator::OnAttempt(const CacheKey& key, QueueEntry head, std::string token,
                            absl::Duration ttl, absl::StatusOr<LockAttempt> result) {
  // attempt_in_flight stays set until FinishAttempt, so the flight stays.
  (void)ttl;
  const bool head_live = head.is_lock ? lock_waiters_.contains(head.id)
                                      : IsWaitingSession(head.id, key);
  if (!result.ok()) {
    LOG_EVENT("lock_attempt_failed", key, "error=\"", result.status().message(), "\"");
    // Nobody can be promised the fleet-wide lock now: lock callers get the
    // error at once rather than at their timeout.
    std::vector<CallId> lock_ids;
    for (const QueueEntry& e : FlightFor(key).queue) {
      if (e.is_lock && lock_waiters_.contains(e.id)) lock_ids.push_back(e.id);
    }
    for (CallId id : lock_ids) {
      LockWaiter w = std::move(lock_waiters_.at(id));
      lock_waiters_.erase(id);
      loop_.Cancel(w.timer);
      observer_.OnWaitersChanged(key.ns, -1);
      observer_.OnWaitEnded(key.ns, clock_.Now() - w.started);
      observer_.OnLockAcquisition(key.ns, "error");
      LeaveQueue(key);
      w.done(result.status());
    }
    if (!head.is_lock && IsWaitingSession(head.id, key)) {
      Session& s = sessions_.at(head.id);
      if (absl::IsUnavailable(result.status()) &&
          s.ns.on_store_unavailable == StoreUnavailablePolicy::kCoordinateLocally) {
        ComputeDegraded(key, s.id);
        return FinishAttempt(key, /*pump=*/false);
      }
      // FAIL policy: every compute waiter of the key gets the error.
      const absl::Status error = result.status();
      EndWaiters(key, [this, &error](Session& s) { FinishSession(s, error); });
    }
    return FinishAttempt(key, /*pump=*/true);
  }
  if (result->acquired && !head_live) {
    // The caller left while we asked; give the lock straight back.
    store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                       [this, key](absl::StatusOr<bool>) { FinishAttempt(key, /*pump=*/true); });
    return;
  }
  if (!result->acquired) {
    // Someone else holds the lock. Listen for its release or fill, and come
    // back when it would expire if no word comes (its holder may have died).
    EnsureWatching(key);
    Flight& f = FlightFor(key);
    // Unless a wake-up came while we asked, the lock stays held until an
    // event or the holder's expiry says otherwise.
    if (!f.repump) f.held_elsewhere = true;
    RetryAt(key, result->expires_at);
    // Tries again at once only if a wake-up came while we asked.
    return FinishAttempt(key, /*pump=*/false);
  }
  const absl::Time now = clock_.Now();
  if (head.is_lock) {
    LockWaiter w = std::move(lock_waiters_.at(head.id));
    lock_waiters_.erase(head.id);
    loop_.Cancel(w.timer);
    observer_.OnWaitersChanged(key.ns, -1);
    observer_.OnWaitEnded(key.ns, now - w.started);
    observer_.OnLockAcquisition(key.ns, "acquired");
    LockGrant grant;
    grant.acquired = true;
    grant.token = w.token;
    grant.fencing_token = result->fencing_token;
    grant.expires_at = result->expires_at;
    grant.waited = now - w.started;
    LeaveQueue(key);
    w.done(grant);
    return FinishAttempt(key, /*pump=*/true);
  }
  // A GetOrCompute waiter took the lock: read again, since a fill may have
  // landed between its miss and now (the seed's double check).
  Session& s = sessions_.at(head.id);
  loop_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  s.token = token;
  observer_.OnLockAcquisition(key.ns, "acquired");
  const CallId sid = s.id;
  const uint64_t fence = result->fencing_token;
  store_.Get(key, [this, key, sid, token, fence](
                      absl::StatusOr<std::optional<StoredValue>> r) {
    const bool live = IsWaitingSession(sid, key);
    const bool hit = r.ok() && r->has_value() && IsFresh(**r);
    observer_.OnLookup(key.ns, LookupStage::kAfterLock, hit);
    if (live && r.ok() && !hit) {
      if (r->has_value()) FlightFor(key).stale = **r;
      // The compute is about to start: the breaker has the last word.
      breakers_.Admit(sessions_.at(sid).ns, [this, key, sid, token,
                                             fence](BreakerVerdict verdict) {
        const bool live = IsWaitingSession(sid, key);
        if (live && verdict.allowed) {
          Session& s = sessions_.at(sid);
          observer_.OnWaitersChanged(key.ns, -1);
          observer_.OnWaitEnded(key.ns, clock_.Now() - s.wait_started);
          GrantLease(s, LeaseMode::kLocked, fence, "");
          LeaveQueue(key);
          return FinishAttempt(key, /*pump=*/true);
        }
        store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                           [this, key](absl::StatusOr<bool>) { FinishAttempt(key, true); });
        if (!verdict.allowed) {
          // Everyone here would be refused the same way.
          EndWaiters(key, [this, &verdict](Session& s) { RejectForBreaker(s, verdict); });
        }
      });
      return;
    }
    // Nobody to lease to, or nothing to compute: the lock goes back.
    store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                       [this, key](absl::StatusOr<bool>) { FinishAttempt(key, /*pump=*/true); });
    if (hit) {
      if (live) {
        Session& s = sessions_.at(sid);
        loop_.Cancel(s.wait_timer);
        observer_.OnWaitersChanged(key.ns, -1);
        observer_.OnWaitEnded(key.ns, clock_.Now() - s.wait_started);
        SendValue(s, **r, Source::kCacheAfterLock);
        LeaveQueue(key);
      }
      ServeAll(key, **r, Source::kPeerFill, LookupStage::kAfterLock);
    } else if (live) {
      FinishSession(sessions_.at(sid), r.status());
    }
  });
}

void Coordinator::RetryAt(const CacheKey& key, absl::Time when) {
  Flight& f = FlightFor(key);
  // A small margin so the holder's key has really expired in the store.
  when += absl::Milliseconds(5);
  if (f.retry_timer != 0 && f.retry_at <= when) return;
  if (f.retry_timer != 0) loop_.Cancel(f.retry_timer);
  f.retry_at = when;
  f.retry_timer = loop_.RunAfter(when - clock_.Now(), [this, key] {
    auto it = flights_.find(key);
    if (it == flights_.end()) return;
    it->second.retry_timer = 0;
    it->second.retry_at = absl::InfiniteFuture();
    Wake(key);
  });
}

void Coordinator::EnsureWatching(const CacheKey& key) {
  Flight& f = FlightFor(key);
  if (f.watching) return;
  f.watching = true;
  store_.Watch(key);
}

void Coordinator::MaybeRetire(const CacheKey& key) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  Flight& f = it->second;
  if (f.waiting > 0 || !f.readers.empty() || f.read_in_flight || f.attempt_in_flight ||
      f.degraded_holder != 0) {
    return;
  }
  if (f.watching) store_.Unwatch(key);
  if (f.retry_timer != 0) loop_.Cancel(f.retry_timer);
  flights_.erase(it);
}

void Coordinator::ServeAll(const CacheKey& key, const StoredValue& value, Source source,
                           LookupStage stage) {
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  Flight& f = fit->second;
  // Readers still waiting on a store read can take the value too.
  std::vector<CallId> readers;
  readers.swap(f.readers);
  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading) continue;
    observer_.OnLookup(key.ns, LookupStage::kInitial, true);
    SendValue(it->second, value, Source::kCache);
  }
  std::deque<QueueEntry> kept;
  int served = 0;
  const absl::Time now = clock_.Now();
  for (const QueueEntry& e : f.queue) {
    if (e.is_lock) {
      if (lock_waiters_.contains(e.id)) kept.push_back(e);
      continue;
    }
    auto it = sessions_.find(e.id);
    if (it == sessions_.end() || it->second.state != SessionState::kWaiting ||
        !(it->second.lookup.key == key)) {
      continue;
    }
    Session& s = it->second;
    loop_.Cancel(s.wait_timer);
    observer_.OnWaitEnded(key.ns, now - s.wait_started);
    observer_.OnLookup(key.ns, stage, true);
    SendValue(s, value, source);
    ++served;
  }
  f.queue.swap(kept);
  f.waiting -= served;
  total_waiting_ -= served;
  if (served > 0) observer_.OnWaitersChanged(key.ns, -served);
  MaybeRetire(key);
}

void Coordinator::EndWaiters(const CacheKey& key, const std::function<void(Session&)>& end) {
  auto fit = flights_.find(key);
  if (fit == flights_.end()) return;
  Flight& f = fit->second;
  std::deque<QueueEntry> kept;
  std::vector<CallId> ending;
  for (const QueueEntry& e : f.queue) {
    if (e.is_lock) {
      if (lock_waiters_.contains(e.id)) kept.push_back(e);
      continue;
    }
    if (IsWaitingSession(e.id, key)) ending.push_back(e.id);
  }
  f.queue.swap(kept);
  f.waiting -= static_cast<int>(ending.size());
  total_waiting_ -= static_cast<int>(ending.size());
  if (!ending.empty()) observer_.OnWaitersChanged(key.ns, -static_cast<int>(ending.size()));
  const absl::Time now = clock_.Now();
  for (CallId id : ending) {
    Session& s = sessions_.at(id);
    loop_.Cancel(s.wait_timer);
    s.wait_timer = 0;
    observer_.OnWaitEnded(key.ns, now - s.wait_started);
    s.state = SessionState::kReading;  // Out of the queue; `end` finishes it.
    end(s);
  }
  MaybeRetire(key);
}

void Coordinator::FailWaiters(const CacheKey& key, const absl::Status& status) {
  EndWaiters(key, [this, &status](Session& s) { FinishSession(s, status); });
}

void Coordinator::ComputeDegraded(const CacheKey& key, CallId sid) {
  FlightFor(key).degraded_holder = sid;  // Pump stays away until it ends.
  // The seed's last-chance check before an unlocked compute.
  store_.Get(key, [this, key, sid](absl::StatusOr<std::optional<StoredValue>> r) {
    std::optional<StoredValue> found;
    if (r.ok() && r->has_value() && IsFresh(**r)) found = **r;
    if (auto local = degraded_values_.find(key);
        !found && local != degraded_values_.end() && IsFresh(local->second)) {
      found = local->second;
    }
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, found.has_value());
    if (found || !IsWaitingSession(sid, key)) {
      if (found) ServeAll(key, *found, Source::kPeerFill, LookupStage::kBeforeFallback);
      return EndDegraded(key, sid);
    }
    breakers_.Admit(sessions_.at(sid).ns, [this, key, sid](BreakerVerdict verdict) {
      if (!IsWaitingSession(sid, key)) return EndDegraded(key, sid);
      if (!verdict.allowed) {
        EndWaiters(key, [this, &verdict](Session& s) { RejectForBreaker(s, verdict); });
        return EndDegraded(key, sid);
      }
      Session& s = sessions_.at(sid);
      loop_.Cancel(s.wait_timer);
      s.wait_timer = 0;
      observer_.OnWaitersChanged(key.ns, -1);
      observer_.OnWaitEnded(key.ns, clock_.Now() - s.wait_started);
      LOG_EVENT("unlocked_compute", key, "cause=store_unavailable scope=this_replica");
      GrantLease(s, LeaseMode::kUnlockedDegraded, 0, "");
      LeaveQueue(key);
    });
  });
}

void Coordinator::EndDegraded(const CacheKey& key, CallId sid) {
  auto it = flights_.find(key);
  if (it == flights_.end() || it->second.degraded_holder != sid) return;
  it->second.degraded_holder = 0;
  Wake(key);
  MaybeRetire(key);
}

void Coordinator::RejectForBreaker(Session& s, const BreakerVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  auto fit = flights_.find(key);
  if (s.lookup.allow_stale && fit != flights_.end() && fit->second.stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    return SendValue(s, *fit->second.stale, Source::kStale);
  }
  if (s.state == SessionState::kWaiting) {
    // Still queued (a fast failure at the miss never queued it).
    loop_.Cancel(s.wait_timer);
    observer_.OnWaitersChanged(key.ns, -1);
    s.state = SessionState::kReading;
    LeaveQueue(key);
  }
  FinishSession(s, BreakerOpen(verdict.retry_after));
}

void Coordinator::RecordOutcome(const NamespaceSettings& ns, ComputeOutcome outcome) {
  breakers_.Record(ns, outcome);
}

void Coordinator::DescribeBreaker(std::string ns, Callback<BreakerView> done) {
  loop_.Post([this, ns = std::move(ns), done = std::move(done)]() mutable {
    if (absl::Status s = ValidateNamespace("namespace", ns); !s.ok()) return done(s);
    auto settings = registry_.Find(ns);
    if (!settings.ok()) return done(WithReason(settings.status(), kReasonUnknownNamespace));
    breakers_.Describe(*settings, [done = std::move(done)](BreakerView view) mutable {
      done(std::move(view));
    });
  });
}

void Coordinator::OnBreakerChanged(const std::string& ns, const BreakerRecord& record) {
  breakers_.OnChanged(ns, record);
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
      Read(key);
      Wake(key);
      return;
    case KeyEvent::Kind::kReleased:
      Wake(key);
      return;
    case KeyEvent::Kind::kUpstreamFailed:
      // Like singleflight sharing an error: the current waiters get it.
      FailWaiters(key, WithReason(absl::UnavailableError(
                                      "the caller computing this value reported an "
                                      "upstream failure"),
                                  kReasonPeerComputeFailed));
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
    Read(key);
    Wake(key);
  }
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

void Coordinator::GrantLease(Session& s, LeaseMode mode, uint64_t fencing_token,
                             std::string current_value) {
  const absl::Time now = clock_.Now();
  s.state = SessionState::kLeased;
  s.mode = mode;
  s.fencing_token = fencing_token;
  s.lease_started = now;
  s.revoked = false;
  CallId id = s.id;
  if (mode == LeaseMode::kLocked) {
    // Keep the lock alive while the stream is open, up to max_compute_time.
    s.renew_timer = loop_.RunAfter(s.lease_ttl / 3, [this, id] { RenewLease(id); });
    s.revoke_timer = loop_.RunAfter(s.ns.max_compute_time, [this, id] { RevokeLease(id); });
  } else {
    observer_.OnDuplicateCompute(s.lookup.key.ns);
  }
  LeaseView lease;
  lease.fencing_token = fencing_token;
  lease.deadline = now + s.ns.max_compute_time;
  lease.mode = mode;
  lease.current_value = std::move(current_value);
  if (s.sink) s.sink->SendLease(std::move(lease));
}

void Coordinator::EndLease(Session& s) {
  if (s.renew_timer != 0) loop_.Cancel(s.renew_timer);
  if (s.revoke_timer != 0) loop_.Cancel(s.revoke_timer);
  if (s.wait_timer != 0) loop_.Cancel(s.wait_timer);
  s.renew_timer = s.revoke_timer = s.wait_timer = 0;
}

void Coordinator::RenewLease(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.renew_timer = loop_.RunAfter(s.lease_ttl / 3, [this, id] { RenewLease(id); });
  store_.RenewLock(s.lookup.key, s.token, s.lease_ttl,
                   [this, id](absl::StatusOr<std::optional<absl::Time>> r) {
                     auto it = sessions_.find(id);
                     if (it == sessions_.end() || it->second.state != SessionState::kLeased) {
                       return;
                     }
                     // A store error leaves the lease as it is: the fill's
                     // fence decides. A definite "not yours" revokes it.
                     if (r.ok() && !r->has_value() && !it->second.revoked) {
                       Session& s = it->second;
                       LOG_EVENT("lease_lost", s.lookup.key,
                                 "fencing_token=", s.fencing_token);
                       s.revoked = true;
                       EndLease(s);
                       observer_.OnCompute(s.lookup.key.ns, "locked", "revoked");
                     }
                   });
}

void Coordinator::RevokeLease(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.revoke_timer = 0;
  if (s.state != SessionState::kLeased || s.revoked || s.fill_in_flight) return;
  LOG_EVENT("lease_revoked", s.lookup.key, "fencing_token=", s.fencing_token,
            " max_compute_time=", absl::FormatDuration(s.ns.max_compute_time));
  s.revoked = true;
  EndLease(s);
  observer_.OnCompute(s.lookup.key.ns, "locked", "revoked");
  RecordOutcome(s.ns, ComputeOutcome::kFailure);  // The upstream hung.
  CacheKey key = s.lookup.key;
  store_.ReleaseLock(key, s.token, ReleaseNotice::kReleased,
                     [this, key](absl::StatusOr<bool>) { Wake(key); });
}

void Coordinator::DoFill(Session& s, FillRequest request) {
  const CacheKey key = s.lookup.key;
  if (request.value.size() > s.ns.max_value_bytes) {
    return FinishSession(
        s, InvalidField("fill.value", absl::StrCat("is ", request.value.size(),
                                                   " bytes; the namespace limit is ",
                                                   s.ns.max_value_bytes)));
  }
  auto ttl = ResolveDuration("fill.ttl", request.ttl, s.ttl, DurationRule::kPositive,
                             registry_.limits().max_ttl);
  if (!ttl.ok()) return FinishSession(s, ttl.status());
  if (s.revoked) {
    if (s.sink) s.sink->SendFilled(FilledView{false, s.fencing_token, "lease-revoked"});
    observer_.OnCompute(key.ns, ModeLabel(s.mode), "not_stored");
    return RetireSession(s);
  }
  EndLease(s);
  s.fill_in_flight = true;
  {
    const absl::Duration took = clock_.Now() - s.lease_started;
    const bool slow = s.ns.breaker.slow_call_duration.has_value() &&
                      took > *s.ns.breaker.slow_call_duration;
    RecordOutcome(s.ns, slow ? ComputeOutcome::kSlowSuccess : ComputeOutcome::kSuccess);
  }
  PutOptions options;
  options.ttl = *ttl;
  options.stale_window = s.ns.stale_window;
  if (s.mode == LeaseMode::kLocked) {
    options.lock_token = s.token;
    options.release_lock = true;
  } else {
    options.only_if_absent = true;
  }
  const absl::Duration compute_time = clock_.Now() - s.lease_started;
  CallId id = s.id;
  std::string value = request.value;
  store_.Put(key, std::move(request.value), options,
             [this, id, key, value = std::move(value), ttl = *ttl,
              compute_time](absl::StatusOr<bool> stored) {
               auto it = sessions_.find(id);
               if (it == sessions_.end()) return;
               Session& s = it->second;
               FilledView filled;
               filled.fencing_token = s.fencing_token;
               const absl::string_view mode = ModeLabel(s.mode);
               if (!stored.ok()) {
                 filled.reason = std::string(kReasonStoreUnavailable);
                 observer_.OnCompute(key.ns, mode, "not_stored");
               } else if (!*stored) {
                 filled.reason = s.mode == LeaseMode::kLocked ? "lease-lost" : "value-present";
                 observer_.OnCompute(key.ns, mode, "not_stored");
               } else {
                 filled.stored = true;
                 observer_.OnCompute(key.ns, mode, "filled");
               }
               LOG_EVENT("fill", key, "mode=", mode, " stored=", filled.stored,
                         " fencing_token=", s.fencing_token,
                         " compute_ms=", absl::ToInt64Milliseconds(compute_time));
               if (s.sink) s.sink->SendFilled(filled);
               RetireSession(s);
               // Waiters on this replica get the value now, whatever the
               // store said (it may be down); other replicas hear the
               // store's notice.
               if (filled.stored || !stored.ok()) {
                 const absl::Time now = clock_.Now();
                 StoredValue fresh{value, now, now + ttl};
                 if (!stored.ok()) {
                   constexpr size_t kMaxDegradedValues = 10000;
                   if (degraded_values_.size() >= kMaxDegradedValues) degraded_values_.clear();
                   degraded_values_[key] = fresh;
                 }
                 ServeAll(key, fresh, Source::kPeerFill, LookupStage::kAfterWait);
               }
             });
}

void Coordinator::DoAbandon(Session& s, AbandonRequest request) {
  const CacheKey key = s.lookup.key;
  const absl::string_view mode = ModeLabel(s.mode);
  observer_.OnCompute(key.ns, mode, request.upstream_failure ? "failed" : "abandoned");
  if (request.upstream_failure) RecordOutcome(s.ns, ComputeOutcome::kFailure);
  LOG_EVENT("abandon", key, "mode=", mode, " upstream_failure=", request.upstream_failure,
            " reason=\"", absl::CEscape(request.reason.substr(0, 200)), "\"");
  EndLease(s);
  const bool held = s.mode == LeaseMode::kLocked && !s.revoked;
  std::string token = s.token;
  if (s.sink) s.sink->Finish(absl::OkStatus());
  RetireSession(s);
  if (request.upstream_failure) {
    FailWaiters(key, WithReason(absl::UnavailableError(
                                    "the caller computing this value reported an "
                                    "upstream failure"),
                                kReasonPeerComputeFailed));
  }
  if (!held) return;
  store_.ReleaseLock(key, token,
                     request.upstream_failure ? ReleaseNotice::kUpstreamFailed
                                              : ReleaseNotice::kReleased,
                     [this, key](absl::StatusOr<bool>) {
                       Wake(key);
                       MaybeRetire(key);
                     });
}

void Coordinator::OnWaitTimeout(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.state != SessionState::kWaiting) return;
  Session& s = it->second;
  s.wait_timer = 0;
  const CacheKey key = s.lookup.key;
  observer_.OnWaitersChanged(key.ns, -1);
  observer_.OnWaitEnded(key.ns, clock_.Now() - s.wait_started);
  observer_.OnLockAcquisition(key.ns, "timeout");
  // Out of the queue, but not done: read once more before the policy.
  s.state = SessionState::kReading;
  LeaveQueue(key);
  store_.Get(key, [this, id, key](absl::StatusOr<std::optional<StoredValue>> r) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading) return;
    Session& s = it->second;
    const bool hit = r.ok() && r->has_value() && IsFresh(**r);
    observer_.OnLookup(key.ns, LookupStage::kAfterTimeout, hit);
    if (hit) return SendValue(s, **r, Source::kCacheAfterTimeout);
    if (s.ns.on_wait_timeout == WaitTimeoutPolicy::kFail) {
      LOG_EVENT("wait_timeout", key, "policy=fail wait_ms=",
                absl::ToInt64Milliseconds(s.wait_timeout));
      return FinishSession(
          s, WithReason(absl::DeadlineExceededError(absl::StrCat(
                            "no value within wait_timeout ",
                            absl::FormatDuration(s.wait_timeout))),
                        kReasonWaitTimeout));
    }
    if (s.half_closed || !s.sink) {
      return FinishSession(s, WithReason(absl::DeadlineExceededError(
                                             "no value within wait_timeout"),
                                         kReasonWaitTimeout));
    }
    breakers_.Admit(s.ns, [this, id, key](BreakerVerdict verdict) {
      auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.state != SessionState::kReading) return;
      Session& s = it->second;
      if (!verdict.allowed) return RejectForBreaker(s, verdict);
      LOG_EVENT("unlocked_compute", key, "cause=wait_timeout wait_ms=",
                absl::ToInt64Milliseconds(s.wait_timeout));
      GrantLease(s, LeaseMode::kUnlockedTimeout, 0, "");
    });
  });
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
  loop_.Post([this, pending, finish_one] {
    shutting_down_ = true;
    std::vector<CallId> ids;
    for (const auto& [id, s] : sessions_) ids.push_back(id);
    for (CallId id : ids) {
      auto it = sessions_.find(id);
      if (it == sessions_.end()) continue;
      Session& s = it->second;
      if (s.state == SessionState::kLeased && s.mode == LeaseMode::kLocked && !s.revoked) {
        pending->fetch_add(1);
        store_.ReleaseLock(s.lookup.key, s.token, ReleaseNotice::kReleased,
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
    for (CallId id : lock_ids) {
      LockWaiter w = std::move(lock_waiters_.at(id));
      lock_waiters_.erase(id);
      loop_.Cancel(w.timer);
      w.done(ShuttingDown());
    }
    finish_one();
  });
  done->WaitForNotificationWithTimeout(timeout);
}

}  // namespace corral
