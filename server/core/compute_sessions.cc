#include "server/core/compute_sessions.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"
#include "server/core/value_view.h"

namespace corral {

ComputeSessions::ComputeSessions(
    Executor& executor, Store& store, const Clock& clock,
    CoordinatorObserver& observer, BreakerRegistry& breakers,
    BudgetGate& budget, FlightTable& flights, const RequestResolver& resolver,
    const std::function<double()>& early_refresh_draw)
    : executor_(executor),
      store_(store),
      clock_(clock),
      observer_(observer),
      breakers_(breakers),
      budget_(budget),
      flights_(flights),
      resolver_(resolver),
      early_refresh_draw_(early_refresh_draw) {}

// ---------------------------------------------------------------------------
// A stream's messages
// ---------------------------------------------------------------------------

void ComputeSessions::Start(CallId id, std::shared_ptr<ComputeSink> sink) {
  Session& s = sessions_[id];
  s.owner = this;
  s.call_id = id;
  s.sink = std::move(sink);
}

void ComputeSessions::Lookup(CallId id, LookupRequest request,
                             absl::Time refresh_due_for) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  if (s.state != SessionState::kAwaitLookup) {
    return FinishSession(s, ProtocolError("a second Lookup on one stream"));
  }
  s.refresh_due_for = refresh_due_for;
  DoLookup(s, std::move(request));
}

void ComputeSessions::Fill(CallId id, FillRequest request) {
  if (Session* s = SessionHoldingLease(id, "Fill"))
    DoFill(*s, std::move(request));
}

void ComputeSessions::Abandon(CallId id, AbandonRequest request) {
  if (Session* s = SessionHoldingLease(id, "Abandon"))
    DoAbandon(*s, std::move(request));
}

void ComputeSessions::HalfClosed(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.half_closed = true;
  switch (s.state) {
    case SessionState::kAwaitLookup:
      return FinishSession(s,
                           ProtocolError("the stream closed before a Lookup"));
    case SessionState::kLeased:
      if (s.fill_in_flight) return;
      // A caller that can no longer send a Fill must not hold the lock
      // (grpcurl half-closes right after its Lookup). A locked lease goes
      // back and the caller is served as a reader; any other lease is
      // simply abandoned.
      if (s.mode == LeaseMode::kLocked && HoldsKeyLock(s))
        return ReturnLease(s);
      DoAbandon(s, AbandonRequest{"half-closed", false});
      return;
    default:
      // A waiter may half-close; it still gets its answer but never the
      // lock (Pump and OnAttempt pass it over).
      return;
  }
}

// ---------------------------------------------------------------------------
// Reading, waiting, the lock
// ---------------------------------------------------------------------------

ComputeSessions::Session* ComputeSessions::SessionHoldingLease(
    CallId id, absl::string_view message) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  Session& s = it->second;
  if (s.state == SessionState::kAwaitLookup) {
    FinishSession(s, ProtocolError("the first message must be a Lookup"));
    return nullptr;
  }
  if (s.state != SessionState::kLeased || s.fill_in_flight) {
    FinishSession(s, ProtocolError(absl::StrCat(message, " without a lease")));
    return nullptr;
  }
  return &s;
}

