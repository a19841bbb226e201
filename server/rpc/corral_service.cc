#include "server/rpc/corral_service.h"

#include <atomic>
#include <memory>
#include <utility>

#include "absl/time/clock.h"
#include "server/core/errors.h"
#include "server/core/validation.h"
#include "server/rpc/compute_reactor.h"
#include "server/rpc/convert.h"
#include "server/rpc/near_cache_reactor.h"

namespace corral::rpc {

namespace pb = corral::v1;

namespace {

// Ends a unary call exactly once: trailers, status, and the RPC metrics.
class Finisher {
 public:
  Finisher(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
           Metrics* metrics, absl::string_view method)
      : ctx_(ctx),
        reactor_(reactor),
        metrics_(metrics),
        method_(method),
        started_(absl::Now()) {}

  void Finish(const absl::Status& status) const {
    grpc::Status out = ToGrpcStatus(status, ctx_);
    metrics_->OnRpc(method_, CodeName(out.error_code()),
                    absl::Now() - started_);
    reactor_->Finish(out);
  }

  // True when the caller may use `right` in `ns`; otherwise finishes the
  // call with the refusal.
  bool Authorized(const CallAuthorizer& auth, absl::string_view ns,
                  Right right) const {
    absl::Status status = auth.Check(*ctx_, method_, ns, right);
    if (status.ok()) return true;
    Finish(status);
    return false;
  }

