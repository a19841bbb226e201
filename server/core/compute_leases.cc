// ComputeSessions: leases (docs/ARCHITECTURE.md, section 2, Steps 7-8): the
// grant, renewals while the stream is open, revocation at max_compute_time,
// the fenced Fill, the Abandon, and a lease handed back by a caller that
// half-closed (section 3.1).
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/compute_sessions.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/core/validation.h"
#include "server/core/value_view.h"

namespace corral {

bool ComputeSessions::HoldsKeyLock(const Session& s) {
  // Until its fill is answered the lock is held: the fill releases it.
  return s.state == SessionState::kLeased && HoldsLock(s.mode) && !s.revoked;
}

void ComputeSessions::GrantLease(Session& s, LeaseMode mode,
                                 uint64_t fencing_token,
                                 std::string current_value) {
  const absl::Time now = clock_.Now();
  s.state = SessionState::kLeased;
  s.mode = mode;
  s.fencing_token = fencing_token;
  s.lease_started = now;
  s.revoked = false;
  CallId id = s.call_id;
  if (HoldsLock(mode)) {
    // This replica's callers for the key now wait for this lease; the
    // flight stays until it ends.
    flights_.For(s.lookup.key).lease_holder = id;
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

void ComputeSessions::EndLease(Session& s) {
  if (s.renew_timer != 0) executor_.Cancel(s.renew_timer);
  if (s.revoke_timer != 0) executor_.Cancel(s.revoke_timer);
  if (s.wait_timer != 0) executor_.Cancel(s.wait_timer);
  s.renew_timer = s.revoke_timer = s.wait_timer = 0;
  // The lease is over (fill, abandon, revoke, holder gone): its compute
  // budget slot goes back.
  budget_.Return(s.ns.name, &s.budget_slot);
}

void ComputeSessions::RenewLease(CallId id) {
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
          flights_.Wake(s.lookup.key);  // The waiters here try for it again.
        }
      });
}

void ComputeSessions::RevokeLease(CallId id) {
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
  breakers_.Record(s.ns, ComputeOutcome::kFailure);  // The upstream hung.
  CacheKey key = s.lookup.key;
  store_.ReleaseLock(key, s.token, ReleaseNotice::kReleased,
                     [this, key](absl::StatusOr<bool>) { flights_.Wake(key); });
}

void ComputeSessions::DoFill(Session& s, FillRequest request) {
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
                      resolver_.limits().max_ttl);
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
    breakers_.Record(
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
  CallId id = s.call_id;
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
            local_values_.Remember(key, fresh);
          }
          ServeAll(key, fresh, Source::kPeerFill, LookupStage::kAfterWait);
        }
        // The lock is free: lock waiters, and waiters the fill did not
        // serve, try for it.
        if (Flight* f = flights_.Find(key); f != nullptr && filled.stored) {
          f->known_miss = false;
        }
        flights_.Wake(key);
      });
}

void ComputeSessions::DoAbandon(Session& s, AbandonRequest request) {
  const CacheKey key = s.lookup.key;
  const absl::string_view mode = ModeLabel(s.mode);
  observer_.OnCompute(key.ns, mode,
                      request.upstream_failure ? "failed" : "abandoned");
  if (request.upstream_failure)
    breakers_.Record(s.ns, ComputeOutcome::kFailure);
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
                       flights_.Wake(key);
                       flights_.MaybeRetire(key);
                     });
}

void ComputeSessions::ReturnLease(Session& s) {
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
                       flights_.Wake(key);
                       flights_.MaybeRetire(key);
                     });
}

}  // namespace corral