void ComputeSessions::Gone(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.sink.reset();  // Nobody listens any more.
  switch (s.state) {
    case SessionState::kLeased:
      if (!s.fill_in_flight)
        DoAbandon(s, AbandonRequest{"stream ended", false});
      return;
    case SessionState::kWaiting:
      StopWaiting(s);
      sessions_.erase(it);
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

void ComputeSessions::DoLookup(Session& s, LookupRequest request) {
  auto resolved = resolver_.ResolveLookup(request);
  if (!resolved.ok()) return FinishSession(s, resolved.status());
  s.ns = std::move(resolved->ns);
  s.ttl = resolved->ttl;
  s.wait_timeout = resolved->wait_timeout;
  s.lease_ttl = resolved->lease_ttl;
  s.lookup = std::move(request);
  s.state = SessionState::kReading;
  s.wait_started = clock_.Now();
  Flight& f = flights_.For(s.lookup.key);
  if (f.known_miss &&
      (f.attempt_in_flight || flights_.HoldsLockHere(f, s.lookup.key) ||
       (f.held_elsewhere && f.watch_confirmed))) {
    // A compute is being started or is under way, here or on another
    // replica whose fill will be delivered to this flight: wait for it
    // without asking the store again (or take the value it replaces, if
    // this caller accepts a stale one). A lock attempt reads the key as it
    // takes the lock, and a failed one watches it, so no fill is missed.
    observer_.OnLookup(s.lookup.key.ns, LookupStage::kInitial, false);
    if (s.lookup.allow_stale && f.stale.has_value() &&
        f.stale->expires_at + s.ns.stale_window > clock_.Now()) {
      return SendValue(s, *f.stale, Source::kStale);
    }
    return BeginWait(s);
  }
  f.readers.push_back(s.call_id);
  flights_.Read(s.lookup.key);
}

void ComputeSessions::SendValue(Session& s, const StoredValue& value,
                                Source source,
                                std::shared_ptr<const std::string> bytes) {
  if (source == Source::kStale) observer_.OnStaleServed(s.lookup.key.ns);
  if (s.sink)
    s.sink->SendValue(ViewOf(value, source, clock_.Now(), std::move(bytes)));
  RetireSession(s);
}

void ComputeSessions::FailRemembered(Session& s, absl::Time failed_until) {
  observer_.OnNegativeHit(s.lookup.key.ns);
  FinishSession(
      s, WithRetryAfter(PeerComputeFailed(), failed_until - clock_.Now()));
}

void ComputeSessions::FinishSession(Session& s, absl::Status status) {
  if (s.state == SessionState::kWaiting) StopWaiting(s);
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

void ComputeSessions::RetireSession(Session& s) {
  EndLease(s);
  const bool degraded = s.state == SessionState::kLeased &&
                        s.mode == LeaseMode::kUnlockedDegraded;
  const CacheKey key = s.lookup.key;
  const CallId id = s.call_id;
  s.state = SessionState::kDone;
  sessions_.erase(id);
  if (degraded) EndDegraded(key, id);
  flights_.MaybeRetire(key);  // It may have kept the flight as its leaseholder.
}

void ComputeSessions::OnWaitTimeout(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.state != SessionState::kWaiting)
    return;
  Session& s = it->second;
  s.wait_timer = 0;  // It fired.
  const CacheKey key = s.lookup.key;
  observer_.OnLockAcquisition(key.ns, "timeout");
  if (s.ns.on_wait_timeout == WaitTimeoutPolicy::kHedge && !s.hedge_decided)
    return HedgeOrWaitOn(s);
  // Out of the queue, but not done: read once more before the policy.
  StopWaiting(s);
  store_.Get(key, [this, id, key](absl::StatusOr<KeyRead> r) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      return;
    Session& s = it->second;
    const bool hit = r.ok() && r->value.has_value() && IsFresh(*r->value);
    observer_.OnLookup(key.ns, LookupStage::kAfterTimeout, hit);
    if (hit) return SendValue(s, *r->value, Source::kCacheAfterTimeout);
    // A failure remembered meanwhile: no unlocked compute against it.
    if (r.ok() && r->failed_until > clock_.Now())
      return FailRemembered(s, r->failed_until);
    // What ended the wait: the wait_timeout, or the call's own deadline.
    const std::string limit =
        s.lookup.deadline - s.wait_started < s.wait_timeout
            ? "before the call's deadline"
            : absl::StrCat("within wait_timeout ",
                           absl::FormatDuration(s.wait_timeout));
    if (s.ns.on_wait_timeout == WaitTimeoutPolicy::kFail ||
        (s.ns.on_wait_timeout == WaitTimeoutPolicy::kHedge &&
         s.hedge_decided)) {
      LOG_EVENT(
          "wait_timeout", key, "policy=", s.hedge_decided ? "hedge" : "fail",
          " wait_ms=", absl::ToInt64Milliseconds(clock_.Now() - s.wait_started),
          CallerField("worker_id", s.lookup.worker_id));
      return FinishSession(
          s, WithReason(absl::DeadlineExceededError(absl::StrCat(
                            "no value ", limit,
                            s.hedge_decided ? " (and waiting on for the "
                                              "computing caller)"
                                            : "")),
                        kReasonWaitTimeout));
    }
    if (s.half_closed || !s.sink) {
      // It cannot compute (it half-closed): nothing else to offer.
      return FinishSession(
          s, WithReason(
                 absl::DeadlineExceededError(absl::StrCat(
                     "no value ", limit,
                     " (the stream was half-closed, so it could not compute)")),
                 kReasonWaitTimeout));
    }
    GrantOnTimeout(s, /*hedge=*/false);
  });
}

bool ComputeSessions::IsWaitingSession(CallId id, const CacheKey& key) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.WaitsOn(key);
}

