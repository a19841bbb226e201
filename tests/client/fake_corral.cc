#include "tests/client/fake_corral.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace corral::testing {
namespace {

template <typename Req, typename Resp>
grpc::Status Dispatch(const UnaryHandler<Req, Resp>& handler,
                      grpc::ServerContext* context, const Req* request,
                      Resp* response) {
  if (!handler) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fake");
  return handler(context, *request, response);
}

}  // namespace

grpc::Status Fail(grpc::ServerContext* context, grpc::StatusCode code,
                  const std::string& message, const std::string& reason,
                  int retry_after_ms) {
  if (!reason.empty()) context->AddTrailingMetadata("corral-reason", reason);
  if (retry_after_ms >= 0) {
    context->AddTrailingMetadata("retry-after-ms",
                                 absl::StrCat(retry_after_ms));
  }
  return grpc::Status(code, message);
}

void FakeCorral::Count(absl::string_view method) {
  absl::MutexLock lock(&mu_);
  calls_.emplace_back(method);
}

int FakeCorral::calls(absl::string_view method) const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count(calls_.begin(), calls_.end(), method));
}

grpc::Status FakeCorral::Get(grpc::ServerContext* c,
                             const corral::v1::GetRequest* r,
                             corral::v1::GetResponse* w) {
  Count("Get");
  return Dispatch(get, c, r, w);
}
grpc::Status FakeCorral::Set(grpc::ServerContext* c,
                             const corral::v1::SetRequest* r,
                             corral::v1::SetResponse* w) {
  Count("Set");
  return Dispatch(set, c, r, w);
}
grpc::Status FakeCorral::Invalidate(grpc::ServerContext* c,
                                    const corral::v1::InvalidateRequest* r,
                                    corral::v1::InvalidateResponse* w) {
  Count("Invalidate");
  return Dispatch(invalidate, c, r, w);
}
grpc::Status FakeCorral::AcquireLock(grpc::ServerContext* c,
                                     const corral::v1::AcquireLockRequest* r,
                                     corral::v1::AcquireLockResponse* w) {
  Count("AcquireLock");
  return Dispatch(acquire_lock, c, r, w);
}
grpc::Status FakeCorral::RenewLock(grpc::ServerContext* c,
                                   const corral::v1::RenewLockRequest* r,
                                   corral::v1::RenewLockResponse* w) {
  Count("RenewLock");
  return Dispatch(renew_lock, c, r, w);
}
grpc::Status FakeCorral::ReleaseLock(grpc::ServerContext* c,
                                     const corral::v1::ReleaseLockRequest* r,
                                     corral::v1::ReleaseLockResponse* w) {
  Count("ReleaseLock");
  return Dispatch(release_lock, c, r, w);
}
grpc::Status FakeCorral::GetBreaker(grpc::ServerContext* c,
                                    const corral::v1::GetBreakerRequest* r,
                                    corral::v1::GetBreakerResponse* w) {
  Count("GetBreaker");
  return Dispatch(get_breaker, c, r, w);
}
grpc::Status FakeCorral::GetOrCompute(grpc::ServerContext* c,
                                      GetOrComputeStream* stream) {
  Count("GetOrCompute");
  if (!get_or_compute) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fake");
  }
  return get_or_compute(c, stream);
}
grpc::Status FakeCorral::NearCache(
    grpc::ServerContext*, const corral::v1::NearCacheRequest*,
    grpc::ServerWriter<corral::v1::NearCacheEvent>*) {
  Count("NearCache");
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fake");
}

FakeCorralServer::FakeCorralServer() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  target_ = absl::StrCat("127.0.0.1:", port);
}

FakeCorralServer::~FakeCorralServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

void FakeCorralServer::SetServing(bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(serving);
}

}  // namespace corral::testing
