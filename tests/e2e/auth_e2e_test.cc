// Per-namespace bearer tokens against a real corrald: the rights matrix
// (each right x each RPC x own/foreign namespace), missing and unknown
// tokens, what stays open (health, reflection), lock tokens, and that no
// token, key or value leaks into the log or /metrics.
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/cpp/corral_client.h"
#include "corral/v1/corral.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/corrald_process.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Distinctive, so that a leak into a log or /metrics is found.
constexpr char kReadToken[] = "tok-READ-5f1c9e0d";
constexpr char kComputeToken[] = "tok-COMPUTE-a83b27f4";
constexpr char kLockToken[] = "tok-LOCK-0c6d91e2";
constexpr char kAdminToken[] = "tok-ADMIN-7e42b5a9";
constexpr char kReadComputeToken[] = "tok-READCOMPUTE-3d90ab17";
constexpr char kOpsToken[] = "tok-OPS-b61f08c3";
constexpr char kUnknownToken[] = "tok-UNKNOWN-94e7d2c0";

std::string Sha256Of(const std::string& token) {
  auto r = RunCorralctl({"hash-token"}, token + "\n");
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  return std::string(absl::StripTrailingAsciiWhitespace(r->stdout_text));
}

std::string CredentialText(const std::string& name, const std::string& token,
                           const std::string& ns,
                           const std::vector<std::string>& rights) {
  std::string out =
      absl::StrCat("credentials { name: \"", name, "\" token_sha256: \"",
                   Sha256Of(token), "\" namespaces: \"", ns, "\"");
  for (const std::string& r : rights) absl::StrAppend(&out, " rights: ", r);
  return out + " }\n";
}

class AuthE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string config =
        CredentialText("reader", kReadToken, "own", {"READ"}) +
        CredentialText("computer", kComputeToken, "own", {"COMPUTE"}) +
        CredentialText("locker", kLockToken, "own", {"LOCK"}) +
        CredentialText("admin", kAdminToken, "own", {"ADMIN"}) +
        CredentialText("worker", kReadComputeToken, "own",
                       {"READ", "COMPUTE"}) +
        CredentialText("ops", kOpsToken, "*",
                       {"READ", "COMPUTE", "LOCK", "ADMIN"});
    config_path_ = new std::string(absl::StrCat(
        ::testing::TempDir(), "/corral-auth-e2e-", getpid(), ".textproto"));
    std::ofstream(*config_path_) << config;
    CorraldOptions options;
    options.args = {absl::StrCat("--config=", *config_path_),
                    "--log_level=debug"};
    auto p = CorraldProcess::Start(options);
    ASSERT_TRUE(p.ok()) << p.status();
    corrald_ = p->release();
  }
  static void TearDownTestSuite() {
    if (corrald_ != nullptr) corrald_->Kill();
    delete corrald_;
    delete config_path_;
  }

  static std::unique_ptr<client::Client> ClientWith(const std::string& token) {
    client::ClientOptions options;
    options.default_timeout = absl::Seconds(10);
    options.retry.max_attempts = 1;
    options.token = token;
    return std::make_unique<client::Client>(corrald_->target(), options);
  }

  static CorraldProcess* corrald_;
  static std::string* config_path_;
};
CorraldProcess* AuthE2E::corrald_ = nullptr;
std::string* AuthE2E::config_path_ = nullptr;

// One RPC as the credential under test makes it, in namespace `ns`. Locks
// and values it needs are prepared with the all-powerful `ops` client.
struct Operation {
  std::string name;
  std::vector<std::string> needs;  // Rights, all required.
  std::function<absl::Status(client::Client& c, client::Client& ops,
                             const std::string& ns, const std::string& key)>
      run;
};

absl::Status Ok(bool expected_true, absl::string_view what) {
  return expected_true ? absl::OkStatus()
                       : absl::InternalError(absl::StrCat(what, " was false"));
}