bool ComputeSessions::StillHoldsLock(CallId holder, const CacheKey& key) {
  auto it = sessions_.find(holder);
  return it != sessions_.end() && HoldsKeyLock(it->second) &&
         it->second.lookup.key == key;
}

void ComputeSessions::OnRead(const CacheKey& key,
                             absl::StatusOr<KeyRead> result) {
  // read_in_flight stays set while the readers are handled, so the flight
  // cannot be retired under us.
  std::vector<CallId> readers;
  readers.swap(flights_.For(key).readers);
  std::vector<Callback<GetResult>> get_readers;
  get_readers.swap(flights_.For(key).get_readers);
  const StoredValue* found =
      result.ok() && result->value.has_value() ? &*result->value : nullptr;
  const bool hit = found != nullptr && IsFresh(*found);
  // Everyone this read serves shares one copy of the bytes.
  std::shared_ptr<const std::string> bytes;
  if (found != nullptr)
    bytes = std::make_shared<const std::string>(found->value);
  for (Callback<GetResult>& done : get_readers) {
    if (!result.ok()) {
      done(result.status());
      continue;
    }
    GetResult got;
    if (hit) {
      got.found = true;
      got.value = ViewOf(*found, Source::kCache, clock_.Now(), bytes);
      got.tracked_read = result->tracked;
    }
    done(std::move(got));
  }
  // A value past its TTL, kept for the stale window: what allow_stale
  // callers get while it is refreshed, or while the breaker refuses.
  if (found != nullptr && !hit) flights_.For(key).stale = *found;
  const bool failed = result.ok() && result->failed_until > clock_.Now();
  // One caller of this read may try to refresh the value, if no failure is
  // remembered. The lock decides whether it does: a compute or refresh under
  // way elsewhere holds it (and the attempt reads a failure remembered since).
  bool may_refresh =
      result.ok() && !failed && !flights_.For(key).refresh_attempt;

  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      continue;
    Session& s = it->second;
    observer_.OnLookup(key.ns, LookupStage::kInitial, hit);
    if (hit) {
      if (may_refresh && WantsEarlyRefresh(s, *found)) {
        may_refresh = false;
        StartRefresh(s, *found, "early");
      } else {
        SendValue(s, *found, Source::kCache, bytes);
      }
      continue;
    }
    if (found != nullptr && s.lookup.allow_stale) {
      // Stale-while-revalidate: the old value now, one caller refreshes.
      if (may_refresh && !s.half_closed) {
        may_refresh = false;
        StartRefresh(s, *found, "stale");
      } else {
        SendValue(s, *found, Source::kStale, bytes);
      }
      continue;
    }
    if (failed) {
      FailRemembered(s, result->failed_until);
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
      if (std::optional<StoredValue> local =
              local_values_.FindFresh(key, clock_.Now())) {
        SendValue(s, *local, Source::kCache);
        continue;
      }
    }
    // A miss (or, with the store down, coordination on this replica alone).
    BeginWait(s);
  }
  // A read that an event asked for (kWatching/kResync) serves the waiters.
  if (hit) ServeAll(key, *found, Source::kPeerFill, LookupStage::kAfterWait);

  flights_.EndRead(key, result.ok(), hit);
}

