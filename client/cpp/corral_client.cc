#include "client/cpp/corral_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cpp/call.h"
#include "client/cpp/convert.h"
#include "client/cpp/flight_group.h"
#include "client/cpp/near_cache.h"
#include "client/cpp/target.h"

namespace corral::client {

using internal::CallWithRetries;
using internal::DurationToProto;
using internal::Once;
using internal::TimeFromProto;

namespace {

void WarnIfPlaintextToken(const std::string& target,
                          const ClientOptions& options) {
  if (options.token.empty() || options.credentials ||
      IsLoopbackTarget(target)) {
    return;
  }
  const std::string message = absl::StrCat(
      "corral client: WARNING: sending a bearer token in plaintext to ", target,
      ": anyone on the network path can read it and use it; set "
      "ClientOptions::credentials (TLS, see credentials.h)");
  if (options.on_plaintext_token) {
    options.on_plaintext_token(message);
  } else {
    // One write, so that the line is not interleaved with others.
    std::fprintf(stderr, "%s\n", message.c_str());
  }
}

// `lb_policy` empty: gRPC's default. `pinned`: one replica whatever the
// resolver's service config says (the near cache's channel).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ClientOptions& options,
                                           const std::string& lb_policy,
                                           bool pinned = false) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (!lb_policy.empty()) args.SetLoadBalancingPolicyName(lb_policy);
  if (pinned) args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials ? options.credentials
                          : grpc::InsecureChannelCredentials();
  if (options.token.empty())
    return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(BearerTokenInterceptor(options.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target, credentials, args, std::move(interceptors));
}

// The target constructor's channel.
std::shared_ptr<grpc::Channel> MakeOwnChannel(const std::string& target,
                                              const ClientOptions& options) {
  WarnIfPlaintextToken(target, options);
  return MakeChannel(target, options, options.load_balancing);
}

// corrald grants only to the session it holds, so the near cache's stream
// and its Gets must reach one replica: the Client's channel when it sends
// every call to one address (pick_first, gRPC's default), else a channel
// of their own pinned to one.
std::shared_ptr<grpc::Channel> NearChannel(
    const std::string& target, const ClientOptions& options,
    const std::shared_ptr<grpc::Channel>& channel) {
  if (!options.near_cache) return channel;
  if (options.near_cache_channel != nullptr) return options.near_cache_channel;
  if (target.empty() || options.load_balancing.empty() ||
      options.load_balancing == "pick_first")
    return channel;
  return MakeChannel(target, options, "pick_first", /*pinned=*/true);
}

std::unique_ptr<internal::NearCache> MakeNearCache(
    corral::v1::Corral::Stub& stub, const ClientOptions& options) {
  if (!options.near_cache) return nullptr;
  internal::NearCacheLimits limits;
  limits.max_entries = options.near_cache_max_entries;
  limits.max_bytes = options.near_cache_max_bytes;
  return std::make_unique<internal::NearCache>(stub, limits, options.worker_id);
}

}  // namespace

Client::Client(std::string target, ClientOptions options)
    : target_(std::move(target)),
      options_(std::move(options)),
      channel_(MakeOwnChannel(target_, options_)),
      stub_(corral::v1::Corral::NewStub(channel_)),
      near_channel_(NearChannel(target_, options_, channel_)),
      near_stub_(corral::v1::Corral::NewStub(near_channel_)),
      near_(MakeNearCache(*near_stub_, options_)),
      flights_(std::make_unique<internal::FlightGroup>()) {}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(corral::v1::Corral::NewStub(channel_)),
      near_channel_(NearChannel("", options_, channel_)),
      near_stub_(corral::v1::Corral::NewStub(near_channel_)),
      near_(MakeNearCache(*near_stub_, options_)),
      flights_(std::make_unique<internal::FlightGroup>()) {}

// The near cache's thread ends before the stub goes.
Client::~Client() { near_.reset(); }

