// An in-process corral.v1.Corral server whose answers each test scripts,
// served over real gRPC on 127.0.0.1:0 (plus the default health service), so
// client tests exercise the real transport, trailers and deadlines.
#ifndef CORRAL_TESTS_CLIENT_FAKE_CORRAL_H_
#define CORRAL_TESTS_CLIENT_FAKE_CORRAL_H_

#include <grpcpp/server.h>
#include <grpcpp/server_context.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "corral/v1/corral.grpc.pb.h"

namespace corral::testing {

using GetOrComputeStream =
    grpc::ServerReaderWriter<corral::v1::GetOrComputeResponse,
                             corral::v1::GetOrComputeRequest>;

template <typename Req, typename Resp>
using UnaryHandler =
    std::function<grpc::Status(grpc::ServerContext*, const Req&, Resp*)>;

// Messages a handler saw, for assertions after the call.
template <typename T>
class Recorder {
 public:
  void Add(const T& t) {
    absl::MutexLock lock(&mu_);
    items_.push_back(t);
  }
  std::vector<T> Get() const {
    absl::MutexLock lock(&mu_);
    return items_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<T> items_ ABSL_GUARDED_BY(mu_);
};

// Set the handlers before the first call; unset ones answer UNIMPLEMENTED.
class FakeCorral final : public corral::v1::Corral::Service {
 public:
  UnaryHandler<corral::v1::GetRequest, corral::v1::GetResponse> get;
  UnaryHandler<corral::v1::SetRequest, corral::v1::SetResponse> set;
  UnaryHandler<corral::v1::InvalidateRequest, corral::v1::InvalidateResponse>
      invalidate;
  UnaryHandler<corral::v1::AcquireLockRequest, corral::v1::AcquireLockResponse>
      acquire_lock;
  UnaryHandler<corral::v1::RenewLockRequest, corral::v1::RenewLockResponse>
      renew_lock;
  UnaryHandler<corral::v1::ReleaseLockRequest, corral::v1::ReleaseLockResponse>
      release_lock;
  UnaryHandler<corral::v1::GetBreakerRequest, corral::v1::GetBreakerResponse>
      get_breaker;
  std::function<grpc::Status(grpc::ServerContext*, GetOrComputeStream*)>
      get_or_compute;

  // Calls received per method name ("Get", "GetOrCompute", ...).
  int calls(absl::string_view method) const;

  grpc::Status Get(grpc::ServerContext* c, const corral::v1::GetRequest* r,
                   corral::v1::GetResponse* w) override;
  grpc::Status Set(grpc::ServerContext* c, const corral::v1::SetRequest* r,
                   corral::v1::SetResponse* w) override;
  grpc::Status Invalidate(grpc::ServerContext* c,
                          const corral::v1::InvalidateRequest* r,
                          corral::v1::InvalidateResponse* w) override;
  grpc::Status AcquireLock(grpc::ServerContext* c,
                           const corral::v1::AcquireLockRequest* r,
                           corral::v1::AcquireLockResponse* w) override;
  grpc::Status RenewLock(grpc::ServerContext* c,
                         const corral::v1::RenewLockRequest* r,
                         corral::v1::RenewLockResponse* w) override;
  grpc::Status ReleaseLock(grpc::ServerContext* c,
                           const corral::v1::ReleaseLockRequest* r,
                           corral::v1::ReleaseLockResponse* w) override;
  grpc::Status GetBreaker(grpc::ServerContext* c,
                          const corral::v1::GetBreakerRequest* r,
                          corral::v1::GetBreakerResponse* w) override;
  grpc::Status GetOrCompute(grpc::ServerContext* c,
                            GetOrComputeStream* stream) override;
  // Counted, then UNIMPLEMENTED (a server without a near cache).
  grpc::Status NearCache(
      grpc::ServerContext* c, const corral::v1::NearCacheRequest* r,
      grpc::ServerWriter<corral::v1::NearCacheEvent>* w) override;

 private:
  void Count(absl::string_view method);

  mutable absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

// Fails the call like corrald does: a status plus corral-reason (and
// retry-after-ms when `retry_after_ms` >= 0) trailers.
grpc::Status Fail(grpc::ServerContext* context, grpc::StatusCode code,
                  const std::string& message, const std::string& reason,
                  int retry_after_ms = -1);

class FakeCorralServer {
 public:
  FakeCorralServer();
  ~FakeCorralServer();

  const std::string& target() const { return target_; }
  FakeCorral& service() { return service_; }
  // Marks the default health service NOT_SERVING.
  void SetServing(bool serving);

 private:
  FakeCorral service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_CLIENT_FAKE_CORRAL_H_
