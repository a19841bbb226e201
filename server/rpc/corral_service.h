// The corral.v1.Corral service on gRPC's callback API. Handlers translate
// proto <-> domain, call the Coordinator and finish; no logic lives here.
// No handler blocks: a waiting caller is a reactor, not a thread.
#ifndef CORRAL_SERVER_RPC_CORRAL_SERVICE_H_
#define CORRAL_SERVER_RPC_CORRAL_SERVICE_H_

#include "corral/v1/corral.grpc.pb.h"
#include "server/core/coordinator.h"
#include "server/core/near_cache_hub.h"
#include "server/metrics/metrics.h"
#include "server/rpc/call_auth.h"

namespace corral::rpc {

// Every method on the callback API; GetOrCompute raw (grpc::ByteBuffer), so
// that a value goes out to all its waiters from one shared copy
// (server/rpc/wire.h). The wire format is the proto's either way.
using CorralServiceBase = corral::v1::Corral::WithCallbackMethod_AcquireLock<
    corral::v1::Corral::WithCallbackMethod_RenewLock<
        corral::v1::Corral::WithCallbackMethod_ReleaseLock<
            corral::v1::Corral::WithCallbackMethod_Get<
                corral::v1::Corral::WithCallbackMethod_Set<
                    corral::v1::Corral::WithCallbackMethod_Invalidate<
                        corral::v1::Corral::WithCallbackMethod_GetBreaker<
                            corral::v1::Corral::WithCallbackMethod_NearCache<
                                corral::v1::Corral::
                                    WithRawCallbackMethod_GetOrCompute<
                                        corral::v1::Corral::Service>>>>>>>>>;

// What the clients' near cache needs (the registry and clock are the ones
// the coordinator uses). A null hub: no near cache (NearCache streams are
// UNIMPLEMENTED and Get grants nothing).
struct NearCacheParts {
  NearCacheHub* hub = nullptr;
  const NamespaceRegistry* registry = nullptr;
  const Clock* clock = nullptr;
};

class CorralService final : public CorralServiceBase {
 public:
  // All must outlive the service. `auth` decides who may call what (health
  // and reflection are other services, open to all).
  CorralService(Coordinator& coordinator, Metrics& metrics,
                const CallAuthorizer& auth,
                NearCacheParts near_cache = NearCacheParts())
      : coordinator_(coordinator),
        metrics_(metrics),
        auth_(auth),
        near_cache_(near_cache) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GetOrCompute(
      grpc::CallbackServerContext* ctx) override;

  grpc::ServerUnaryReactor* AcquireLock(
      grpc::CallbackServerContext* ctx,
      const corral::v1::AcquireLockRequest* request,
      corral::v1::AcquireLockResponse* response) override;
  grpc::ServerUnaryReactor* RenewLock(
      grpc::CallbackServerContext* ctx,
      const corral::v1::RenewLockRequest* request,
      corral::v1::RenewLockResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseLock(
      grpc::CallbackServerContext* ctx,
      const corral::v1::ReleaseLockRequest* request,
      corral::v1::ReleaseLockResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const corral::v1::GetRequest* request,
                                corral::v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* ctx,
                                const corral::v1::SetRequest* request,
                                corral::v1::SetResponse* response) override;
  grpc::ServerUnaryReactor* Invalidate(
      grpc::CallbackServerContext* ctx,
      const corral::v1::InvalidateRequest* request,
      corral::v1::InvalidateResponse* response) override;
  grpc::ServerUnaryReactor* GetBreaker(
      grpc::CallbackServerContext* ctx,
      const corral::v1::GetBreakerRequest* request,
      corral::v1::GetBreakerResponse* response) override;
  grpc::ServerWriteReactor<corral::v1::NearCacheEvent>* NearCache(
      grpc::CallbackServerContext* ctx,
      const corral::v1::NearCacheRequest* request) override;

 private:
  Coordinator& coordinator_;
  Metrics& metrics_;
  const CallAuthorizer& auth_;
  const NearCacheParts near_cache_;
};

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_CORRAL_SERVICE_H_
