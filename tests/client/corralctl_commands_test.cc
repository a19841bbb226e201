// corralctl's commands against a scripted in-process server.
#include <sstream>

#include "client/corralctl/commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_corral.h"
#include "tests/support/status_matchers.h"

namespace corral::ctl {
namespace {

using ::corral::testing::Fail;
using ::corral::testing::FakeCorralServer;
using ::corral::testing::GetOrComputeStream;
using ::corral::testing::Recorder;
using ::corral::v1::GetOrComputeRequest;
using ::corral::v1::GetOrComputeResponse;
using ::testing::HasSubstr;

class CommandsTest : public ::testing::Test {
 protected:
  // Parses `args` (with --target of the fake) and runs them.
  int Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), "--target=" + server_.target());
    absl::StatusOr<Invocation> inv = ParseArgs(args, std::nullopt);
    EXPECT_TRUE(inv.ok()) << inv.status();
    if (!inv.ok()) return kExitUsage;
    client::ClientOptions options;
    options.retry.initial_backoff = absl::Milliseconds(1);
    options.default_timeout = inv->timeout;
    options.token = inv->token;
    client::Client client(inv->target, options);
    std::istringstream in(stdin_text);
    out_.str("");
    err_.str("");
    Io io{in, out_, err_,
          [this](const std::string& cmd) {
            shell_commands_.push_back(cmd);
            return shell_result_;
          },
          out_is_terminal_};
    return RunCommand(*inv, client, io);
  }

  FakeCorralServer server_;
  testing::FakeCorral& fake_ = server_.service();
  std::ostringstream out_;
  std::ostringstream err_;
  std::vector<std::string> shell_commands_;
  absl::StatusOr<std::string> shell_result_ = std::string("computed\n");
  bool out_is_terminal_ = false;
};

TEST_F(CommandsTest, GetPrintsRawValueOrExitsOne) {
  fake_.get = [](grpc::ServerContext*, const v1::GetRequest& req,
                 v1::GetResponse* resp) {
    if (req.key() == "k") {
      resp->set_found(true);
      resp->mutable_value()->set_value(std::string("a\0b", 3));
      resp->mutable_value()->set_source(v1::SOURCE_CACHE);
    }
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"get", "ns", "k", "--verbose"}), kExitOk);
  EXPECT_EQ(out_.str(), std::string("a\0b", 3));
  EXPECT_THAT(err_.str(), HasSubstr("source=cache"));
  EXPECT_EQ(Run({"get", "ns", "missing"}), kExitNegative);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("not found"));
  // On a terminal the value ends its line; piped (above) it is exact.
  out_is_terminal_ = true;
  EXPECT_EQ(Run({"get", "ns", "k"}), kExitOk);
  EXPECT_EQ(out_.str(), std::string("a\0b\n", 4));
}

TEST_F(CommandsTest, SetReadsStdinForDash) {
  Recorder<v1::SetRequest> seen;
  fake_.set = [&](grpc::ServerContext*, const v1::SetRequest& req,
                  v1::SetResponse* resp) {
    seen.Add(req);
    resp->set_stored(req.value() != "reject");
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"set", "ns", "k", "-", "--ttl", "1m"},
                std::string("from\0stdin", 10)),
            kExitOk);
  EXPECT_EQ(out_.str(), "stored\n");
  EXPECT_EQ(seen.Get()[0].value(), std::string("from\0stdin", 10));
  EXPECT_EQ(seen.Get()[0].ttl().seconds(), 60);
  EXPECT_EQ(Run({"set", "ns", "k", "reject"}), kExitNegative);
  EXPECT_THAT(err_.str(), HasSubstr("not stored"));
}

TEST_F(CommandsTest, RpcFailureIsExitThreeWithCodeAndReason) {
  fake_.invalidate = [](grpc::ServerContext* ctx, const v1::InvalidateRequest&,
                        v1::InvalidateResponse*) {
    return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "redis is down",
                "store-unavailable");
  };
  EXPECT_EQ(Run({"invalidate", "ns", "k"}), kExitRpcFailed);
  EXPECT_THAT(err_.str(), HasSubstr("UNAVAILABLE: redis is down"));
  EXPECT_THAT(err_.str(), HasSubstr("corral-reason: store-unavailable"));
}

