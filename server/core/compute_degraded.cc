// ComputeSessions: local coordination while the store is unreachable
// (docs/ARCHITECTURE.md, section 3.4). Under COORDINATE_LOCALLY the queue's
// head computes the key for this replica (a duplicate compute fleet-wide);
// its value is kept in LocalValues for the rest of the outage.
#include <optional>
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

void ComputeSessions::ComputeDegraded(const CacheKey& key, CallId sid) {
  flights_.For(key).degraded_holder = sid;  // Pump stays away until it ends.
  // The seed's last-chance check before an unlocked compute.
  store_.Get(key, [this, key, sid](absl::StatusOr<KeyRead> r) {
    std::optional<StoredValue> found;
    if (r.ok() && r->value.has_value() && IsFresh(*r->value)) found = *r->value;
    if (!found) found = local_values_.FindFresh(key, clock_.Now());
    observer_.OnLookup(key.ns, LookupStage::kBeforeFallback, found.has_value());
    if (found || !IsWaitingSession(sid, key)) {
      if (found)
        ServeAll(key, *found, Source::kPeerFill, LookupStage::kBeforeFallback);
      return EndDegraded(key, sid);
    }
    breakers_.Admit(
        sessions_.at(sid).ns, [this, key, sid](BreakerVerdict verdict) {
          // A caller that half-closed meanwhile cannot send a Fill: it waits
          // on.
          if (!IsWaitingSession(sid, key) || sessions_.at(sid).half_closed) {
            return EndDegraded(key, sid);
          }
          if (!verdict.allowed) {
            EndWaiters(key, [this, &verdict](Session& s) {
              RejectForBreaker(s, verdict);
            });
            return EndDegraded(key, sid);
          }
          Session& s = sessions_.at(sid);
          StopWaiting(s);
          LOG_EVENT("unlocked_compute", key,
                    "cause=store_unavailable scope=this_replica");
          GrantLease(s, LeaseMode::kUnlockedDegraded, 0, "");
        });
  });
}

void ComputeSessions::EndDegraded(const CacheKey& key, CallId sid) {
  Flight* f = flights_.Find(key);
  if (f == nullptr || f->degraded_holder != sid) return;
  f->degraded_holder = 0;
  flights_.Wake(key);
  flights_.MaybeRetire(key);
}

}  // namespace corral
