// The C++ client of corral (service corral.v1.Corral).
//
//   corral::client::Client client("127.0.0.1:50051");
//   absl::StatusOr<GetOrComputeResult> r = client.GetOrCompute(
//       "plant_id", image_hash, [&]() -> absl::StatusOr<std::string> {
//         return CallThePaidApi(image);  // Runs only if this caller holds
//       });                              // the key's lease.
//
// Every method blocks the calling thread for one call (retries included) and
// returns absl::Status / absl::StatusOr; gRPC codes map 1:1 and the server's
// `corral-reason` / `retry-after-ms` trailers are kept (see errors.h).
// Client is thread-safe: share one per process and target.
#ifndef CORRAL_CLIENT_CPP_CORRAL_CLIENT_H_
#define CORRAL_CLIENT_CPP_CORRAL_CLIENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cpp/credentials.h"
#include "client/cpp/errors.h"
#include "client/cpp/retry.h"
#include "client/cpp/types.h"
#include "corral/v1/corral.grpc.pb.h"

namespace corral::client {

namespace internal {
class NearCache;
class FlightGroup;
}  // namespace internal

struct ClientOptions {
  // Deadline of one call, retries included, unless the call overrides it.
  absl::Duration default_timeout = absl::Seconds(30);
  // Null means plaintext (grpc::InsecureChannelCredentials()); for TLS see
  // TlsCredentialsFromFiles in credentials.h.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Bearer token sent as `authorization: Bearer <token>` on every call, for
  // servers with credentials configured. Empty: none. Applied to channels
  // the Client makes; a channel passed in must carry it itself (see
  // BearerTokenInterceptor).
  std::string token;
  // Called once, by the target constructor, when `token` would be sent
  // without TLS (no `credentials`) to a target beyond this host (see
  // IsLoopbackTarget in target.h): anyone on the path can read the token
  // and use it. A warning, not an error: the Client is made all the same.
  // Unset: the message is written to stderr as one line. The constructor
  // taking a channel cannot see the channel's security and never calls it.
  std::function<void(absl::string_view message)> on_plaintext_token;
  // Transport failures (UNAVAILABLE without a corral-reason) of idempotent
  // calls are retried; AcquireLock, ReleaseLock and fenced Sets run once.
  RetryPolicy retry;
  // Sent as Lookup.worker_id, and the default AcquireLock owner; for logs.
  std::string worker_id;
  // Largest response accepted; values travel whole in one message.
  int max_receive_message_bytes = 64 << 20;
  // The near cache: Get and GetOrCompute hits served from this process's
  // memory, kept coherent by corrald (README, "Near cache"). A value is
  // kept only as long as corrald grants (never past its TTL or into its
  // early-refresh window) and is dropped when corrald says it changed or
  // the invalidation stream is lost. Off: every call asks corrald.
  bool near_cache = true;
  size_t near_cache_max_entries = 10000;
  size_t near_cache_max_bytes = 64 << 20;
  // gRPC load-balancing policy of the channel the target constructor makes:
  // empty (gRPC's default, pick_first: every call to one address) or a
  // policy name such as "round_robin" (calls spread over every address the
  // target resolves to, e.g. "dns:///corrald:7000" or "ipv4:a:p,b:p").
  // corrald grants near caching only to Gets that reach the replica holding
  // the client's NearCache stream, so with a policy other than pick_first
  // the stream and the Gets that may be near-cached go over a second
  // channel pinned to one replica (README, "Near cache").
  std::string load_balancing;
  // With the channel constructor: a channel to one replica (pick_first) for
  // the near cache's stream and the Gets that may be near-cached. Null: the
  // channel passed in, which then should send every call to one replica,
  // or the Gets that reach another get no grant (never a wrong value).
  std::shared_ptr<grpc::Channel> near_cache_channel;
};

// Per-call overrides.
struct CallOptions {
  std::optional<absl::Duration> timeout;  // Unset: default_timeout.
  // false: ask corrald even if the near cache holds the key (Get only).
  bool near_cache = true;
};

struct SetOptions {
  std::optional<absl::Duration> ttl;  // Unset: the namespace default.
  // Fenced write: stored only while this lock is held, and it wakes the
  // key's GetOrCompute waiters like a Fill.
  std::string lock_token;
  bool release_lock = false;  // With lock_token: release it in the same call.
};

struct SetResult {
  bool stored = false;
};
struct InvalidateResult {
  bool existed = false;
};
struct ReleaseLockResult {
  bool released = false;
};

// Options of AcquireLock. Unset durations mean the namespace default.
struct AcquireLockOptions {
  // The lock's expiry unless renewed (RenewLock). Unset: the namespace's
  // lease_ttl.
  std::optional<absl::Duration> ttl;
  // How long corrald waits for the lock: zero tries once. Unset: the
  // namespace's wait_timeout.
  std::optional<absl::Duration> wait_timeout;
  std::string owner;  // For logs. Empty: ClientOptions::worker_id.
};

// Options of GetOrCompute. Unset durations mean the namespace default.
struct GetOrComputeOptions {
  std::optional<absl::Duration> ttl;  // Of the value this caller fills.
  std::optional<absl::Duration> wait_timeout;  // Waiting for a peer's compute.
  std::optional<absl::Duration> lease_ttl;     // Lock expiry if corrald dies.
  bool allow_stale = false;
  // The deadline of the whole exchange: the wait for a peer's value *and*
  // this caller's compute when it gets the lease. Set it above
  // wait_timeout + your compute time. Unset: ClientOptions::default_timeout.
  std::optional<absl::Duration> timeout;
  std::string worker_id;  // Empty: ClientOptions::worker_id.
  // false: ask corrald even if the near cache holds the key.
  bool near_cache = true;
  // Concurrent GetOrComputes of one key (with the same allow_stale) through
  // this Client share one server call, and compute runs once; each caller
  // gets its value or its error (the others' compute functions never run).
  // A caller whose own timeout passes while waiting gets DEADLINE_EXCEEDED
  // without ending the others' call. false: this call goes alone.
  bool single_flight = true;
};

// Produces the value when this caller holds the lease. It runs on the
// calling thread, at most once per GetOrCompute. An error is reported to the
// server as an upstream failure (it counts against the breaker, and current
// waiters receive UNAVAILABLE/peer-compute-failed) and returned unchanged.
// An exception is reported the same way and then rethrown to the caller.
using ComputeFn = absl::AnyInvocable<absl::StatusOr<std::string>()>;

class Client {
 public:
  // `target` is a gRPC target, e.g. "127.0.0.1:50051" or "dns:///corral:50051".
  explicit Client(std::string target, ClientOptions options = {});
  // Over an existing channel (in-process servers in tests, custom channels).
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options = {});

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The cached value; {found: false} on a miss.
  absl::StatusOr<GetResult> Get(absl::string_view ns, absl::string_view key,
                                const CallOptions& call = {});
  absl::StatusOr<SetResult> Set(absl::string_view ns, absl::string_view key,
                                absl::string_view value,
                                const SetOptions& set = {},
                                const CallOptions& call = {});
  absl::StatusOr<InvalidateResult> Invalidate(absl::string_view ns,
                                              absl::string_view key,
                                              const CallOptions& call = {});

