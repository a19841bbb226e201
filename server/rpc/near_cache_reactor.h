// One client's NearCache stream (corral.proto, "Near cache"): a session of
// the NearCacheHub, whose invalidations and resets it writes in order.
// While a write is in flight, invalidations collect into the next message;
// past kMaxQueuedKeys (a client that does not read) they are replaced by
// one reset, so a slow client costs bounded memory.
#ifndef CORRAL_SERVER_RPC_NEAR_CACHE_REACTOR_H_
#define CORRAL_SERVER_RPC_NEAR_CACHE_REACTOR_H_

#include <memory>
#include <string>

#include "corral/v1/corral.grpc.pb.h"
#include "server/core/near_cache_hub.h"
#include "server/metrics/metrics.h"
#include "server/rpc/call_auth.h"

namespace corral::rpc {

inline constexpr size_t kMaxQueuedKeys = 10000;

// Starts the stream (or finishes it with the refusal); deletes itself when
// done.
grpc::ServerWriteReactor<corral::v1::NearCacheEvent>* StartNearCache(
    grpc::CallbackServerContext* ctx, const corral::v1::NearCacheRequest& req,
    NearCacheHub& hub, const CallAuthorizer& auth);

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_NEAR_CACHE_REACTOR_H_