TEST_F(CommandsTest, LockCommands) {
  fake_.acquire_lock = [](grpc::ServerContext*,
                          const v1::AcquireLockRequest& req,
                          v1::AcquireLockResponse* resp) {
    resp->set_acquired(req.key() == "free");
    if (resp->acquired()) {
      resp->set_token("T1");
      resp->set_fencing_token(5);
      resp->mutable_expires_at()->set_seconds(1700000000);
    }
    return grpc::Status::OK;
  };
  fake_.renew_lock = [](grpc::ServerContext*, const v1::RenewLockRequest& req,
                        v1::RenewLockResponse* resp) {
    resp->set_renewed(req.token() == "T1");
    resp->mutable_expires_at()->set_seconds(1700000030);
    return grpc::Status::OK;
  };
  fake_.release_lock = [](grpc::ServerContext*,
                          const v1::ReleaseLockRequest& req,
                          v1::ReleaseLockResponse* resp) {
    resp->set_released(req.token() == "T1" &&
                       req.outcome() == v1::OUTCOME_SUCCESS);
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"lock", "acquire", "ns", "free"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("acquired token=T1 fencing_token=5 "
                                    "expires_at=2023-11-14T22:13:20+00:00"));
  EXPECT_EQ(Run({"lock", "acquire", "ns", "busy", "--wait", "0s"}),
            kExitNegative);
  EXPECT_THAT(err_.str(), HasSubstr("not acquired"));
  EXPECT_EQ(Run({"lock", "renew", "ns", "free", "T1"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("renewed expires_at="));
  EXPECT_EQ(Run({"lock", "renew", "ns", "free", "T2"}), kExitNegative);
  EXPECT_EQ(
      Run({"lock", "release", "ns", "free", "T1", "--outcome", "success"}),
      kExitOk);
  EXPECT_EQ(out_.str(), "released\n");
  EXPECT_EQ(Run({"lock", "release", "ns", "free", "T1"}), kExitNegative);
}

TEST_F(CommandsTest, HealthAndBreaker) {
  EXPECT_EQ(Run({"health"}), kExitOk);
  EXPECT_EQ(out_.str(), "SERVING\n");
  server_.SetServing(false);
  EXPECT_EQ(Run({"health"}), kExitNegative);
  EXPECT_EQ(out_.str(), "NOT_SERVING\n");

  fake_.get_breaker = [](grpc::ServerContext*, const v1::GetBreakerRequest&,
                         v1::GetBreakerResponse* resp) {
    resp->set_namespace_("plant_id");
    resp->set_state(v1::BREAKER_STATE_HALF_OPEN);
    resp->set_recent_failures(5);
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"breaker", "plant_id"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("namespace=plant_id state=HALF_OPEN"));
  EXPECT_THAT(out_.str(), HasSubstr("recent_failures=5"));
}

// The leaseholder side of GetOrCompute; `mode` decides the lease kind.
void ServeLease(GetOrComputeStream* s, Recorder<GetOrComputeRequest>& seen,
                v1::LeaseMode mode = v1::LEASE_MODE_LOCKED) {
  GetOrComputeRequest req;
  s->Read(&req);
  GetOrComputeResponse lease;
  lease.mutable_lease()->set_fencing_token(3);
  lease.mutable_lease()->set_mode(mode);
  lease.mutable_lease()->set_current_value("old");
  s->Write(lease);
  s->Read(&req);
  seen.Add(req);
  if (req.has_fill()) {
    GetOrComputeResponse filled;
    filled.mutable_filled()->set_stored(true);
    s->Write(filled);
  }
}

TEST_F(CommandsTest, GetOrComputeRunsExecOnLease) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    ServeLease(s, seen);
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"get-or-compute", "ns", "k", "--exec", "echo computed",
                 "--verbose"}),
            kExitOk);
  EXPECT_EQ(out_.str(), "computed\n");
  EXPECT_THAT(shell_commands_, ::testing::ElementsAre("echo computed"));
  EXPECT_THAT(err_.str(), HasSubstr("source=computed"));
  EXPECT_THAT(err_.str(), HasSubstr("lease_mode=locked"));
  EXPECT_EQ(seen.Get()[0].fill().value(), "computed\n");
}