  // Takes the key's lock (the one a GetOrCompute miss takes), waiting up to
  // options.wait_timeout server-side. Not getting it in time is
  // {acquired: false}, not an error. The call's deadline is stretched to
  // wait_timeout + default_timeout when needed, so that a long wait does not
  // end as DEADLINE_EXCEEDED.
  absl::StatusOr<AcquireLockResult> AcquireLock(
      absl::string_view ns, absl::string_view key,
      const AcquireLockOptions& options = {}, const CallOptions& call = {});
  // The same with the options in order (ttl, wait_timeout, owner). Kept for
  // existing callers; two positional durations are easy to swap, so new code
  // passes AcquireLockOptions.
  absl::StatusOr<AcquireLockResult> AcquireLock(
      absl::string_view ns, absl::string_view key,
      std::optional<absl::Duration> ttl,
      std::optional<absl::Duration> wait_timeout, absl::string_view owner = "",
      const CallOptions& call = {});
  absl::StatusOr<RenewLockResult> RenewLock(absl::string_view ns,
                                            absl::string_view key,
                                            absl::string_view token,
                                            std::optional<absl::Duration> ttl,
                                            const CallOptions& call = {});
  // `outcome` feeds the namespace's circuit breaker.
  absl::StatusOr<ReleaseLockResult> ReleaseLock(
      absl::string_view ns, absl::string_view key, absl::string_view token,
      Outcome outcome = Outcome::kUnspecified, const CallOptions& call = {});

  absl::StatusOr<BreakerInfo> GetBreaker(absl::string_view ns,
                                         const CallOptions& call = {});

  // grpc.health.v1.Health/Check; "" asks about the server as a whole.
  absl::StatusOr<HealthStatus> CheckHealth(absl::string_view service = "",
                                           const CallOptions& call = {});

  // The GetOrCompute exchange (docs/ARCHITECTURE.md, section 2): a hit or
  // a peer's fill is returned as is; when this caller is handed the lease,
  // `compute` runs and its value is filled and returned (even if the server
  // did not store it: see GetOrComputeResult::stored). For a refresh lease
  // whose compute fails the current value is returned, with the error in
  // `refresh_error`. Transport failures are retried only while compute has not
  // run.
  absl::StatusOr<GetOrComputeResult> GetOrCompute(
      absl::string_view ns, absl::string_view key, ComputeFn compute,
      const GetOrComputeOptions& options = {});

  const std::string& target() const { return target_; }
  const ClientOptions& options() const { return options_; }

  // Waits up to `timeout` for the near cache's stream to start (false: not
  // started, or the near cache is off). Nothing needs it: until then calls
  // simply go to corrald.
  bool WaitNearCacheReady(absl::Duration timeout) const;
  ClientStats stats() const;

 private:
  absl::Time DeadlineFor(const std::optional<absl::Duration>& timeout) const;
  // GetOrCompute without the near cache and single flight: a Get, then the
  // stream if the Get did not answer.
  absl::StatusOr<GetOrComputeResult> GetOrComputeRemote(
      absl::string_view ns, absl::string_view key, ComputeFn& compute,
      const GetOrComputeOptions& options, absl::Time deadline,
      const std::function<void(const GetOrComputeResult&)>& share_current);
  absl::StatusOr<corral::v1::GetResponse> GetRemote(absl::string_view ns,
                                                    absl::string_view key,
                                                    bool use_near_cache,
                                                    bool draw_early_refresh,
                                                    absl::Time deadline);

  std::string target_;
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<corral::v1::Corral::Stub> stub_;
  // The near cache's stream and the Gets it may keep: one replica (channel_
  // unless that one spreads calls, see ClientOptions::load_balancing).
  std::shared_ptr<grpc::Channel> near_channel_;
  std::unique_ptr<corral::v1::Corral::Stub> near_stub_;
  std::unique_ptr<internal::NearCache> near_;  // Null when off.
  std::unique_ptr<internal::FlightGroup> flights_;
  mutable std::atomic<uint64_t> get_rpcs_{0};
  mutable std::atomic<uint64_t> streams_{0};
  mutable std::atomic<uint64_t> shared_calls_{0};
};

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_CORRAL_CLIENT_H_
