// Who may do what in a GetOrCompute exchange. A Lookup needs `read`; a
// caller that also has `compute` goes through the coordinator as usual. A
// caller without `compute` is answered from the cache alone: a hit is a
// Value (SOURCE_CACHE), a miss is PERMISSION_DENIED, since the exchange
// would go on to hand it the lease. Such a caller never takes the key's
// lock, joins its waiters or receives a lease, so it cannot hold up a
// computing tenant or leave a key unfilled.
#ifndef CORRAL_SERVER_RPC_LOOKUP_AUTH_H_
#define CORRAL_SERVER_RPC_LOOKUP_AUTH_H_

#include <memory>

#include "grpcpp/grpcpp.h"
#include "server/core/cache_key.h"
#include "server/core/coordinator.h"
#include "server/rpc/call_auth.h"

namespace corral::rpc {

// True when the caller of `ctx` may coordinate on `key` (read and compute):
// hand the Lookup to the coordinator. False when the call is being
// answered here instead (refused, or read-only); `sink` then hears exactly
// once, and the caller must not use the coordinator's session. Any thread.
bool AuthorizeLookup(const CallAuthorizer& auth,
                     const grpc::ServerContextBase& ctx,
                     Coordinator& coordinator, const CacheKey& key,
                     const std::shared_ptr<ComputeSink>& sink);

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_LOOKUP_AUTH_H_
