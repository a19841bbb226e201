// The client library against a scripted in-process server over real gRPC.
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "client/cpp/corral_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_corral.h"
#include "tests/support/free_port.h"
#include "tests/support/poll.h"
#include "tests/support/status_matchers.h"

namespace corral::client {
namespace {

using ::corral::testing::Fail;
using ::corral::testing::FakeCorralServer;
using ::corral::testing::GetOrComputeStream;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::Recorder;
using ::corral::testing::StatusIs;
using ::corral::v1::GetOrComputeRequest;
using ::corral::v1::GetOrComputeResponse;
using ::testing::HasSubstr;
using ::testing::Optional;

ClientOptions FastRetries() {
  ClientOptions options;
  options.default_timeout = absl::Seconds(10);
  options.retry.initial_backoff = absl::Milliseconds(1);
  options.retry.max_backoff = absl::Milliseconds(5);
  options.worker_id = "test-worker";
  return options;
}

class ClientTest : public ::testing::Test {
 protected:
  FakeCorralServer server_;
  testing::FakeCorral& fake_ = server_.service();
  Client client_{server_.target(), FastRetries()};
};

TEST_F(ClientTest, GetFoundAndMissing) {
  fake_.get = [](grpc::ServerContext*, const v1::GetRequest& req,
                 v1::GetResponse* resp) {
    if (req.key() == std::string("k\0bin", 5)) {
      resp->set_found(true);
      resp->mutable_value()->set_value(std::string("v\0\xff", 3));
      resp->mutable_value()->set_source(v1::SOURCE_CACHE);
      resp->mutable_value()->mutable_age()->set_seconds(3);
      resp->mutable_value()->mutable_ttl_remaining()->set_nanos(500000000);
    }
    return grpc::Status::OK;
  };
  auto hit = client_.Get("ns", std::string("k\0bin", 5));
  ASSERT_OK(hit);
  EXPECT_TRUE(hit->found);
  EXPECT_EQ(hit->value.value, std::string("v\0\xff", 3));
  EXPECT_EQ(hit->value.source, Source::kCache);
  EXPECT_EQ(hit->value.age, absl::Seconds(3));
  EXPECT_EQ(hit->value.ttl_remaining, absl::Milliseconds(500));
  auto miss = client_.Get("ns", "other");
  ASSERT_OK(miss);
  EXPECT_FALSE(miss->found);
}

TEST_F(ClientTest, SetSendsOnlyWhatWasGiven) {
  Recorder<v1::SetRequest> seen;
  fake_.set = [&](grpc::ServerContext*, const v1::SetRequest& req,
                  v1::SetResponse* resp) {
    seen.Add(req);
    resp->set_stored(!req.lock_token().empty());
    return grpc::Status::OK;
  };
  auto plain = client_.Set("ns", "k", "v");
  ASSERT_OK(plain);
  EXPECT_FALSE(plain->stored);
  SetOptions fenced;
  fenced.ttl = absl::Milliseconds(1500);
  fenced.lock_token = "tok";
  fenced.release_lock = true;
  auto with_lock = client_.Set("ns", "k", "v2", fenced);
  ASSERT_OK(with_lock);
  EXPECT_TRUE(with_lock->stored);

  auto requests = seen.Get();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_FALSE(requests[0].has_ttl());  // Unset: namespace default.
  EXPECT_EQ(requests[1].ttl().seconds(), 1);
  EXPECT_EQ(requests[1].ttl().nanos(), 500000000);
  EXPECT_EQ(requests[1].lock_token(), "tok");
  EXPECT_TRUE(requests[1].release_lock());
}

TEST_F(ClientTest, LockCalls) {
  Recorder<v1::AcquireLockRequest> acquires;
  fake_.acquire_lock = [&](grpc::ServerContext*,
                           const v1::AcquireLockRequest& req,
                           v1::AcquireLockResponse* resp) {
    acquires.Add(req);
    resp->set_acquired(true);
    resp->set_token("tok-1");
    resp->set_fencing_token(42);
    resp->mutable_expires_at()->set_seconds(2000000000);
    resp->mutable_waited()->set_nanos(2000000);
    return grpc::Status::OK;
  };
  fake_.renew_lock = [](grpc::ServerContext*, const v1::RenewLockRequest& req,
                        v1::RenewLockResponse* resp) {
    resp->set_renewed(req.token() == "tok-1");
    return grpc::Status::OK;
  };
  Recorder<v1::ReleaseLockRequest> releases;
  fake_.release_lock = [&](grpc::ServerContext*,
                           const v1::ReleaseLockRequest& req,
                           v1::ReleaseLockResponse* resp) {
    releases.Add(req);
    resp->set_released(true);
    return grpc::Status::OK;
  };

  auto acquired =
      client_.AcquireLock("ns", "k", absl::Seconds(30), absl::ZeroDuration());
  ASSERT_OK(acquired);
  EXPECT_TRUE(acquired->acquired);
  EXPECT_EQ(acquired->token, "tok-1");
  EXPECT_EQ(acquired->fencing_token, 42u);
  EXPECT_EQ(acquired->expires_at, absl::FromUnixSeconds(2000000000));
  EXPECT_EQ(acquired->waited, absl::Milliseconds(2));
  ASSERT_EQ(acquires.Get().size(), 1u);
  EXPECT_TRUE(acquires.Get()[0].has_wait_timeout());  // Zero is explicit.
  EXPECT_EQ(acquires.Get()[0].owner(), "test-worker");

  auto renewed = client_.RenewLock("ns", "k", "tok-1", std::nullopt);
  ASSERT_OK(renewed);
  EXPECT_TRUE(renewed->renewed);
  auto not_renewed = client_.RenewLock("ns", "k", "stale", std::nullopt);
  ASSERT_OK(not_renewed);
  EXPECT_FALSE(not_renewed->renewed);

  auto released = client_.ReleaseLock("ns", "k", "tok-1", Outcome::kFailure);
  ASSERT_OK(released);
  EXPECT_TRUE(released->released);
  EXPECT_EQ(releases.Get()[0].outcome(), v1::OUTCOME_FAILURE);
}

TEST_F(ClientTest, ASpentComputeBudgetSaysWhyAndWhenToComeBack) {
  fake_.get = [](grpc::ServerContext* ctx, const v1::GetRequest&,
                 v1::GetResponse*) {
    return Fail(ctx, grpc::StatusCode::RESOURCE_EXHAUSTED,
                "the namespace's compute budget is spent", "compute-budget",
                250);
  };
  auto result = client_.Get("ns", "k");
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(ReasonOf(result.status()), kReasonComputeBudget);
  EXPECT_THAT(RetryAfterOf(result.status()), Optional(absl::Milliseconds(250)));
  EXPECT_EQ(fake_.calls("Get"), 1);  // Not retried: the budget says wait.
}

TEST_F(ClientTest, ServerErrorsKeepReasonAndAreNotRetried) {
  fake_.get = [](grpc::ServerContext* ctx, const v1::GetRequest&,
                 v1::GetResponse*) {
    return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "breaker is open",
                "breaker-open", 1500);
  };
  auto result = client_.Get("ns", "k");
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReasonOf(result.status()), "breaker-open");
  EXPECT_THAT(RetryAfterOf(result.status()),
              Optional(absl::Milliseconds(1500)));
  EXPECT_EQ(result.status().message(), "breaker is open");
  EXPECT_EQ(fake_.calls("Get"), 1);
}