// The key's lock, taken by `ops` so that the caller under test can renew,
// release or write under it.
absl::StatusOr<client::AcquireLockResult> OpsLock(client::Client& ops,
                                                  const std::string& ns,
                                                  const std::string& key) {
  auto lock = ops.AcquireLock(ns, key, absl::Seconds(30), absl::ZeroDuration());
  if (!lock.ok() || !lock->acquired) return absl::InternalError("ops: no lock");
  return lock;
}

std::vector<Operation> Operations() {
  using client::Client;
  return {
      {"Get",
       {"read"},
       [](Client& c, Client&, const std::string& ns, const std::string&) {
         auto r = c.Get(ns, "hit");
         return r.ok() ? Ok(r->found, "found") : r.status();
       }},
      {"GetOrCompute(hit)",
       {"read"},
       [](Client& c, Client&, const std::string& ns, const std::string&) {
         auto r =
             c.GetOrCompute(ns, "hit", []() -> absl::StatusOr<std::string> {
               return absl::InternalError("compute ran on a hit");
             });
         return r.ok() ? Ok(r->value == "cached" && !r->computed, "hit")
                       : r.status();
       }},
      {"GetOrCompute(miss)",
       {"read", "compute"},
       [](Client& c, Client&, const std::string& ns, const std::string& key) {
         bool ran = false;
         auto r = c.GetOrCompute(ns, key, [&]() -> absl::StatusOr<std::string> {
           ran = true;
           return std::string("computed");
         });
         if (!r.ok()) {
           return ran ? absl::InternalError("a refused caller computed")
                      : r.status();
         }
         return Ok(r->computed && r->stored, "computed and stored");
       }},
      {"Set",
       {"admin"},
       [](Client& c, Client&, const std::string& ns, const std::string& key) {
         auto r = c.Set(ns, key, "set");
         return r.ok() ? Ok(r->stored, "stored") : r.status();
       }},
      {"Set(lock_token)",
       {"lock"},
       [](Client& c, Client& ops, const std::string& ns,
          const std::string& key) {
         auto lock = OpsLock(ops, ns, key);
         if (!lock.ok()) return lock.status();
         client::SetOptions set;
         set.lock_token = lock->token;
         set.release_lock = true;
         auto r = c.Set(ns, key, "fenced", set);
         ops.ReleaseLock(ns, key, lock->token).IgnoreError();
         return r.ok() ? Ok(r->stored, "stored") : r.status();
       }},
      {"Invalidate",
       {"admin"},
       [](Client& c, Client&, const std::string& ns, const std::string& key) {
         return c.Invalidate(ns, key).status();
       }},
      {"AcquireLock",
       {"lock"},
       [](Client& c, Client& ops, const std::string& ns,
          const std::string& key) {
         auto r =
             c.AcquireLock(ns, key, absl::Seconds(30), absl::ZeroDuration());
         if (!r.ok()) return r.status();
         ops.ReleaseLock(ns, key, r->token).IgnoreError();
         return Ok(r->acquired, "acquired");
       }},
      {"RenewLock",
       {"lock"},
       [](Client& c, Client& ops, const std::string& ns,
          const std::string& key) {
         auto lock = OpsLock(ops, ns, key);
         if (!lock.ok()) return lock.status();
         auto r = c.RenewLock(ns, key, lock->token, absl::Seconds(30));
         ops.ReleaseLock(ns, key, lock->token).IgnoreError();
         return r.ok() ? Ok(r->renewed, "renewed") : r.status();
       }},
      {"ReleaseLock",
       {"lock"},
       [](Client& c, Client& ops, const std::string& ns,
          const std::string& key) {
         auto lock = OpsLock(ops, ns, key);
         if (!lock.ok()) return lock.status();
         auto r = c.ReleaseLock(ns, key, lock->token);
         if (!r.ok()) ops.ReleaseLock(ns, key, lock->token).IgnoreError();
         return r.ok() ? Ok(r->released, "released") : r.status();
       }},
      {"GetBreaker",
       {"admin"},
       [](Client& c, Client&, const std::string& ns, const std::string&) {
         return c.GetBreaker(ns).status();
       }},
  };
}

