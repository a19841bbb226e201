// Every RPC with malformed or out-of-range fields, through raw generated
// stubs (so anything a foreign client could send can be sent): the
// documented code, a message naming the field, and a server that still
// serves afterwards.
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "corral/v1/corral.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/joining_thread.h"

namespace corral::testing {
namespace {

namespace pb = corral::v1;
using ::testing::HasSubstr;

class BadInputE2E : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    fleet_ = Fleet::Start(1, /*embedded=*/GetParam());
    ASSERT_NE(fleet_, nullptr);
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(
        fleet_->replica(0).target(), grpc::InsecureChannelCredentials(), args);
    stub_ = pb::Corral::NewStub(channel_);
  }
  void TearDown() override {
    // Still healthy and serving after everything.
    pb::SetRequest set;
    set.set_namespace_("ok");
    set.set_key("k");
    set.set_value("v");
    pb::SetResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->Set(&ctx, set, &resp).ok());
    if (fleet_) {
      EXPECT_TRUE(fleet_->replica(0).Running());
    }
  }

  // Runs a unary call and checks its code, reason and message.
  template <typename Req, typename Resp>
  void Expect(grpc::Status (pb::Corral::Stub::*method)(grpc::ClientContext*,
                                                       const Req&, Resp*),
              const Req& request, grpc::StatusCode code,
              const std::string& field) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    Resp resp;
    grpc::Status s = ((*stub_).*method)(&ctx, request, &resp);
    EXPECT_EQ(s.error_code(), code)
        << request.ShortDebugString() << " -> " << s.error_message();
    if (!field.empty()) {
      EXPECT_THAT(s.error_message(), HasSubstr(field))
          << request.ShortDebugString();
    }
    if (code == grpc::INVALID_ARGUMENT) {
      auto trailers = ctx.GetServerTrailingMetadata();
      auto it = trailers.find("corral-reason");
      ASSERT_NE(it, trailers.end()) << request.ShortDebugString();
      EXPECT_EQ(std::string(it->second.data(), it->second.size()),
                "invalid-argument");
    }
  }

  std::unique_ptr<Fleet> fleet_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Corral::Stub> stub_;
};

// A request's namespace and key fields set to each bad value.
template <typename Req>
void ForEachBadKey(
    const std::function<void(const Req&, const std::string&)>& check) {
  auto with = [](std::string ns, std::string key) {
    Req r;
    r.set_namespace_(ns);
    r.set_key(key);
    return r;
  };
  check(with("", "k"), "namespace");
  check(with("has space", "k"), "namespace");
  check(with("slash/no", "k"), "namespace");
  check(with(std::string(129, 'n'), "k"), "namespace");
  check(with("ns", ""), "key");
  check(with("ns", std::string(1025, 'k')), "key");
}

TEST_P(BadInputE2E, CacheRpcs) {
  ForEachBadKey<pb::GetRequest>(
      [&](const pb::GetRequest& r, const std::string& field) {
        Expect(&pb::Corral::Stub::Get, r, grpc::INVALID_ARGUMENT, field);
      });
  ForEachBadKey<pb::InvalidateRequest>(
      [&](const pb::InvalidateRequest& r, const std::string& f) {
        Expect(&pb::Corral::Stub::Invalidate, r, grpc::INVALID_ARGUMENT, f);
      });
  ForEachBadKey<pb::SetRequest>(
      [&](const pb::SetRequest& r, const std::string& f) {
        Expect(&pb::Corral::Stub::Set, r, grpc::INVALID_ARGUMENT, f);
      });
  pb::SetRequest set;
  set.set_namespace_("ns");
  set.set_key("k");
  set.mutable_ttl()->set_seconds(-1);
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "ttl");
  set.mutable_ttl()->set_seconds(0);
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "ttl");
  set.mutable_ttl()->set_seconds(1);
  set.mutable_ttl()->set_nanos(2'000'000'000);
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "ttl");
  set.mutable_ttl()->set_seconds(10LL * 365 * 86400);
  set.mutable_ttl()->set_nanos(0);
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "ttl");
  set.clear_ttl();
  set.set_value(std::string((1 << 20) + 1, 'v'));
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "value");
  set.set_value(std::string(8 << 20, 'v'));  // Beyond the message limit.
  Expect(&pb::Corral::Stub::Set, set, grpc::RESOURCE_EXHAUSTED, "");
  set.set_value("v");
  set.set_release_lock(true);
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "release_lock");
  set.set_lock_token(std::string(300, 't'));
  Expect(&pb::Corral::Stub::Set, set, grpc::INVALID_ARGUMENT, "lock_token");
}