 private:
  grpc::CallbackServerContext* ctx_;
  grpc::ServerUnaryReactor* reactor_;
  Metrics* metrics_;
  absl::string_view method_;
  absl::Time started_;
};

// Returns the duration or finishes the call with its error.
#define CORRAL_DURATION_OR_FINISH(var, field, msg, name)             \
  auto var = DurationField(field, (msg).has_##name(), (msg).name()); \
  if (!var.ok()) {                                                   \
    fin.Finish(var.status());                                        \
    return reactor;                                                  \
  }

// AcquireLock may wait, so it needs to hear about cancellation: the wait is
// dropped at once and costs nothing afterwards.
class AcquireLockReactor final : public grpc::ServerUnaryReactor {
 public:
  AcquireLockReactor(grpc::CallbackServerContext* ctx, Coordinator& coordinator,
                     Metrics& metrics, pb::AcquireLockResponse* response)
      : coordinator_(coordinator),
        state_(std::make_shared<State>(ctx, this, &metrics, response)) {}

  void Start(pb::AcquireLockRequest request, const CallAuthorizer& auth) {
    std::shared_ptr<State> state = state_;
    absl::Status allowed = auth.Check(*state->ctx, "AcquireLock",
                                      request.namespace_(), Right::kLock);
    if (!allowed.ok()) return state->FinishOnce(allowed);
    corral::AcquireLockRequest domain;
    domain.key = CacheKey{request.namespace_(), request.key()};
    auto ttl = DurationField("ttl", request.has_ttl(), request.ttl());
    auto wait = DurationField("wait_timeout", request.has_wait_timeout(),
                              request.wait_timeout());
    for (const absl::Status& s : {ttl.status(), wait.status()}) {
      if (!s.ok()) return state->FinishOnce(s);
    }
    domain.ttl = *ttl;
    domain.wait_timeout = *wait;
    domain.owner = request.owner();
    domain.deadline = DeadlineOf(*state->ctx);
    id_ = coordinator_.AcquireLock(std::move(domain),
                                   [state](absl::StatusOr<LockGrant> grant) {
                                     if (grant.ok()) {
                                       state->Respond(*grant);
                                     } else {
                                       state->FinishOnce(grant.status());
                                     }
                                   });
  }

  void OnCancel() override {
    coordinator_.CancelAcquire(id_);
    state_->FinishOnce(absl::CancelledError("cancelled by the client"));
  }
  void OnDone() override { delete this; }

 private:
  // Shared with the coordinator's callback, which may outlive this reactor
  // only when it lost the race to finish (and then touches nothing else).
  struct State {
    State(grpc::CallbackServerContext* c, AcquireLockReactor* r, Metrics* m,
          pb::AcquireLockResponse* resp)
        : ctx(c), reactor(r), response(resp), fin(c, r, m, "AcquireLock") {}
    void Respond(const LockGrant& grant) {
      if (finished.exchange(true)) return;
      response->set_acquired(grant.acquired);
      if (grant.acquired) {
        response->set_token(grant.token);
        response->set_fencing_token(grant.fencing_token);
        ToProto(grant.expires_at, response->mutable_expires_at());
      }
      ToProto(grant.waited, response->mutable_waited());
      fin.Finish(absl::OkStatus());
    }
    void FinishOnce(const absl::Status& status) {
      if (finished.exchange(true)) return;
      fin.Finish(status);
    }
    grpc::CallbackServerContext* ctx;
    AcquireLockReactor* reactor;
    pb::AcquireLockResponse* response;
    Finisher fin;
    std::atomic<bool> finished{false};
  };

  Coordinator& coordinator_;
  std::shared_ptr<State> state_;
  Coordinator::CallId id_ = 0;
};

// A NearCache stream refused before it starts.
class UnavailableStream final
    : public grpc::ServerWriteReactor<pb::NearCacheEvent> {
 public:
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
CorralService::GetOrCompute(grpc::CallbackServerContext* ctx) {
  return new ComputeReactor(ctx, coordinator_, metrics_, auth_);
}

grpc::ServerUnaryReactor* CorralService::AcquireLock(
    grpc::CallbackServerContext* ctx, const pb::AcquireLockRequest* request,
    pb::AcquireLockResponse* response) {
  auto* reactor = new AcquireLockReactor(ctx, coordinator_, metrics_, response);
  reactor->Start(*request, auth_);
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::RenewLock(
    grpc::CallbackServerContext* ctx, const pb::RenewLockRequest* request,
    pb::RenewLockResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "RenewLock");
  if (!fin.Authorized(auth_, request->namespace_(), Right::kLock))
    return reactor;
  CORRAL_DURATION_OR_FINISH(ttl, "ttl", *request, ttl);
  corral::RenewLockRequest domain{
      CacheKey{request->namespace_(), request->key()}, request->token(), *ttl};
  coordinator_.RenewLock(
      std::move(domain), [fin, response](absl::StatusOr<RenewResult> r) {
        if (r.ok()) {
          response->set_renewed(r->renewed);
          if (r->renewed)
            ToProto(r->expires_at, response->mutable_expires_at());
        }
        fin.Finish(r.status());
      });
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::ReleaseLock(
    grpc::CallbackServerContext* ctx, const pb::ReleaseLockRequest* request,
    pb::ReleaseLockResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "ReleaseLock");
  if (!fin.Authorized(auth_, request->namespace_(), Right::kLock))
    return reactor;
  corral::ReleaseLockRequest domain{
      CacheKey{request->namespace_(), request->key()}, request->token(),
      static_cast<Outcome>(request->outcome())};
  if (request->outcome() < 0 || request->outcome() > 2) {
    fin.Finish(InvalidField("outcome", "is not a known Outcome value"));
    return reactor;
  }
  coordinator_.ReleaseLock(std::move(domain),
                           [fin, response](absl::StatusOr<bool> r) {
                             if (r.ok()) response->set_released(*r);
                             fin.Finish(r.status());
                           });
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::Get(grpc::CallbackServerContext* ctx,
                                             const pb::GetRequest* request,
                                             pb::GetResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "Get");
  if (!fin.Authorized(auth_, request->namespace_(), Right::kRead))
    return reactor;
  CacheKey key{request->namespace_(), request->key()};
  // Registered before the read (docs/ARCHITECTURE.md 3.8): any change after
  // it is pushed to the session.
  double beta = 0;
  const bool may_near = near_cache_.registry != nullptr &&
                        near_cache_.registry->UsesNearCache(key.ns, &beta);
  const bool near =
      may_near && near_cache_.hub != nullptr &&
      !request->near_cache_session().empty() &&
      ValidateNamespace("namespace", key.ns).ok() &&
      ValidateKey("key", key.key).ok() &&
      near_cache_.hub->Register(request->near_cache_session(), key);
  const bool draw = request->draw_early_refresh();
  coordinator_.Get(std::move(key), [this, fin, response, near, draw,
                                    beta](absl::StatusOr<GetResult> r) {
    if (r.ok()) {
      response->set_found(r->found);
      if (r->found) {
        ToProto(r->value, response->mutable_value());
        const absl::Time now = near_cache_.clock != nullptr
                                   ? near_cache_.clock->Now()
                                   : absl::Now();
        if (draw && coordinator_.DrawEarlyRefresh(beta, r->value)) {
          ToProto(r->value.expires_at, response->mutable_refresh_due_for());
        } else if (near && (r->from_read_cache || r->tracked_read)) {
          const absl::Duration grant = NearCacheFor(
              now, r->value.expires_at, r->value.compute_time, beta);
          if (grant > absl::ZeroDuration())
            ToProto(grant, response->mutable_value()->mutable_near_cache_for());
        }
      }
    }
    fin.Finish(r.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::Set(grpc::CallbackServerContext* ctx,
                                             const pb::SetRequest* request,
                                             pb::SetResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "Set");
  // A fenced write is the lock API's Fill: the lock holder's to make.
  const Right needed =
      request->lock_token().empty() ? Right::kAdmin : Right::kLock;
  if (!fin.Authorized(auth_, request->namespace_(), needed)) return reactor;
  CORRAL_DURATION_OR_FINISH(ttl, "ttl", *request, ttl);
  corral::SetRequest domain;
  domain.key = CacheKey{request->namespace_(), request->key()};
  domain.value = request->value();
  domain.ttl = *ttl;
  domain.lock_token = request->lock_token();
  domain.release_lock = request->release_lock();
  coordinator_.Set(std::move(domain), [fin, response](absl::StatusOr<bool> r) {
    if (r.ok()) response->set_stored(*r);
    fin.Finish(r.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::Invalidate(
    grpc::CallbackServerContext* ctx, const pb::InvalidateRequest* request,
    pb::InvalidateResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "Invalidate");
  if (!fin.Authorized(auth_, request->namespace_(), Right::kAdmin))
    return reactor;
  coordinator_.Invalidate(CacheKey{request->namespace_(), request->key()},
                          [fin, response](absl::StatusOr<bool> r) {
                            if (r.ok()) response->set_existed(*r);
                            fin.Finish(r.status());
                          });
  return reactor;
}

grpc::ServerUnaryReactor* CorralService::GetBreaker(
    grpc::CallbackServerContext* ctx, const pb::GetBreakerRequest* request,
    pb::GetBreakerResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  Finisher fin(ctx, reactor, &metrics_, "GetBreaker");
  if (!fin.Authorized(auth_, request->namespace_(), Right::kAdmin))
    return reactor;
  coordinator_.DescribeBreaker(
      request->namespace_(), [fin, response, ns = request->namespace_()](
                                 absl::StatusOr<BreakerView> view) {
        if (view.ok()) {
          response->set_namespace_(ns);
          response->set_state(static_cast<pb::BreakerState>(view->state));
          ToProto(view->since, response->mutable_since());
          ToProto(view->retry_after, response->mutable_retry_after());
          response->set_recent_failures(view->recent_failures);
          response->set_recent_successes(view->recent_successes);
        }
        fin.Finish(view.status());
      });
  return reactor;
}

grpc::ServerWriteReactor<pb::NearCacheEvent>* CorralService::NearCache(
    grpc::CallbackServerContext* ctx, const pb::NearCacheRequest* request) {
  if (near_cache_.hub == nullptr) {
    auto* reactor = new UnavailableStream();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                 "this server has no near cache"));
    return reactor;
  }
  return StartNearCache(ctx, *request, *near_cache_.hub, auth_);
}

}  // namespace corral::rpc