TEST_F(AuthE2E, RightsMatrixEachRightEachRpcOwnAndForeignNamespace) {
  auto ops = ClientWith(kOpsToken);
  for (const char* ns : {"own", "foreign"}) {
    ASSERT_OK(ops->Set(ns, "hit", "cached").status());
  }
  const std::map<std::string, std::pair<std::string, std::set<std::string>>>
      credentials = {
          {"reader", {kReadToken, {"read"}}},
          {"computer", {kComputeToken, {"compute"}}},
          {"locker", {kLockToken, {"lock"}}},
          {"admin", {kAdminToken, {"admin"}}},
          {"worker", {kReadComputeToken, {"read", "compute"}}},
      };
  int n = 0;
  for (const auto& [name, grant] : credentials) {
    auto c = ClientWith(grant.first);
    for (const Operation& op : Operations()) {
      for (const std::string ns : {"own", "foreign"}) {
        SCOPED_TRACE(absl::StrCat(name, " ", op.name, " in ", ns));
        bool allowed = ns == "own";
        for (const std::string& right : op.needs)
          allowed = allowed && grant.second.count(right);
        const absl::Status s =
            op.run(*c, *ops, ns, absl::StrCat("matrix-", n++));
        if (allowed) {
          EXPECT_OK(s);
        } else {
          EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
          EXPECT_EQ(client::ReasonOf(s), "permission-denied");
        }
      }
    }
  }
  // The all-namespaces credential may do everything everywhere.
  for (const Operation& op : Operations()) {
    for (const std::string ns : {"own", "foreign", "third"}) {
      SCOPED_TRACE(absl::StrCat("ops ", op.name, " in ", ns));
      if (ns == "third") {
        ASSERT_OK(ops->Set(ns, "hit", "cached").status());
      }
      EXPECT_OK(op.run(*ops, *ops, ns, absl::StrCat("matrix-", n++)));
    }
  }
}

TEST_F(AuthE2E, ReadOnlyGetOrComputeMissNeverTakesTheLock) {
  auto reader = ClientWith(kReadToken);
  auto ops = ClientWith(kOpsToken);
  auto miss = reader->GetOrCompute("own", "read-only-miss",
                                   []() -> absl::StatusOr<std::string> {
                                     return std::string("must not run");
                                   });
  ASSERT_THAT(miss, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(miss.status().message()),
              HasSubstr("lacks the compute right"));
  // The key's lock is free: the refused reader neither took nor queued for it.
  auto lock = ops->AcquireLock("own", "read-only-miss", absl::Seconds(10),
                               absl::ZeroDuration());
  ASSERT_OK(lock.status());
  EXPECT_TRUE(lock->acquired);
  ASSERT_OK(ops->ReleaseLock("own", "read-only-miss", lock->token).status());
}

