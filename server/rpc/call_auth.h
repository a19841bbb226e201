// Applies the Authorizer to gRPC calls: reads the `authorization` metadata,
// and counts (corral_auth_failures_total{reason}) and logs each refusal by
// credential name, never by token.
#ifndef CORRAL_SERVER_RPC_CALL_AUTH_H_
#define CORRAL_SERVER_RPC_CALL_AUTH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "server/rpc/auth.h"

namespace corral::rpc {

// Thread-safe; `authorizer` must outlive it.
class CallAuthorizer {
 public:
  CallAuthorizer(const Authorizer& authorizer, prometheus::Registry& registry);

  // OK when the caller of `ctx` may use `right` in `ns`; otherwise the
  // status to finish the call with (already counted and logged). `method`
  // names the RPC in the log.
  absl::Status Check(const grpc::ServerContextBase& ctx,
                     absl::string_view method, absl::string_view ns,
                     Right right) const;

  // The same question, but a "no" is neither counted nor logged: for
  // choosing between two allowed paths (GetOrCompute without `compute`).
  bool Allows(const grpc::ServerContextBase& ctx, absl::string_view ns,
              Right right) const;

  // Whether the call carries a token that some credential accepts (any
  // namespace, any right): calls that name no namespace (NearCache). A
  // refusal is counted and logged like Check's.
  bool Authenticated(const grpc::ServerContextBase& ctx,
                     absl::string_view method) const;

 private:
  const Authorizer& authorizer_;
  prometheus::Family<prometheus::Counter>& failures_;
};

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_CALL_AUTH_H_