bool Client::WaitNearCacheReady(absl::Duration timeout) const {
  return near_ != nullptr && near_->WaitConnected(timeout);
}

ClientStats Client::stats() const {
  ClientStats s;
  s.get_rpcs = get_rpcs_.load();
  s.get_or_compute_streams = streams_.load();
  s.shared_calls = shared_calls_.load();
  if (near_ != nullptr) near_->AddStats(&s);
  return s;
}

absl::Time Client::DeadlineFor(
    const std::optional<absl::Duration>& timeout) const {
  return absl::Now() + timeout.value_or(options_.default_timeout);
}

absl::StatusOr<corral::v1::GetResponse> Client::GetRemote(
    absl::string_view ns, absl::string_view key, bool use_near_cache,
    bool draw_early_refresh, absl::Time deadline) {
  corral::v1::GetRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  request.set_draw_early_refresh(draw_early_refresh);
  const bool near = use_near_cache && near_ != nullptr;
  internal::NearCache::Ticket ticket;
  if (near) {
    ticket = near_->Begin(ns, key);
    request.set_near_cache_session(ticket.session);
  }
  auto response = CallWithRetries<corral::v1::GetResponse>(
      options_.retry, deadline,
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        get_rpcs_.fetch_add(1, std::memory_order_relaxed);
        // A Get the near cache may keep goes where its stream goes.
        return (near ? near_stub_ : stub_)
            ->PrepareAsyncGet(context, request, cq);
      });
  if (near) {
    // A value due for an early refresh goes back to corrald, not into the
    // near cache.
    const bool keep =
        response.ok() && response->found() && !response->has_refresh_due_for();
    near_->End(ticket, ns, key, keep ? &response->value() : nullptr);
  }
  return response;
}

absl::StatusOr<GetResult> Client::Get(absl::string_view ns,
                                      absl::string_view key,
                                      const CallOptions& call) {
  const bool near = call.near_cache && near_ != nullptr;
  if (near) {
    if (std::optional<CachedValue> hit = near_->Find(ns, key)) {
      GetResult result;
      result.found = true;
      result.value = *std::move(hit);
      return result;
    }
  }
  auto response = GetRemote(ns, key, near, /*draw_early_refresh=*/false,
                            DeadlineFor(call.timeout));
  if (!response.ok()) return response.status();
  GetResult result;
  result.found = response->found();
  if (result.found) result.value = internal::ValueFromProto(response->value());
  return result;
}

absl::StatusOr<SetResult> Client::Set(absl::string_view ns,
                                      absl::string_view key,
                                      absl::string_view value,
                                      const SetOptions& set,
                                      const CallOptions& call) {
  corral::v1::SetRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  request.set_value(std::string(value));
  if (set.ttl) *request.mutable_ttl() = DurationToProto(*set.ttl);
  request.set_lock_token(set.lock_token);
  request.set_release_lock(set.release_lock);
  // A fenced write (which may release the lock) runs once; a plain one is
  // idempotent and may be retried.
  auto response = CallWithRetries<corral::v1::SetResponse>(
      set.lock_token.empty() ? options_.retry : Once(options_.retry),
      DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncSet(context, request, cq);
      });
  if (!response.ok()) return response.status();
  return SetResult{response->stored()};
}

absl::StatusOr<InvalidateResult> Client::Invalidate(absl::string_view ns,
                                                    absl::string_view key,
                                                    const CallOptions& call) {
  corral::v1::InvalidateRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  auto response = CallWithRetries<corral::v1::InvalidateResponse>(
      options_.retry, DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncInvalidate(context, request, cq);
      });
  if (!response.ok()) return response.status();
  return InvalidateResult{response->existed()};
}

absl::StatusOr<AcquireLockResult> Client::AcquireLock(
    absl::string_view ns, absl::string_view key,
    std::optional<absl::Duration> ttl,
    std::optional<absl::Duration> wait_timeout, absl::string_view owner,
    const CallOptions& call) {
  AcquireLockOptions options;
  options.ttl = ttl;
  options.wait_timeout = wait_timeout;
  options.owner = std::string(owner);
  return AcquireLock(ns, key, options, call);
}