TEST_F(ClientTest, TransportUnavailableIsRetried) {
  std::atomic<int> calls{0};
  fake_.invalidate = [&](grpc::ServerContext*, const v1::InvalidateRequest&,
                         v1::InvalidateResponse* resp) {
    if (++calls <= 2) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
    }
    resp->set_existed(true);
    return grpc::Status::OK;
  };
  auto result = client_.Invalidate("ns", "k");
  ASSERT_OK(result);
  EXPECT_TRUE(result->existed);
  EXPECT_EQ(fake_.calls("Invalidate"), 3);
}

TEST_F(ClientTest, RetriesStopAtMaxAttempts) {
  fake_.get_breaker = [](grpc::ServerContext*, const v1::GetBreakerRequest&,
                         v1::GetBreakerResponse*) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  };
  EXPECT_THAT(client_.GetBreaker("ns"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(fake_.calls("GetBreaker"), FastRetries().retry.max_attempts);
}

TEST_F(ClientTest, GetBreaker) {
  fake_.get_breaker = [](grpc::ServerContext*, const v1::GetBreakerRequest& r,
                         v1::GetBreakerResponse* resp) {
    resp->set_namespace_(r.namespace_());
    resp->set_state(v1::BREAKER_STATE_OPEN);
    resp->mutable_since()->set_seconds(100);
    resp->mutable_retry_after()->set_seconds(60);
    resp->set_recent_failures(5);
    resp->set_recent_successes(1);
    return grpc::Status::OK;
  };
  auto info = client_.GetBreaker("plant_id");
  ASSERT_OK(info);
  EXPECT_EQ(info->ns, "plant_id");
  EXPECT_EQ(info->state, BreakerState::kOpen);
  EXPECT_EQ(info->since, absl::FromUnixSeconds(100));
  EXPECT_EQ(info->retry_after, absl::Seconds(60));
  EXPECT_EQ(info->recent_failures, 5u);
  EXPECT_EQ(info->recent_successes, 1u);
}

TEST_F(ClientTest, DeadlineIsTheCallOptionOrTheDefault) {
  fake_.get = [](grpc::ServerContext* ctx, const v1::GetRequest&,
                 v1::GetResponse*) {
    // Until the client gives up (bounded: a client that never did would
    // fail the test, not hang it).
    testing::PollUntil([ctx] { return ctx->IsCancelled(); }, absl::Seconds(10));
    return grpc::Status::CANCELLED;
  };
  CallOptions call;
  call.timeout = absl::Milliseconds(100);
  const absl::Time start = absl::Now();
  EXPECT_THAT(client_.Get("ns", "k", call),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(ClientTest, HealthCheck) {
  EXPECT_THAT(client_.CheckHealth(), IsOkAndHolds(HealthStatus::kServing));
  server_.SetServing(false);
  EXPECT_THAT(client_.CheckHealth(), IsOkAndHolds(HealthStatus::kNotServing));
  EXPECT_THAT(client_.CheckHealth("no.such.Service"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(ClientConnectTest, UnreachableServerIsUnavailableAfterRetries) {
  ClientOptions options = FastRetries();
  options.retry.max_attempts = 3;
  testing::ClosedPort
      nobody;  // Refuses connections; no other test can take it.
  Client client(absl::StrCat("127.0.0.1:", nobody.port()), options);
  auto result = client.Get("ns", "k");
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReasonOf(result.status()), "");
}

// --- GetOrCompute ----------------------------------------------------------

GetOrComputeResponse LeaseResponse(uint64_t fencing, v1::LeaseMode mode,
                                   const std::string& current = "") {
  GetOrComputeResponse r;
  r.mutable_lease()->set_fencing_token(fencing);
  r.mutable_lease()->set_mode(mode);
  r.mutable_lease()->set_current_value(current);
  return r;
}

// The leaseholder half of the exchange, recording what the client sent.
grpc::Status ServeLease(GetOrComputeStream* stream,
                        Recorder<GetOrComputeRequest>& seen,
                        const GetOrComputeResponse& lease, bool stored = true) {
  GetOrComputeRequest req;
  if (!stream->Read(&req)) return grpc::Status::OK;
  seen.Add(req);
  stream->Write(lease);
  if (!stream->Read(&req)) return grpc::Status::OK;
  seen.Add(req);
  if (req.has_fill()) {
    GetOrComputeResponse filled;
    filled.mutable_filled()->set_stored(stored);
    filled.mutable_filled()->set_fencing_token(lease.lease().fencing_token());
    if (!stored) filled.mutable_filled()->set_reason("lease-revoked");
    stream->Write(filled);
  }
  return grpc::Status::OK;
}

TEST_F(ClientTest, GetOrComputeHitDoesNotCompute) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    seen.Add(req);
    GetOrComputeResponse value;
    value.mutable_value()->set_value("cached");
    value.mutable_value()->set_source(v1::SOURCE_PEER_FILL);
    value.mutable_value()->mutable_age()->set_seconds(2);
    s->Write(value);
    return grpc::Status::OK;
  };
  int computes = 0;
  auto result = client_.GetOrCompute("ns", "k", [&] {
    ++computes;
    return absl::StatusOr<std::string>("fresh");
  });
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "cached");
  EXPECT_EQ(result->source, Source::kPeerFill);
  EXPECT_EQ(result->age, absl::Seconds(2));
  EXPECT_FALSE(result->computed);
  EXPECT_EQ(result->lease_mode, LeaseMode::kNone);
  EXPECT_EQ(computes, 0);

  // Unset options stay unset on the wire: the namespace defaults apply.
  const std::vector<GetOrComputeRequest> requests = seen.Get();
  ASSERT_EQ(requests.size(), 1u);
  const v1::Lookup& lookup = requests[0].lookup();
  EXPECT_EQ(lookup.namespace_(), "ns");
  EXPECT_EQ(lookup.key(), "k");
  EXPECT_FALSE(lookup.has_ttl());
  EXPECT_FALSE(lookup.has_wait_timeout());
  EXPECT_FALSE(lookup.has_lease_ttl());
  EXPECT_FALSE(lookup.allow_stale());
  EXPECT_EQ(lookup.worker_id(), "test-worker");
}

TEST_F(ClientTest, GetOrComputeLeaseComputesAndFills) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen, LeaseResponse(7, v1::LEASE_MODE_LOCKED));
  };
  GetOrComputeOptions options;
  options.ttl = absl::Seconds(10);
  options.wait_timeout = absl::ZeroDuration();
  options.lease_ttl = absl::Seconds(5);
  options.allow_stale = true;
  options.worker_id = "w2";
  int computes = 0;
  auto result = client_.GetOrCompute(
      "ns", "k",
      [&] {
        ++computes;
        return absl::StatusOr<std::string>("fresh");
      },
      options);
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "fresh");
  EXPECT_EQ(result->source, Source::kComputed);
  EXPECT_TRUE(result->computed);
  EXPECT_TRUE(result->stored);
  EXPECT_EQ(result->lease_mode, LeaseMode::kLocked);
  EXPECT_EQ(result->fencing_token, 7u);
  EXPECT_EQ(result->attempts, 1);
  EXPECT_EQ(computes, 1);

  auto requests = seen.Get();
  ASSERT_EQ(requests.size(), 2u);
  const v1::Lookup& lookup = requests[0].lookup();
  EXPECT_EQ(lookup.ttl().seconds(), 10);
  EXPECT_TRUE(lookup.has_wait_timeout());
  EXPECT_EQ(lookup.wait_timeout().seconds(), 0);
  EXPECT_EQ(lookup.lease_ttl().seconds(), 5);
  EXPECT_TRUE(lookup.allow_stale());
  EXPECT_EQ(lookup.worker_id(), "w2");
  ASSERT_TRUE(requests[1].has_fill());
  EXPECT_EQ(requests[1].fill().value(), "fresh");
  EXPECT_EQ(requests[1].fill().ttl().seconds(), 10);
}