TEST_F(CommandsTest, GetOrComputeExecFailureAbandonsAndExitsFour) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    ServeLease(s, seen);
    return grpc::Status::OK;
  };
  shell_result_ = absl::UnknownError("command exited with status 7");
  EXPECT_EQ(Run({"get-or-compute", "ns", "k", "--exec", "exit 7"}),
            kExitComputeFailed);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("status 7"));
  ASSERT_TRUE(seen.Get()[0].has_abandon());
  EXPECT_TRUE(seen.Get()[0].abandon().upstream_failure());
}

TEST_F(CommandsTest, GetOrComputeRefreshFailurePrintsCurrentValue) {
  Recorder<GetOrComputeRequest> seen;
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    ServeLease(s, seen, v1::LEASE_MODE_REFRESH);
    return grpc::Status::OK;
  };
  shell_result_ = absl::UnknownError("command exited with status 1");
  EXPECT_EQ(Run({"get-or-compute", "ns", "k", "--exec", "false"}), kExitOk);
  EXPECT_EQ(out_.str(), "old");
  EXPECT_THAT(err_.str(), HasSubstr("refresh failed"));
}

TEST_F(CommandsTest, GetOrComputeHitDoesNotRunExec) {
  fake_.get_or_compute = [&](grpc::ServerContext*, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    GetOrComputeResponse value;
    value.mutable_value()->set_value("cached");
    value.mutable_value()->set_source(v1::SOURCE_CACHE);
    s->Write(value);
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"get-or-compute", "ns", "k", "--exec", "echo no"}), kExitOk);
  EXPECT_EQ(out_.str(), "cached");
  EXPECT_TRUE(shell_commands_.empty());
}

TEST_F(CommandsTest, GetOrComputeServerErrorIsExitThree) {
  fake_.get_or_compute = [&](grpc::ServerContext* ctx, GetOrComputeStream* s) {
    GetOrComputeRequest req;
    s->Read(&req);
    return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "breaker open",
                "breaker-open", 60000);
  };
  EXPECT_EQ(Run({"get-or-compute", "ns", "k", "--exec", "echo no"}),
            kExitRpcFailed);
  EXPECT_THAT(err_.str(), HasSubstr("corral-reason: breaker-open"));
  EXPECT_THAT(err_.str(), HasSubstr("retry after 1m"));
  EXPECT_TRUE(shell_commands_.empty());
}

TEST_F(CommandsTest, HashTokenPrintsTheSha256OfStdin) {
  // SHA-256("abc"); the newline `echo` adds is not part of the token.
  EXPECT_EQ(Run({"hash-token"}, "abc\n"), kExitOk);
  EXPECT_EQ(
      out_.str(),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n");
  EXPECT_EQ(Run({"hash-token"}, "abc"), kExitOk);
  EXPECT_EQ(
      out_.str(),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n");
  EXPECT_EQ(Run({"hash-token"}, "\n"), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("empty"));
}

TEST_F(CommandsTest, TokenTravelsAsBearerMetadataOnEveryCall) {
  std::vector<std::string> seen;
  fake_.get = [&](grpc::ServerContext* ctx, const v1::GetRequest&,
                  v1::GetResponse*) {
    auto it = ctx->client_metadata().find("authorization");
    seen.push_back(it == ctx->client_metadata().end()
                       ? "(none)"
                       : std::string(it->second.data(), it->second.size()));
    return grpc::Status::OK;
  };
  EXPECT_EQ(Run({"get", "ns", "k", "--token", "s3cret"}), kExitNegative);
  EXPECT_EQ(Run({"get", "ns", "k"}), kExitNegative);
  EXPECT_THAT(seen, ::testing::ElementsAre("Bearer s3cret", "(none)"));
}

}  // namespace
}  // namespace corral::ctl