absl::StatusOr<AcquireLockResult> Client::AcquireLock(
    absl::string_view ns, absl::string_view key,
    const AcquireLockOptions& options, const CallOptions& call) {
  corral::v1::AcquireLockRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  if (options.ttl) *request.mutable_ttl() = DurationToProto(*options.ttl);
  if (options.wait_timeout) {
    *request.mutable_wait_timeout() = DurationToProto(*options.wait_timeout);
  }
  request.set_owner(options.owner.empty() ? options_.worker_id : options.owner);
  absl::Duration timeout = call.timeout.value_or(options_.default_timeout);
  if (options.wait_timeout && !call.timeout) {
    // The server answers {acquired: false} when the wait ends; the deadline
    // must leave it time to say so.
    timeout =
        std::max(timeout, *options.wait_timeout + options_.default_timeout);
  }
  auto response = CallWithRetries<corral::v1::AcquireLockResponse>(
      Once(options_.retry), absl::Now() + timeout,
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncAcquireLock(context, request, cq);
      });
  if (!response.ok()) return response.status();
  AcquireLockResult result;
  result.acquired = response->acquired();
  result.token = response->token();
  result.fencing_token = response->fencing_token();
  if (response->has_expires_at()) {
    result.expires_at = TimeFromProto(response->expires_at());
  }
  result.waited = internal::DurationFromProto(response->waited());
  return result;
}

absl::StatusOr<RenewLockResult> Client::RenewLock(
    absl::string_view ns, absl::string_view key, absl::string_view token,
    std::optional<absl::Duration> ttl, const CallOptions& call) {
  corral::v1::RenewLockRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  request.set_token(std::string(token));
  if (ttl) *request.mutable_ttl() = DurationToProto(*ttl);
  auto response = CallWithRetries<corral::v1::RenewLockResponse>(
      options_.retry, DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncRenewLock(context, request, cq);
      });
  if (!response.ok()) return response.status();
  RenewLockResult result;
  result.renewed = response->renewed();
  if (response->has_expires_at()) {
    result.expires_at = TimeFromProto(response->expires_at());
  }
  return result;
}

absl::StatusOr<ReleaseLockResult> Client::ReleaseLock(absl::string_view ns,
                                                      absl::string_view key,
                                                      absl::string_view token,
                                                      Outcome outcome,
                                                      const CallOptions& call) {
  corral::v1::ReleaseLockRequest request;
  request.set_namespace_(std::string(ns));
  request.set_key(std::string(key));
  request.set_token(std::string(token));
  request.set_outcome(internal::OutcomeToProto(outcome));
  auto response = CallWithRetries<corral::v1::ReleaseLockResponse>(
      Once(options_.retry), DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncReleaseLock(context, request, cq);
      });
  if (!response.ok()) return response.status();
  return ReleaseLockResult{response->released()};
}

absl::StatusOr<BreakerInfo> Client::GetBreaker(absl::string_view ns,
                                               const CallOptions& call) {
  corral::v1::GetBreakerRequest request;
  request.set_namespace_(std::string(ns));
  auto response = CallWithRetries<corral::v1::GetBreakerResponse>(
      options_.retry, DeadlineFor(call.timeout),
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncGetBreaker(context, request, cq);
      });
  if (!response.ok()) return response.status();
  BreakerInfo info;
  info.ns = response->namespace_();
  info.state = internal::BreakerStateFromProto(response->state());
  if (response->has_since()) info.since = TimeFromProto(response->since());
  info.retry_after = internal::DurationFromProto(response->retry_after());
  info.recent_failures = response->recent_failures();
  info.recent_successes = response->recent_successes();
  return info;
}

}  // namespace corral::client
