#include "server/rpc/near_cache_reactor.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "server/core/errors.h"
#include "server/core/log.h"
#include "server/rpc/convert.h"

namespace corral::rpc {

namespace pb = corral::v1;

namespace {

class NearCacheReactor final
    : public grpc::ServerWriteReactor<pb::NearCacheEvent> {
 public:
  NearCacheReactor(grpc::CallbackServerContext* ctx, NearCacheHub& hub)
      : ctx_(ctx), hub_(hub), sink_(std::make_shared<Sink>(this)) {}

  void Start(const pb::NearCacheRequest& request, const CallAuthorizer& auth) {
    if (!auth.Authenticated(*ctx_, "NearCache")) {
      absl::Status refused = absl::UnauthenticatedError(
          "NearCache needs a token this server accepts");
      sink_->Refuse(
          ToGrpcStatus(WithReason(refused, kReasonUnauthenticated), ctx_));
      return;
    }
    session_ = hub_.Open(sink_);
    if (session_.empty()) return;  // Shutting down: End() finishes.
    CORRAL_LOG(LogLevel::kDebug, "near_cache_open", "client=",
               absl::CHexEscape(request.client_name().substr(0, 256)),
               " peer=", ctx_->peer());
    sink_->Started(session_);
  }

  void OnWriteDone(bool ok) override { sink_->WriteDone(ok); }
  void OnCancel() override { sink_->Cancelled(); }
  void OnDone() override {
    if (!session_.empty()) hub_.Close(session_);
    sink_->Detach();
    delete this;
  }

 private:
  // The hub's handle on this stream; outlives the reactor if the hub holds
  // it a little longer (then it drops everything).
  class Sink final : public NearCacheSink {
   public:
    explicit Sink(NearCacheReactor* reactor) : reactor_(reactor) {}

    void Started(const std::string& session) {
      {
        absl::MutexLock lock(&mu_);
        started_ = session;
      }
      Drive();
    }
    void Invalidate(std::vector<CacheKey> keys) override {
      {
        absl::MutexLock lock(&mu_);
        if (reset_.has_value()) return;  // The reset covers them.
        for (CacheKey& key : keys) keys_.push_back(std::move(key));
        if (keys_.size() > kMaxQueuedKeys) {
          keys_.clear();
          reset_ = "slow-stream";
        }
      }
      Drive();
    }
    void Reset(absl::string_view reason) override {
      {
        absl::MutexLock lock(&mu_);
        keys_.clear();
        reset_ = std::string(reason);
      }
      Drive();
    }
    void Refuse(grpc::Status status) {
      {
        absl::MutexLock lock(&mu_);
        if (!finish_.has_value()) finish_ = std::move(status);
      }
      Drive();
    }
    void End() override {
      {
        absl::MutexLock lock(&mu_);
        if (!finish_.has_value()) {
          finish_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "corrald is shutting down");
        }
      }
      Drive();
    }
    void WriteDone(bool ok) {
      {
        absl::MutexLock lock(&mu_);
        writing_ = false;
        if (!ok && !finish_.has_value())
          finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      }
      Drive();
    }
    void Cancelled() {
      {
        absl::MutexLock lock(&mu_);
        if (!finish_.has_value())
          finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
        // Nothing more will be read: drop what is queued.
        keys_.clear();
        reset_.reset();
        started_.reset();
      }
      Drive();
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }

   private:
    // Starts the next write, or the finish once nothing is queued; outside
    // the mutex (gRPC may run a reaction inline).
    void Drive() {
      NearCacheReactor* reactor = nullptr;
      bool write = false;
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        if (reactor_ == nullptr || writing_ || finish_started_) return;
        writing_event_.Clear();
        if (started_.has_value()) {
          writing_event_.mutable_started()->set_session(*started_);
          started_.reset();
          started_sent_ = true;
          write = true;
        } else if (!started_sent_ && !finish_.has_value()) {
          return;  // The session's name goes first.
        } else if (reset_.has_value()) {
          writing_event_.mutable_reset()->set_reason(*reset_);
          reset_.reset();
          write = true;
        } else if (!keys_.empty()) {
          auto* out = writing_event_.mutable_invalidations();
          for (CacheKey& key : keys_) {
            pb::NearCacheKey* k = out->add_keys();
            k->set_namespace_(std::move(key.ns));
            k->set_key(std::move(key.key));
          }
          keys_.clear();
          write = true;
        } else if (finish_.has_value()) {
          finish = finish_;
          finish_started_ = true;
        }
        if (write) writing_ = true;
        reactor = reactor_;
      }
      if (write) {
        reactor->StartWrite(&writing_event_);
      } else if (finish.has_value()) {
        reactor->Finish(*finish);
      }
    }

    absl::Mutex mu_;
    NearCacheReactor* reactor_ ABSL_GUARDED_BY(mu_);
    std::optional<std::string> started_ ABSL_GUARDED_BY(mu_);
    std::vector<CacheKey> keys_ ABSL_GUARDED_BY(mu_);
    std::optional<std::string> reset_ ABSL_GUARDED_BY(mu_);
    std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool started_sent_ ABSL_GUARDED_BY(mu_) = false;
    bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
    // Owned by the write in flight (only one at a time).
    pb::NearCacheEvent writing_event_;
  };

  grpc::CallbackServerContext* const ctx_;
  NearCacheHub& hub_;
  std::shared_ptr<Sink> sink_;
  std::string session_;
};

}  // namespace

grpc::ServerWriteReactor<pb::NearCacheEvent>* StartNearCache(
    grpc::CallbackServerContext* ctx, const pb::NearCacheRequest& request,
    NearCacheHub& hub, const CallAuthorizer& auth) {
  auto* reactor = new NearCacheReactor(ctx, hub);
  reactor->Start(request, auth);
  return reactor;
}

}  // namespace corral::rpc
