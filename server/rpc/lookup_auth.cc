#include "server/rpc/lookup_auth.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/errors.h"

namespace corral::rpc {

bool AuthorizeLookup(const CallAuthorizer& auth,
                     const grpc::ServerContextBase& ctx,
                     Coordinator& coordinator, const CacheKey& key,
                     const std::shared_ptr<ComputeSink>& sink) {
  if (absl::Status s = auth.Check(ctx, "GetOrCompute", key.ns, Right::kRead);
      !s.ok()) {
    sink->Finish(std::move(s));
    return false;
  }
  if (auth.Allows(ctx, key.ns, Right::kCompute)) return true;
  coordinator.Get(key, [sink, ns = key.ns](absl::StatusOr<GetResult> r) {
    if (!r.ok()) return sink->Finish(r.status());
    if (r->found) return sink->SendValue(std::move(r->value));
    sink->Finish(WithReason(
        absl::PermissionDeniedError(absl::StrCat(
            "not cached, and this credential lacks the compute right in "
            "namespace \"",
            ns, "\" (a caller with only the read right gets hits only)")),
        kReasonPermissionDenied));
  });
  return false;
}

}  // namespace corral::rpc
