// The Coordinator: GetOrCompute sessions and their leases.
#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/coordinator.h"
#include "server/core/coordinator_internal.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/status_macros.h"
#include "server/core/validation.h"

namespace corral {

using namespace coordinator_internal;  // NOLINT: this file's own helpers.

// ---------------------------------------------------------------------------
// GetOrCompute sessions
// ---------------------------------------------------------------------------

Coordinator::CallId Coordinator::StartCompute(
    std::shared_ptr<ComputeSink> sink) {
  CallId id = next_id_.fetch_add(1);
  executor_.Post([this, id, sink = std::move(sink)]() mutable {
    if (shutting_down_) return sink->Finish(ShuttingDown());
    Session& s = sessions_[id];
    s.id = id;
    s.sink = std::move(sink);
  });
  return id;
}

Coordinator::CallId Coordinator::Lookup(CallId id,
                                        std::shared_ptr<ComputeSink> sink,
                                        LookupRequest request) {
  if (id != 0) {
    ComputeLookup(id, std::move(request));
    return id;
  }
  absl::Time refresh_due_for = absl::InfinitePast();
  if (ServeFromReadCache(request, *sink, &refresh_due_for)) return 0;
  id = StartCompute(std::move(sink));
  PostLookup(id, std::move(request), refresh_due_for);
  return id;
}

void Coordinator::ComputeLookup(CallId id, LookupRequest request) {
  PostLookup(id, std::move(request), absl::InfinitePast());
}

void Coordinator::PostLookup(CallId id, LookupRequest request,
                             absl::Time refresh_due_for) {
  executor_.Post([this, id, request = std::move(request),
                  refresh_due_for]() mutable {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    if (s.state != SessionState::kAwaitLookup) {
      return FinishSession(s, ProtocolError("a second Lookup on one stream"));
    }
    s.refresh_due_for = refresh_due_for;
    DoLookup(s, std::move(request));
  });
}

Coordinator::Session* Coordinator::SessionHoldingLease(
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

void Coordinator::ComputeFill(CallId id, FillRequest request) {
  executor_.Post([this, id, request = std::move(request)]() mutable {
    if (Session* s = SessionHoldingLease(id, "Fill"))
      DoFill(*s, std::move(request));
  });
}

void Coordinator::ComputeAbandon(CallId id, AbandonRequest request) {
  executor_.Post([this, id, request = std::move(request)]() mutable {
    if (Session* s = SessionHoldingLease(id, "Abandon"))
      DoAbandon(*s, std::move(request));
  });
}

void Coordinator::ComputeHalfClosed(CallId id) {
  executor_.Post([this, id] {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    s.half_closed = true;
    switch (s.state) {
      case SessionState::kAwaitLookup:
        return FinishSession(
            s, ProtocolError("the stream closed before a Lookup"));
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
  });
}

void Coordinator::ComputeGone(CallId id) {
  executor_.Post([this, id] { DoGone(id); });
}

void Coordinator::DoGone(CallId id) {
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

absl::StatusOr<Coordinator::ResolvedLookup> Coordinator::ResolveLookup(
    const LookupRequest& request) const {
  auto settings = Settings(request.key);
  if (!settings.ok()) return settings.status();
  RETURN_IF_ERROR(ValidateLabel("lookup.worker_id", request.worker_id));
  const LimitSettings& limits = registry_.limits();
  auto ttl = ResolveDuration("lookup.ttl", request.ttl, settings->ttl,
                             DurationRule::kPositive, limits.max_ttl);
  if (!ttl.ok()) return ttl.status();
  auto wait = ResolveDuration("lookup.wait_timeout", request.wait_timeout,
                              settings->wait_timeout,
                              DurationRule::kNonNegative, limits.max_wait);
  if (!wait.ok()) return wait.status();
  auto lease_ttl = ResolveDuration("lookup.lease_ttl", request.lease_ttl,
                                   settings->lease_ttl, DurationRule::kPositive,
                                   limits.max_wait);
  if (!lease_ttl.ok()) return lease_ttl.status();
  return ResolvedLookup{*std::move(settings), *ttl, *wait, *lease_ttl};
}

void Coordinator::DoLookup(Session& s, LookupRequest request) {
  auto resolved = ResolveLookup(request);
  if (!resolved.ok()) return FinishSession(s, resolved.status());
  s.ns = std::move(resolved->ns);
  s.ttl = resolved->ttl;
  s.wait_timeout = resolved->wait_timeout;
  s.lease_ttl = resolved->lease_ttl;
  s.lookup = std::move(request);
  s.state = SessionState::kReading;
  s.wait_started = clock_.Now();
  Flight& f = FlightFor(s.lookup.key);
  if (f.known_miss && (f.attempt_in_flight || HoldsLockHere(f, s.lookup.key) ||
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
  f.readers.push_back(s.id);
  Read(s.lookup.key);
}

void Coordinator::SendValue(Session& s, const StoredValue& value, Source source,
                            std::shared_ptr<const std::string> bytes) {
  if (source == Source::kStale) observer_.OnStaleServed(s.lookup.key.ns);
  if (s.sink) s.sink->SendValue(ViewOf(value, source, std::move(bytes)));
  RetireSession(s);
}

void Coordinator::FailRemembered(Session& s, absl::Time failed_until) {
  observer_.OnNegativeHit(s.lookup.key.ns);
  FinishSession(
      s, WithRetryAfter(PeerComputeFailed(), failed_until - clock_.Now()));
}

void Coordinator::FinishSession(Session& s, absl::Status status) {
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

void Coordinator::RetireSession(Session& s) {
  EndLease(s);
  const bool degraded = s.state == SessionState::kLeased &&
                        s.mode == LeaseMode::kUnlockedDegraded;
  const CacheKey key = s.lookup.key;
  const CallId id = s.id;
  s.state = SessionState::kDone;
  sessions_.erase(id);
  if (degraded) EndDegraded(key, id);
  MaybeRetire(key);  // It may have kept the flight as its leaseholder.
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
  if (HoldsLock(mode)) {
    // This replica's callers for the key now wait for this lease; the
    // flight stays until it ends.
    FlightFor(s.lookup.key).lease_holder = id;
    // Keep the lock alive while the stream is open, up to max_compute_time.
    s.renew_timer =
        executor_.RunAfter(s.lease_ttl / 3, [this, id] { RenewLease(id); });
    s.revoke_timer = executor_.RunAfter(s.ns.max_compute_time,
                                        [this, id] { RevokeLease(id); });
  } else {
    observer_.OnDuplicateCompute(s.lookup.key.ns);
  }
  if (mode == LeaseMode::kRefresh)
    observer_.OnRefreshStarted(s.lookup.key.ns, s.refresh_trigger);
  LOG_EVENT("lease", s.lookup.key, "mode=", ModeLabel(mode),
            " fencing_token=", fencing_token,
            CallerField("worker_id", s.lookup.worker_id));
  LeaseView lease;
  lease.fencing_token = fencing_token;
  lease.deadline = now + s.ns.max_compute_time;
  lease.mode = mode;
  lease.current_value = std::move(current_value);
  if (s.sink) s.sink->SendLease(std::move(lease));
}

void Coordinator::EndLease(Session& s) {
  if (s.renew_timer != 0) executor_.Cancel(s.renew_timer);
  if (s.revoke_timer != 0) executor_.Cancel(s.revoke_timer);
  if (s.wait_timer != 0) executor_.Cancel(s.wait_timer);
  s.renew_timer = s.revoke_timer = s.wait_timer = 0;
  // The lease is over (fill, abandon, revoke, holder gone): its compute
  // budget slot goes back.
  budget_.Return(s.ns.name, &s.budget_slot);
}

void Coordinator::RenewLease(CallId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.renew_timer =
      executor_.RunAfter(s.lease_ttl / 3, [this, id] { RenewLease(id); });
  budget_.Renew(s.ns.name, s.budget_slot, s.lease_ttl);
  store_.RenewLock(
      s.lookup.key, s.token, s.lease_ttl,
      [this, id](absl::StatusOr<std::optional<absl::Time>> r) {
        auto it = sessions_.find(id);
        if (it == sessions_.end() ||
            it->second.state != SessionState::kLeased) {
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
          observer_.OnCompute(s.lookup.key.ns, ModeLabel(s.mode), "revoked");
          Wake(s.lookup.key);  // The waiters here try for it again.
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
  observer_.OnCompute(s.lookup.key.ns, ModeLabel(s.mode), "revoked");
  RecordOutcome(s.ns, ComputeOutcome::kFailure);  // The upstream hung.
  CacheKey key = s.lookup.key;
  store_.ReleaseLock(key, s.token, ReleaseNotice::kReleased,
                     [this, key](absl::StatusOr<bool>) { Wake(key); });
}

void Coordinator::DoFill(Session& s, FillRequest request) {
  const CacheKey key = s.lookup.key;
  if (request.value.size() > s.ns.max_value_bytes) {
    return FinishSession(
        s, InvalidField("fill.value",
                        absl::StrCat("is ", request.value.size(),
                                     " bytes; the namespace limit is ",
                                     s.ns.max_value_bytes)));
  }
  auto ttl =
      ResolveDuration("fill.ttl", request.ttl, s.ttl, DurationRule::kPositive,
                      registry_.limits().max_ttl);
  if (!ttl.ok()) return FinishSession(s, ttl.status());
  if (s.revoked) {
    if (s.sink)
      s.sink->SendFilled(FilledView{false, s.fencing_token, "lease-revoked"});
    observer_.OnCompute(key.ns, ModeLabel(s.mode), "not_stored");
    return RetireSession(s);
  }
  EndLease(s);
  s.fill_in_flight = true;
  {
    const absl::Duration took = clock_.Now() - s.lease_started;
    const bool slow = s.ns.breaker.slow_call_duration.has_value() &&
                      took > *s.ns.breaker.slow_call_duration;
    RecordOutcome(
        s.ns, slow ? ComputeOutcome::kSlowSuccess : ComputeOutcome::kSuccess);
  }
  const absl::Duration compute_time = clock_.Now() - s.lease_started;
  PutOptions options;
  options.ttl = *ttl;
  options.stale_window = s.ns.stale_window;
  options.compute_time = compute_time;
  if (HoldsLock(s.mode)) {
    options.lock_token = s.token;
    options.release_lock = true;
  } else {
    options.only_if_absent = true;
  }
  CallId id = s.id;
  std::string value = request.value;
  store_.Put(
      key, std::move(request.value), options,
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
          filled.reason = HoldsLock(s.mode) ? "lease-lost" : "value-present";
          observer_.OnCompute(key.ns, mode, "not_stored");
        } else {
          filled.stored = true;
          observer_.OnCompute(key.ns, mode, "filled");
        }
        LOG_EVENT("fill", key, "mode=", mode, " stored=", filled.stored,
                  " fencing_token=", s.fencing_token,
                  " compute_ms=", absl::ToInt64Milliseconds(compute_time),
                  CallerField("worker_id", s.lookup.worker_id));
        if (s.sink) s.sink->SendFilled(filled);
        RetireSession(s);
        // Waiters on this replica get the value now, whatever the
        // store said (it may be down); other replicas hear the
        // store's notice.
        if (filled.stored || !stored.ok()) {
          const absl::Time now = clock_.Now();
          StoredValue fresh{value, now, now + ttl, compute_time};
          if (!stored.ok()) {
            constexpr size_t kMaxDegradedValues = 10000;
            if (degraded_values_.size() >= kMaxDegradedValues)
              degraded_values_.clear();
            degraded_values_[key] = fresh;
          }
          ServeAll(key, fresh, Source::kPeerFill, LookupStage::kAfterWait);
        }
        // The lock is free: lock waiters, and waiters the fill did not
        // serve, try for it.
        if (auto f = flights_.find(key); f != flights_.end() && filled.stored) {
          f->second.known_miss = false;
        }
        Wake(key);
      });
}

void Coordinator::DoAbandon(Session& s, AbandonRequest request) {
  const CacheKey key = s.lookup.key;
  const absl::string_view mode = ModeLabel(s.mode);
  observer_.OnCompute(key.ns, mode,
                      request.upstream_failure ? "failed" : "abandoned");
  if (request.upstream_failure) RecordOutcome(s.ns, ComputeOutcome::kFailure);
  LOG_EVENT("abandon", key, "mode=", mode,
            " upstream_failure=", request.upstream_failure, " reason=\"",
            absl::CEscape(request.reason.substr(0, 200)), "\"",
            CallerField("worker_id", s.lookup.worker_id));
  EndLease(s);
  const bool held = HoldsKeyLock(s);
  const absl::Duration negative_ttl = s.ns.negative_ttl;
  std::string token = s.token;
  // The caller hears OK once the lock is free (below), so that its retry on
  // any replica finds it free.
  std::shared_ptr<ComputeSink> sink = std::move(s.sink);
  RetireSession(s);
  if (request.upstream_failure) {
    FailWaiters(key, PeerComputeFailed());
    // Negative caching: remembered before the lock is released (the store
    // answers in order), so no caller slips between the two into a compute.
    if (negative_ttl > absl::ZeroDuration()) {
      store_.RememberFailure(key, negative_ttl,
                             [](absl::StatusOr<absl::Time>) {});
    }
  }
  if (!held) {
    if (sink) sink->Finish(absl::OkStatus());
    return;
  }
  store_.ReleaseLock(key, token,
                     request.upstream_failure ? ReleaseNotice::kUpstreamFailed
                                              : ReleaseNotice::kReleased,
                     [this, key, sink = std::move(sink)](absl::StatusOr<bool>) {
                       // A failed release still ends the call: the lock then
                       // expires with its lease TTL.
                       if (sink) sink->Finish(absl::OkStatus());
                       Wake(key);
                       MaybeRetire(key);
                     });
}

void Coordinator::ReturnLease(Session& s) {
  const CacheKey key = s.lookup.key;
  LOG_EVENT("lease_returned", key,
            "cause=half_closed fencing_token=", s.fencing_token,
            CallerField("worker_id", s.lookup.worker_id));
  observer_.OnCompute(key.ns, ModeLabel(s.mode), "abandoned");
  EndLease(s);
  const std::string token = std::move(s.token);
  s.token.clear();
  s.fencing_token = 0;
  s.state = SessionState::kReading;  // No longer the flight's lease holder.
  // The wait goes on from the Lookup, not from now.
  BeginWait(s, s.wait_timeout - (clock_.Now() - s.wait_started));
  store_.ReleaseLock(key, token, ReleaseNotice::kReleased,
                     [this, key](absl::StatusOr<bool>) {
                       Wake(key);
                       MaybeRetire(key);
                     });
}

void Coordinator::OnWaitTimeout(CallId id) {
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

void Coordinator::HedgeOrWaitOn(Session& s) {
  // The caller stays in the queue while this is decided: a fill meanwhile
  // serves it, the lock may still come to it, and the flight (with its
  // subscription) stays as it is rather than going and coming back.
  s.hedge_decided = true;
  const CacheKey key = s.lookup.key;
  const CallId id = s.id;
  auto waiting = [this, id, key]() -> Session* {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || !IsWaitingSession(id, key)) return nullptr;
    return &it->second;
  };
  store_.Get(key, [this, key, waiting](absl::StatusOr<KeyRead> r) {
    Session* found = waiting();
    if (found == nullptr) return;  // Served, leased or gone meanwhile.
    Session& s = *found;
    const bool hit = r.ok() && r->value.has_value() && IsFresh(*r->value);
    observer_.OnLookup(key.ns, LookupStage::kAfterTimeout, hit);
    if (hit) {
      StopWaiting(s);
      return SendValue(s, *r->value, Source::kCacheAfterTimeout);
    }
    if (r.ok() && r->failed_until > clock_.Now()) {
      StopWaiting(s);
      return FailRemembered(s, r->failed_until);
    }
    // A caller that half-closed cannot fill: it only asks whether someone
    // computes (max_hedges 0), and waits on if so.
    const bool can_compute = !s.half_closed && s.sink != nullptr;
    store_.ClaimHedge(
        key, can_compute ? s.ns.max_hedges : 0, s.ns.max_compute_time,
        [this, key, can_compute, waiting](absl::StatusOr<HedgeClaim> claim) {
          Session* found = waiting();
          if (found == nullptr) return;
          Session& s = *found;
          if (!claim.ok()) {
            // The store cannot say whether anyone computes: the seed's
            // behaviour (with the store down, replicas coordinate alone).
            LOG_EVENT("hedge_claim_failed", key, "error=\"",
                      claim.status().message(), "\"");
            StopWaiting(s);
            if (!can_compute) return WaitOn(s);
            return GrantOnTimeout(s, /*hedge=*/false);
          }
          switch (claim->result) {
            case HedgeClaim::Result::kGranted:
              LOG_EVENT(
                  "hedge", key, "hedges=", claim->hedges,
                  " max_hedges=", s.ns.max_hedges, " wait_ms=",
                  absl::ToInt64Milliseconds(clock_.Now() - s.wait_started),
                  CallerField("worker_id", s.lookup.worker_id));
              StopWaiting(s);
              return GrantOnTimeout(s, /*hedge=*/true);
            case HedgeClaim::Result::kRefused:
              // The holder is alive and its hedges are taken: its fill (or
              // a hedge's) serves this caller.
              LOG_DEBUG_EVENT("wait_on", key, "hedges=", claim->hedges);
              return ArmWaitTimer(s, WaitOnFor(s));
            case HedgeClaim::Result::kNoHolder:
              // Nobody computes (the holder released, or died and its lock
              // expired). A caller that can compute stays queued for the
              // lock; one that half-closed has nobody to wait for.
              if (!can_compute) {
                return FinishSession(
                    s, WithReason(absl::DeadlineExceededError(
                                      "no value within wait_timeout, and "
                                      "nobody computes it (the stream was "
                                      "half-closed, so it could not "
                                      "compute)"),
                                  kReasonWaitTimeout));
              }
              ArmWaitTimer(s, WaitOnFor(s));
              return Wake(key);
          }
        });
  });
}

absl::Duration Coordinator::WaitOnFor(const Session& s) const {
  return std::min(s.ns.max_compute_time, s.lookup.deadline - clock_.Now());
}

void Coordinator::WaitOn(Session& s) { BeginWait(s, WaitOnFor(s)); }

void Coordinator::GrantOnTimeout(Session& s, bool hedge) {
  const CallId id = s.id;
  const CacheKey key = s.lookup.key;
  breakers_.Admit(s.ns, [this, id, key, hedge](BreakerVerdict verdict) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.state != SessionState::kReading)
      return;
    Session& s = it->second;
    if (!verdict.allowed) return RejectForBreaker(s, verdict);
    // An unlocked lease ends with its fill or abandon; its slot is not
    // renewed, so it is held for the longest compute.
    ChargeForLease(
        s, s.ns.max_compute_time, /*wait=*/false,
        [this, id, key] {
          auto it = sessions_.find(id);
          return it != sessions_.end() &&
                 it->second.state == SessionState::kReading &&
                 it->second.lookup.key == key && it->second.sink != nullptr;
        },
        [this, id, key, hedge](const BudgetVerdict& v) {
          auto it = sessions_.find(id);
          if (it == sessions_.end() || v.withdrawn) return;
          Session& s = it->second;
          if (!v.admitted) {
            // No hedge without budget: wait on for the holder instead.
            if (hedge) return WaitOn(s);
            return RejectForBudget(s, v);
          }
          s.budget_slot = v.slot;
          if (!hedge) {
            LOG_EVENT("unlocked_compute", key, "cause=wait_timeout wait_ms=",
                      absl::ToInt64Milliseconds(s.wait_timeout));
          }
          GrantLease(s, LeaseMode::kUnlockedTimeout, 0, "");
        });
  });
}

void Coordinator::ChargeForLease(
    Session& s, absl::Duration hold, bool wait,
    absl::AnyInvocable<bool()> still_wanted,
    absl::AnyInvocable<void(const BudgetVerdict&)> then) {
  // Over budget, a caller that accepts a stale value takes it at once;
  // others wait for budget up to their wait_timeout (or call deadline).
  absl::Time deadline = clock_.Now();
  if (wait) {
    auto f = flights_.find(s.lookup.key);
    const bool stale_on_hand = s.lookup.allow_stale && f != flights_.end() &&
                               f->second.stale.has_value();
    if (!stale_on_hand) {
      deadline = std::min(s.wait_started + s.wait_timeout, s.lookup.deadline);
    }
  }
  const std::string slot = s.token.empty() ? NewToken() : s.token;
  budget_.Charge(
      s.ns, slot, hold, deadline, std::move(still_wanted),
      [then = std::move(then)](BudgetVerdict v) mutable { then(v); });
}

void Coordinator::RejectForBudget(Session& s, const BudgetVerdict& verdict) {
  const CacheKey key = s.lookup.key;
  auto fit = flights_.find(key);
  if (s.lookup.allow_stale && fit != flights_.end() &&
      fit->second.stale.has_value()) {
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, true);
    if (s.state == SessionState::kWaiting) StopWaiting(s);
    return SendValue(s, *fit->second.stale, Source::kStale);
  }
  observer_.OnBudgetRejected(key.ns);
  LOG_EVENT(
      "budget_exhausted", key, "limit=", verdict.limit,
      " retry_after_ms=", absl::ToInt64Milliseconds(verdict.retry_after),
      " wait_ms=", absl::ToInt64Milliseconds(clock_.Now() - s.wait_started),
      CallerField("worker_id", s.lookup.worker_id));
  FinishSession(s, ComputeBudgetExhausted(
                       absl::StrCat("no compute admitted (", verdict.limit,
                                    ") within the caller's wait"),
                       verdict.retry_after));
}

}  // namespace corral