TEST_F(ClientTest, GetOrComputeReportsNotStored) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen,
                      LeaseResponse(3, v1::LEASE_MODE_UNLOCKED_TIMEOUT),
                      /*stored=*/false);
  };
  auto result = client_.GetOrCompute(
      "ns", "k", [] { return absl::StatusOr<std::string>("late"); });
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "late");
  EXPECT_FALSE(result->stored);
  EXPECT_EQ(result->not_stored_reason, "lease-revoked");
  EXPECT_EQ(result->lease_mode, LeaseMode::kUnlockedTimeout);
}

TEST_F(ClientTest, GetOrComputeComputeErrorAbandonsAsUpstreamFailure) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen, LeaseResponse(1, v1::LEASE_MODE_LOCKED));
  };
  auto result = client_.GetOrCompute("ns", "k", [] {
    return absl::StatusOr<std::string>(absl::ResourceExhaustedError("quota"));
  });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(result.status().message(), "quota");
  auto requests = seen.Get();
  ASSERT_EQ(requests.size(), 2u);
  ASSERT_TRUE(requests[1].has_abandon());
  EXPECT_TRUE(requests[1].abandon().upstream_failure());
  EXPECT_THAT(requests[1].abandon().reason(), HasSubstr("quota"));
  EXPECT_EQ(fake_.calls("GetOrCompute"), 1);
}