TEST_P(BadInputE2E, LockRpcs) {
  ForEachBadKey<pb::AcquireLockRequest>(
      [&](const pb::AcquireLockRequest& r, const std::string& f) {
        Expect(&pb::Corral::Stub::AcquireLock, r, grpc::INVALID_ARGUMENT, f);
      });
  pb::AcquireLockRequest acquire;
  acquire.set_namespace_("ns");
  acquire.set_key("k");
  acquire.mutable_ttl()->set_seconds(0);
  Expect(&pb::Corral::Stub::AcquireLock, acquire, grpc::INVALID_ARGUMENT,
         "ttl");
  acquire.mutable_ttl()->set_seconds(5);
  acquire.mutable_wait_timeout()->set_seconds(-3);
  Expect(&pb::Corral::Stub::AcquireLock, acquire, grpc::INVALID_ARGUMENT,
         "wait_timeout");
  acquire.mutable_wait_timeout()->set_seconds(100 * 3600);
  Expect(&pb::Corral::Stub::AcquireLock, acquire, grpc::INVALID_ARGUMENT,
         "wait_timeout");
  acquire.mutable_wait_timeout()->set_seconds(1);
  acquire.mutable_wait_timeout()->set_nanos(-5);
  Expect(&pb::Corral::Stub::AcquireLock, acquire, grpc::INVALID_ARGUMENT,
         "wait_timeout");

  ForEachBadKey<pb::RenewLockRequest>(
      [&](pb::RenewLockRequest r, const std::string& f) {
        r.set_token("t");
        Expect(&pb::Corral::Stub::RenewLock, r, grpc::INVALID_ARGUMENT, f);
      });
  pb::RenewLockRequest renew;
  renew.set_namespace_("ns");
  renew.set_key("k");
  Expect(&pb::Corral::Stub::RenewLock, renew, grpc::INVALID_ARGUMENT, "token");
  renew.set_token("bad\ntoken");
  Expect(&pb::Corral::Stub::RenewLock, renew, grpc::INVALID_ARGUMENT, "token");
  renew.set_token("t");
  renew.mutable_ttl()->set_seconds(-1);
  Expect(&pb::Corral::Stub::RenewLock, renew, grpc::INVALID_ARGUMENT, "ttl");

  ForEachBadKey<pb::ReleaseLockRequest>(
      [&](pb::ReleaseLockRequest r, const std::string& f) {
        r.set_token("t");
        Expect(&pb::Corral::Stub::ReleaseLock, r, grpc::INVALID_ARGUMENT, f);
      });
  pb::ReleaseLockRequest release;
  release.set_namespace_("ns");
  release.set_key("k");
  Expect(&pb::Corral::Stub::ReleaseLock, release, grpc::INVALID_ARGUMENT,
         "token");
  release.set_token("t");
  release.set_outcome(static_cast<pb::Outcome>(7));
  Expect(&pb::Corral::Stub::ReleaseLock, release, grpc::INVALID_ARGUMENT,
         "outcome");
}

// Runs one GetOrCompute stream: writes `requests`, half-closes, and returns
// the responses and the final status.
struct StreamResult {
  std::vector<pb::GetOrComputeResponse> responses;
  grpc::Status status;
  std::string reason;
};
StreamResult Stream(pb::Corral::Stub& stub,
                    const std::vector<pb::GetOrComputeRequest>& requests,
                    bool wait_for_lease_before_rest = false) {
  StreamResult out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub.GetOrCompute(&ctx);
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!stream->Write(requests[i])) break;
    if (i == 0 && wait_for_lease_before_rest) {
      pb::GetOrComputeResponse r;
      if (stream->Read(&r)) out.responses.push_back(r);
    }
  }
  stream->WritesDone();
  pb::GetOrComputeResponse r;
  while (stream->Read(&r)) out.responses.push_back(r);
  out.status = stream->Finish();
  auto trailers = ctx.GetServerTrailingMetadata();
  if (auto it = trailers.find("corral-reason"); it != trailers.end()) {
    out.reason = std::string(it->second.data(), it->second.size());
  }
  return out;
}