TEST_F(AuthE2E, MissingUnknownAndMalformedTokensAreUnauthenticated) {
  for (const std::string& token : {std::string(), std::string(kUnknownToken)}) {
    auto c = ClientWith(token);
    auto ops = ClientWith(kOpsToken);
    for (const Operation& op : Operations()) {
      SCOPED_TRACE(absl::StrCat(token.empty() ? "no token" : "unknown token",
                                " ", op.name));
      const absl::Status s =
          op.run(*c, *ops, "own", absl::StrCat("unauth-", op.name));
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated));
      EXPECT_EQ(client::ReasonOf(s), "unauthenticated");
    }
  }
  // Not a bearer token at all.
  auto stub = corral::v1::Corral::NewStub(grpc::CreateChannel(
      corrald_->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Basic ", kOpsToken));
  corral::v1::GetRequest request;
  request.set_namespace_("own");
  request.set_key("hit");
  corral::v1::GetResponse response;
  EXPECT_EQ(stub->Get(&ctx, request, &response).error_code(),
            grpc::UNAUTHENTICATED);
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with
// list_services "*", through a generic stub: the raw response bytes.
absl::StatusOr<std::string> ListServicesByReflection(
    const std::string& target) {
  grpc::GenericStub stub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int n) {
    return cq.Next(&tag, &ok) && ok && tag == reinterpret_cast<void*>(n);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return absl::UnavailableError("reflection: no call");
  // ServerReflectionRequest{list_services: "*"}: field 7, length-delimited.
  grpc::Slice slice(std::string("\x3a\x01*", 3));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  if (!step(2)) return absl::UnavailableError("reflection: write failed");
  call->WritesDone(reinterpret_cast<void*>(3));
  if (!step(3)) return absl::UnavailableError("reflection: half-close failed");
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  const bool read = step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  if (!read) return absl::InternalError("reflection: no response");
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok())
    return absl::InternalError("reflection: bad buffer");
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A NearCache stream without a token is refused; a caller that cancels it
// while the refusal is on its way must not make corrald finish the stream a
// second time (gRPC aborts the process on that: corralctl and the
// Kubernetes probes, which send no token, did it about 1 run in 13).
TEST_F(AuthE2E, RefusedNearCacheStreamsCancelledAtOnceLeaveCorraldUp) {
  auto channel = grpc::CreateChannel(corrald_->target(),
                                     grpc::InsecureChannelCredentials());
  auto stub = corral::v1::Corral::NewStub(channel);
  int refused = 0;
  for (int i = 0; i < 300; ++i) {
    grpc::ClientContext ctx;
    corral::v1::NearCacheRequest request;
    request.set_client_name("auth-e2e");
    auto reader = stub->NearCache(&ctx, request);
    if (i % 2 == 0) ctx.TryCancel();  // Half at once, half after the answer.
    corral::v1::NearCacheEvent event;
    while (reader->Read(&event)) {
    }
    const grpc::Status s = reader->Finish();
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) ++refused;
    ASSERT_TRUE(s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                s.error_code() == grpc::StatusCode::CANCELLED)
        << i << ": " << s.error_code() << " " << s.error_message();
    ASSERT_TRUE(corrald_->Running()) << "after stream " << i;
  }
  EXPECT_GE(refused, 150);  // Every stream that was not cancelled.
  auto anonymous = ClientWith("");
  EXPECT_THAT(anonymous->CheckHealth(),
              IsOkAndHolds(client::HealthStatus::kServing));
  EXPECT_TRUE(corrald_->Running());
}

TEST_F(AuthE2E, HealthAndReflectionStayOpen) {
  auto anonymous = ClientWith("");
  EXPECT_THAT(anonymous->CheckHealth(),
              IsOkAndHolds(client::HealthStatus::kServing));
  EXPECT_THAT(anonymous->CheckHealth("corral.v1.Corral"),
              IsOkAndHolds(client::HealthStatus::kServing));
  auto services = ListServicesByReflection(corrald_->target());
  ASSERT_OK(services.status());
  EXPECT_THAT(*services, HasSubstr("corral.v1.Corral"));
}

TEST_F(AuthE2E, LockTokensAreRandom128BitAndOnlyTheHoldersWork) {
  auto ops = ClientWith(kOpsToken);
  const LineRegex hex128("[0-9a-f]{32}");
  std::set<std::string> seen;
  std::vector<std::pair<std::string, std::string>> held;  // key, token
  for (int i = 0; i < 64; ++i) {
    const std::string key = absl::StrCat("tokens-", i);
    auto lock =
        ops->AcquireLock("own", key, absl::Seconds(30), absl::ZeroDuration());
    ASSERT_OK(lock.status());
    ASSERT_TRUE(lock->acquired);
    EXPECT_TRUE(hex128.Matches(lock->token)) << lock->token;
    EXPECT_TRUE(seen.insert(lock->token).second)
        << "repeated token " << lock->token;
    held.emplace_back(key, lock->token);
  }
  // Another key's token, or a guess, neither renews nor releases.
  for (size_t i = 0; i < held.size(); ++i) {
    const auto& [key, token] = held[i];
    const std::string& other = held[(i + 1) % held.size()].second;
    EXPECT_THAT(
        ops->RenewLock("own", key, other, absl::Seconds(30)).value().renewed,
        false);
    EXPECT_THAT(ops->ReleaseLock("own", key, other).value().released, false);
    EXPECT_THAT(
        ops->ReleaseLock("own", key, std::string(32, '0')).value().released,
        false);
    EXPECT_THAT(ops->ReleaseLock("own", key, token).value().released, true);
  }
  // Another tenant's lock: even its exact token is refused to a caller whose
  // lock right is for another namespace, and the lock stays held.
  auto theirs = ops->AcquireLock("foreign", "tenant-lock", absl::Seconds(30),
                                 absl::ZeroDuration());
  ASSERT_OK(theirs.status());
  ASSERT_TRUE(theirs->acquired);
  auto locker = ClientWith(kLockToken);
  EXPECT_THAT(locker->ReleaseLock("foreign", "tenant-lock", theirs->token),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(locker->RenewLock("foreign", "tenant-lock", theirs->token,
                                absl::Seconds(30)),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(ops->ReleaseLock("foreign", "tenant-lock", theirs->token)
                  .value()
                  .released,
              true);
}

TEST_F(AuthE2E, NoTokenKeyOrValueInTheLogOrMetrics) {
  const std::string key = "KEYBYTES-tulip-7c2e";
  const std::string value = "VALUEBYTES-Tulipa-gesneriana-91d3";
  auto worker = ClientWith(kReadComputeToken);
  auto got = worker->GetOrCompute(
      "own", key, [&]() -> absl::StatusOr<std::string> { return value; });
  ASSERT_OK(got.status());
  for (const char* token :
       {kReadToken, kComputeToken, kLockToken, kAdminToken, kUnknownToken}) {
    auto c = ClientWith(token);
    c->Get("own", key).IgnoreError();
    c->Get("foreign", key).IgnoreError();
    c->Set("own", key, value).IgnoreError();
    c->AcquireLock("foreign", key, absl::Seconds(5), absl::ZeroDuration())
        .IgnoreError();
  }
  ClientWith("")->Get("own", key).IgnoreError();

  auto metrics = HttpGet(corrald_->metrics_address(), "/metrics");
  ASSERT_OK(metrics.status());
  const std::string log = corrald_->Log();
  for (const std::string secret :
       {kReadToken, kComputeToken, kLockToken, kAdminToken, kReadComputeToken,
        kOpsToken, kUnknownToken}) {
    EXPECT_THAT(log, Not(HasSubstr(secret)));
    EXPECT_THAT(*metrics, Not(HasSubstr(secret)));
  }
  for (const std::string& bytes :
       {key, value, std::string("tulip"), std::string("Tulipa")}) {
    EXPECT_THAT(log, Not(HasSubstr(bytes)));
    EXPECT_THAT(*metrics, Not(HasSubstr(bytes)));
  }
  // Refusals are counted by reason and logged by credential name.
  for (const char* reason :
       {"missing_token", "unknown_token", "namespace_denied", "right_denied"}) {
    auto n = MetricValue(*metrics, "corral_auth_failures_total",
                         {{"reason", reason}});
    ASSERT_OK(n.status()) << reason;
    EXPECT_GT(*n, 0) << reason;
  }
  EXPECT_THAT(log, HasSubstr("auth_denied method=Get ns=foreign right=read "
                             "reason=namespace_denied credential=reader"));
  EXPECT_THAT(
      log,
      HasSubstr("auth_denied method=Set ns=own right=admin reason=right_denied "
                "credential=locker"));
}

}  // namespace
}  // namespace corral::testing