void ComputeSessions::BeginWait(Session& s,
                                std::optional<absl::Duration> wait) {
  // A miss. While the breaker is open it fails fast (no wait for a compute
  // that would be refused).
  if (auto verdict = breakers_.Peek(s.ns);
      verdict.has_value() && !verdict->allowed) {
    return RejectForBreaker(s, *verdict);
  }
  // Wait in line for the lock (or for someone else's fill).
  const CacheKey& key = s.lookup.key;
  if (absl::Status admitted = flights_.Admit(key); !admitted.ok()) {
    return FinishSession(s, admitted);
  }
  s.state = SessionState::kWaiting;
  observer_.OnWaitersChanged(key.ns, +1);
  flights_.Enqueue(key, s.call_id);
  ArmWaitTimer(s, wait.value_or(s.wait_timeout));
}

void ComputeSessions::ArmWaitTimer(Session& s,
                                   std::optional<absl::Duration> wait) {
  const absl::Time now = clock_.Now();
  const absl::Duration budget =
      std::min(wait.value_or(s.wait_timeout - (now - s.wait_started)),
               s.lookup.deadline - now);
  if (budget <= absl::ZeroDuration()) {
    // Zero wait (or none left): straight to the timeout policy.
    OnWaitTimeout(s.call_id);
    return;
  }
  const CallId sid = s.call_id;
  s.wait_timer =
      executor_.RunAfter(budget, [this, sid] { OnWaitTimeout(sid); });
}

bool ComputeSessions::OnAttemptFailed(Session& s, const CacheKey& key,
                                      const absl::Status& error) {
  if (absl::IsUnavailable(error) &&
      s.ns.on_store_unavailable == StoreUnavailablePolicy::kCoordinateLocally) {
    ComputeDegraded(key, s.call_id);
    return false;
  }
  // FAIL policy: every compute waiter of the key gets the error.
  EndWaiters(key, [this, &error](Session& s) { FinishSession(s, error); });
  return true;
}

void ComputeSessions::OnLockWon(Session& s, const CacheKey& key,
                                std::string token, const LockAttempt& attempt) {
  // A GetOrCompute waiter took the lock, with a read of the key: a fill may
  // have landed between its miss and now (the seed's double check).
  executor_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  s.token = token;
  observer_.OnLockAcquisition(key.ns, "acquired");
  const CallId sid = s.call_id;
  const uint64_t fence = attempt.fencing_token;
  auto release = [this, key, token] { flights_.ReleaseAndFinish(key, token); };
  if (!attempt.read.has_value()) {
    // A store that broke TryLockAndRead's contract.
    release();
    return FinishSession(
        s, absl::InternalError("the store took the lock without the read"));
  }
  const KeyRead& read = *attempt.read;
  const bool hit = read.value.has_value() && IsFresh(*read.value);
  observer_.OnLookup(key.ns, LookupStage::kAfterLock, hit);
  if (read.failed_until > clock_.Now()) {
    // The last compute failed, and that is remembered: nobody here
    // computes against it now.
    release();
    const absl::Time until = read.failed_until;
    EndWaiters(key, [this, until](Session& s) { FailRemembered(s, until); });
    return;
  }
  if (hit) {
    // Nothing to compute: the lock goes back.
    release();
    StopWaiting(s);
    SendValue(s, *read.value, Source::kCacheAfterLock);
    ServeAll(key, *read.value, Source::kPeerFill, LookupStage::kAfterLock);
    return;
  }
  if (read.value.has_value()) flights_.For(key).stale = *read.value;
  // The compute is about to start: the breaker has the last word.
  breakers_.Admit(
      s.ns, [this, key, sid, fence, release](BreakerVerdict verdict) {
        // A caller that half-closed while the lock was asked for cannot send a
        // Fill: the lock goes back and it waits on as a reader.
        const bool waiting = IsWaitingSession(sid, key);
        if (waiting && verdict.allowed && !sessions_.at(sid).half_closed) {
          return ChargeLockedLease(key, sid, fence, sessions_.at(sid).token);
        }
        release();
        if (!verdict.allowed) {
          // Everyone here would be refused the same way.
          EndWaiters(key, [this, &verdict](Session& s) {
            RejectForBreaker(s, verdict);
          });
        } else if (waiting) {
          // It half-closed: it waits on for what is left of its wait (its timer
          // was stopped when the lock came).
          ArmWaitTimer(sessions_.at(sid), std::nullopt);
        }
      });
}