pb::GetOrComputeRequest Lookup(const std::string& ns, const std::string& key) {
  pb::GetOrComputeRequest r;
  r.mutable_lookup()->set_namespace_(ns);
  r.mutable_lookup()->set_key(key);
  return r;
}
pb::GetOrComputeRequest FillOf(const std::string& v) {
  pb::GetOrComputeRequest r;
  r.mutable_fill()->set_value(v);
  return r;
}

TEST_P(BadInputE2E, GetOrComputeOutOfTurn) {
  // Fill first.
  auto fill_first = Stream(*stub_, {FillOf("v")});
  EXPECT_EQ(fill_first.status.error_code(), grpc::INVALID_ARGUMENT);
  // Abandon first.
  pb::GetOrComputeRequest abandon;
  abandon.mutable_abandon()->set_reason("x");
  EXPECT_EQ(Stream(*stub_, {abandon}).status.error_code(),
            grpc::INVALID_ARGUMENT);
  // An empty message.
  EXPECT_EQ(Stream(*stub_, {pb::GetOrComputeRequest()}).status.error_code(),
            grpc::INVALID_ARGUMENT);
  // Closed without a Lookup.
  EXPECT_EQ(Stream(*stub_, {}).status.error_code(), grpc::INVALID_ARGUMENT);
  // Bad lookups.
  for (auto [ns, key] : std::vector<std::pair<std::string, std::string>>{
           {"", "k"},
           {"bad ns", "k"},
           {"ns", ""},
           {"ns", std::string(2000, 'k')}}) {
    auto r = Stream(*stub_, {Lookup(ns, key)});
    EXPECT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT) << ns;
    EXPECT_EQ(r.reason, "invalid-argument");
  }
  auto bad_duration = Lookup("ns", "k");
  bad_duration.mutable_lookup()->mutable_wait_timeout()->set_nanos(
      1'500'000'000);
  auto bd = Stream(*stub_, {bad_duration});
  EXPECT_EQ(bd.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(bd.status.error_message(), HasSubstr("wait_timeout"));
  // Two Lookups: the second arrives while the first holds the lease.
  auto two = Stream(*stub_, {Lookup("ns", "two"), Lookup("ns", "two")}, true);
  EXPECT_EQ(two.status.error_code(), grpc::INVALID_ARGUMENT);
  // ...and its lease was released: the next caller gets one at once.
  auto next = Stream(*stub_, {Lookup("ns", "two"), FillOf("v")}, true);
  ASSERT_TRUE(next.status.ok()) << next.status.error_message();
  ASSERT_GE(next.responses.size(), 2u);
  EXPECT_TRUE(next.responses[0].has_lease());
  EXPECT_TRUE(next.responses[1].filled().stored());
  // A caller that half-closes without a Fill never keeps the lock: a lease
  // it got goes back, the next caller computes, and the quitter is served
  // the value like any waiter (in whichever order the two arrive).
  StreamResult quitter;
  JoiningThread quit(
      [&] { quitter = Stream(*stub_, {Lookup("ns", "quit")}, true); });
  auto after_quit = Stream(*stub_, {Lookup("ns", "quit"), FillOf("v")}, true);
  quit.join();
  ASSERT_FALSE(after_quit.responses.empty());
  EXPECT_TRUE(after_quit.responses[0].has_lease());
  EXPECT_TRUE(quitter.status.ok()) << quitter.status.error_message();
  ASSERT_FALSE(quitter.responses.empty());
  ASSERT_TRUE(quitter.responses.back().has_value());
  EXPECT_EQ(quitter.responses.back().value().value(), "v");
  // An oversized Fill.
  auto big = Stream(
      *stub_, {Lookup("ns", "big"), FillOf(std::string((1 << 20) + 1, 'x'))},
      true);
  EXPECT_EQ(big.status.error_code(), grpc::INVALID_ARGUMENT);
}

INSTANTIATE_TEST_SUITE_P(Stores, BadInputE2E, ::testing::Values(true, false),
                         [](const auto& info) {
                           return info.param ? "Embedded" : "Redis";
                         });

}  // namespace
}  // namespace corral::testing