TEST_F(ClientTest, GetOrComputeExceptionAbandonsThenRethrows) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen, LeaseResponse(1, v1::LEASE_MODE_LOCKED));
  };
  EXPECT_THROW(client_
                   .GetOrCompute("ns", "k",
                                 []() -> absl::StatusOr<std::string> {
                                   throw std::runtime_error("upstream 500");
                                 })
                   .IgnoreError(),
               std::runtime_error);
  auto requests = seen.Get();
  ASSERT_EQ(requests.size(), 2u);
  ASSERT_TRUE(requests[1].has_abandon());
  EXPECT_TRUE(requests[1].abandon().upstream_failure());
}

TEST_F(ClientTest, GetOrComputeRefreshFailureServesCurrentValue) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen,
                      LeaseResponse(9, v1::LEASE_MODE_REFRESH, "old value"));
  };
  auto result = client_.GetOrCompute("ns", "k", [] {
    return absl::StatusOr<std::string>(absl::UnavailableError("api down"));
  });
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "old value");
  EXPECT_EQ(result->source, Source::kStale);
  EXPECT_TRUE(result->stale);
  EXPECT_TRUE(result->computed);
  EXPECT_EQ(result->lease_mode, LeaseMode::kRefresh);
  EXPECT_THAT(result->refresh_error, StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_EQ(seen.Get().size(), 2u);
  EXPECT_TRUE(seen.Get()[1].abandon().upstream_failure());
}