void ComputeSessions::ServeAll(const CacheKey& key, const StoredValue& value,
                               Source source, LookupStage stage) {
  Flight* f = flights_.Find(key);
  if (f == nullptr) return;
  auto bytes =
      std::make_shared<const std::string>(value.value);  // One copy for all.
  // Readers still waiting on a store read can take the value too.
  std::vector<CallId> readers;
  readers.swap(f->readers);
  for (CallId id : readers) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      continue;
    observer_.OnLookup(key.ns, LookupStage::kInitial, true);
    SendValue(it->second, value, Source::kCache, bytes);
  }
  EndWaiters(key, [&](Session& s) {
    observer_.OnLookup(key.ns, stage, true);
    SendValue(s, value, source, bytes);
  });
}

void ComputeSessions::EndWaiters(const CacheKey& key,
                                 const std::function<void(Session&)>& end) {
  if (flights_.Find(key) == nullptr) return;
  std::vector<CallId> ending = flights_.TakeFillWaiters(key);
  if (!ending.empty())
    observer_.OnWaitersChanged(key.ns, -static_cast<int>(ending.size()));
  const absl::Time now = clock_.Now();
  for (CallId id : ending) {
    Session& s = sessions_.at(id);
    executor_.Cancel(s.wait_timer);
    s.wait_timer = 0;
    observer_.OnWaitEnded(key.ns, now - s.wait_started);
    s.state = SessionState::kReading;  // Out of the queue; `end` finishes it.
    end(s);
  }
  flights_.MaybeRetire(key);
}

void ComputeSessions::FailWaiters(const CacheKey& key,
                                  const absl::Status& status) {
  EndWaiters(key, [this, &status](Session& s) { FinishSession(s, status); });
}

void ComputeSessions::StopWaiting(Session& s) {
  executor_.Cancel(s.wait_timer);
  s.wait_timer = 0;
  observer_.OnWaitersChanged(s.lookup.key.ns, -1);
  observer_.OnWaitEnded(s.lookup.key.ns, clock_.Now() - s.wait_started);
  s.state = SessionState::kReading;
  flights_.Leave(s.lookup.key);
}

void ComputeSessions::RejectForBreaker(Session& s,
                                       const BreakerVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  Flight* f = flights_.Find(key);
  if (s.lookup.allow_stale && f != nullptr && f->stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    return SendValue(s, *f->stale, Source::kStale);
  }
  // Still queued unless it failed fast at the miss.
  if (s.state == SessionState::kWaiting) StopWaiting(s);
  FinishSession(s, BreakerOpen(verdict.retry_after));
}

// ---------------------------------------------------------------------------
// For the flight table and the façade
// ---------------------------------------------------------------------------

Waiter* ComputeSessions::Find(CallId id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

int ComputeSessions::ShutDown(const std::function<void()>& released) {
  shutting_down_ = true;
  int releases = 0;
  std::vector<CallId> ids;
  for (const auto& [id, s] : sessions_) ids.push_back(id);
  for (CallId id : ids) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    Session& s = it->second;
    if (HoldsKeyLock(s)) {
      ++releases;
      store_.ReleaseLock(s.lookup.key, s.token, ReleaseNotice::kReleased,
                         [released](absl::StatusOr<bool>) { released(); });
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
  return releases;
}

void ComputeSessions::AddNamespaces(
    absl::flat_hash_set<std::string>& into) const {
  for (const auto& [id, s] : sessions_) into.insert(s.lookup.key.ns);
}

}  // namespace corral