TEST_F(ClientTest, GetOrComputeRefreshSuccessFills) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    return ServeLease(s, seen,
                      LeaseResponse(9, v1::LEASE_MODE_REFRESH, "old value"));
  };
  auto result = client_.GetOrCompute(
      "ns", "k", [] { return absl::StatusOr<std::string>("new value"); });
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "new value");
  EXPECT_TRUE(result->stored);
  EXPECT_TRUE(result->refresh_error.ok());
}

TEST_F(ClientTest, GetOrComputeRetriesTransportFailureBeforeCompute) {
  std::atomic<int> streams{0};
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    if (++streams == 1) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
    }
    return ServeLease(s, seen, LeaseResponse(2, v1::LEASE_MODE_LOCKED));
  };
  int computes = 0;
  auto result = client_.GetOrCompute("ns", "k", [&] {
    ++computes;
    return absl::StatusOr<std::string>("v");
  });
  ASSERT_OK(result);
  EXPECT_EQ(result->attempts, 2);
  EXPECT_EQ(computes, 1);
  EXPECT_EQ(fake_.calls("GetOrCompute"), 2);
}

TEST_F(ClientTest, GetOrComputeDoesNotRetryCorralReasons) {
  fake_.get_or_compute = [&](grpc::ServerContext* ctx, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "peer failed",
                "peer-compute-failed");
  };
  int computes = 0;
  auto result = client_.GetOrCompute("ns", "k", [&] {
    ++computes;
    return absl::StatusOr<std::string>("v");
  });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReasonOf(result.status()), "peer-compute-failed");
  EXPECT_EQ(computes, 0);
  EXPECT_EQ(fake_.calls("GetOrCompute"), 1);
}

TEST_F(ClientTest, GetOrComputeNeverRetriesAfterCompute) {
  // The stream breaks after the Fill: the value is returned, not stored,
  // and the upstream is not called again.
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    s->Write(LeaseResponse(4, v1::LEASE_MODE_LOCKED));
    s->Read(&req);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
  };
  int computes = 0;
  auto result = client_.GetOrCompute("ns", "k", [&] {
    ++computes;
    return absl::StatusOr<std::string>("v");
  });
  ASSERT_OK(result);
  EXPECT_EQ(result->value, "v");
  EXPECT_FALSE(result->stored);
  EXPECT_THAT(result->not_stored_reason, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(computes, 1);
  EXPECT_EQ(fake_.calls("GetOrCompute"), 1);

  // Same when compute failed: its error, one call, one compute.
  computes = 0;
  auto failed = client_.GetOrCompute("ns", "k2", [&] {
    ++computes;
    return absl::StatusOr<std::string>(absl::InternalError("api"));
  });
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(computes, 1);
  EXPECT_EQ(fake_.calls("GetOrCompute"), 2);
}

TEST_F(ClientTest, GetOrComputeServerEndingWithoutReplyIsAnError) {
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    return grpc::Status::OK;
  };
  EXPECT_THAT(client_.GetOrCompute(
                  "ns", "k", [] { return absl::StatusOr<std::string>("v"); }),
              StatusIs(absl::StatusCode::kInternal));
}

TEST_F(ClientTest, GetOrComputeDeadlineCapsTheWait) {
  fake_.get_or_compute = [&](grpc::ServerContext* ctx, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    // Until the client gives up (bounded: a client that never did would
    // fail the test, not hang it).
    testing::PollUntil([ctx] { return ctx->IsCancelled(); }, absl::Seconds(10));
    return grpc::Status::CANCELLED;
  };
  GetOrComputeOptions options;
  options.timeout = absl::Milliseconds(200);
  EXPECT_THAT(
      client_.GetOrCompute(
          "ns", "k", [] { return absl::StatusOr<std::string>("v"); }, options),
      StatusIs(absl::StatusCode::kDeadlineExceeded));
}

}  // namespace
}  // namespace corral::client
