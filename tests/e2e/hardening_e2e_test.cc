// What a client written from the proto alone ran into, through real corrald
// processes on Redis and raw generated stubs: callers that half-close right
// after their Lookup (grpcurl does), namespaces invented without bound,
// unbounded worker ids and lock owners, and key hashes in the logs.
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "corral/v1/corral.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/core/cache_key.h"
#include "server/core/log.h"
#include "tests/e2e/fleet.h"
#include "tests/support/http_get.h"
#include "tests/support/joining_thread.h"

namespace corral::testing {
namespace {

namespace pb = corral::v1;
using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<pb::Corral::Stub> StubFor(const std::string& target) {
  return pb::Corral::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

// The replica's log once it holds `needle` (its lines are read from a pipe,
// so a line may land a moment after the call it logs), or all of it after 5 s.
std::string LogWith(CorraldProcess& replica, absl::string_view needle) {
  std::string log = replica.Log();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(5);
       !absl::StrContains(log, needle) && absl::Now() < deadline;
       log = replica.Log()) {
    absl::SleepFor(absl::Milliseconds(20));  // Polls.
  }
  return log;
}

pb::GetOrComputeRequest LookupOf(const std::string& ns, const std::string& key,
                                 int wait_seconds,
                                 const std::string& worker = "") {
  pb::GetOrComputeRequest r;
  r.mutable_lookup()->set_namespace_(ns);
  r.mutable_lookup()->set_key(key);
  r.mutable_lookup()->mutable_wait_timeout()->set_seconds(wait_seconds);
  r.mutable_lookup()->set_worker_id(worker);
  return r;
}

// What grpcurl -d '{"lookup": ...}' does: the Lookup, a half-close at once,
// then every answer until the call ends.
struct GrpcurlResult {
  std::vector<pb::GetOrComputeResponse> responses;
  grpc::Status status;
  absl::Duration took;
};
GrpcurlResult LookupAndHalfClose(pb::Corral::Stub& stub,
                                 const pb::GetOrComputeRequest& lookup) {
  GrpcurlResult out;
  const absl::Time start = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub.GetOrCompute(&ctx);
  stream->Write(lookup);
  stream->WritesDone();
  pb::GetOrComputeResponse r;
  while (stream->Read(&r)) out.responses.push_back(r);
  out.status = stream->Finish();
  out.took = absl::Now() - start;
  return out;
}

// A worker that holds the lease of a key until told to fill it.
class Leaseholder {
 public:
  Leaseholder(pb::Corral::Stub& stub, const std::string& ns,
              const std::string& key)
      : stream_(stub.GetOrCompute(&ctx_)) {
    stream_->Write(LookupOf(ns, key, 5, "leaseholder-1"));
    pb::GetOrComputeResponse r;
    leased_ = stream_->Read(&r) && r.has_lease();
  }
  ~Leaseholder() {
    if (!finished_) {  // A test that failed before the Fill.
      ctx_.TryCancel();
      stream_->Finish();
    }
  }
  bool leased() const { return leased_; }
  bool Fill(const std::string& value) {
    pb::GetOrComputeRequest fill;
    fill.mutable_fill()->set_value(value);
    stream_->Write(fill);
    stream_->WritesDone();
    pb::GetOrComputeResponse r;
    const bool stored =
        stream_->Read(&r) && r.has_filled() && r.filled().stored();
    while (stream_->Read(&r)) {
    }
    finished_ = true;
    return stream_->Finish().ok() && stored;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::GetOrComputeRequest,
                                           pb::GetOrComputeResponse>>
      stream_;
  bool leased_ = false;
  bool finished_ = false;
};

// The issue's steps: a leaseholder on replica A; on replica B a caller
// that half-closes at once; the fill, once it waits, must wake it (it was
// woken only by its wait_timeout, 4-6 times out of 6-10).
TEST(HalfCloseE2E, WaiterOnAnotherReplicaIsWokenByTheFill) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  auto a = StubFor(fleet->replica(0).target());
  auto b = StubFor(fleet->replica(1).target());
  for (int round = 0; round < 8; ++round) {
    const std::string key = absl::StrCat("half-closed-waiter-", round);
    Leaseholder holder(*a, "plant_id", key);
    ASSERT_TRUE(holder.leased());
    GrpcurlResult waiter;
    JoiningThread t(
        [&] { waiter = LookupAndHalfClose(*b, LookupOf("plant_id", key, 5)); });
    // The fill comes once the half-closed caller waits on replica 1.
    EXPECT_TRUE(fleet->WaitForWaiters("plant_id", 1)) << "round " << round;
    EXPECT_TRUE(holder.Fill("rose"));
    t.join();
    ASSERT_TRUE(waiter.status.ok()) << waiter.status.error_message();
    ASSERT_EQ(waiter.responses.size(), 1u) << "round " << round;
    ASSERT_TRUE(waiter.responses[0].has_value());
    EXPECT_EQ(waiter.responses[0].value().source(), pb::SOURCE_PEER_FILL)
        << "round " << round;
    EXPECT_LT(waiter.took, absl::Seconds(4))
        << "round " << round;  // Not its wait_timeout.
  }
}

// A half-closed caller on a cold key never keeps the lock from a worker
// that can compute; it gets the value that worker fills.
TEST(HalfCloseE2E, HalfClosedCallerNeverHoldsTheLock) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  auto a = StubFor(fleet->replica(0).target());
  auto b = StubFor(fleet->replica(1).target());
  for (int round = 0; round < 8; ++round) {
    const std::string key = absl::StrCat("half-closed-cold-", round);
    GrpcurlResult quick;
    JoiningThread t(
        [&] { quick = LookupAndHalfClose(*a, LookupOf("plant_id", key, 5)); });
    // The worker comes a moment later, through either replica: it gets the
    // lease at once (before, it waited out the other's 5 s wait_timeout).
    absl::SleepFor(absl::Milliseconds(20 * (round % 3)));
    const absl::Time start = absl::Now();
    Leaseholder worker(round % 2 == 0 ? *a : *b, "plant_id", key);
    ASSERT_TRUE(worker.leased()) << "round " << round;
    EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "round " << round;
    EXPECT_TRUE(worker.Fill("tulip"));
    t.join();
    ASSERT_TRUE(quick.status.ok()) << quick.status.error_message();
    ASSERT_FALSE(quick.responses.empty());
    // A lease it could not use may come first; a value always ends it.
    EXPECT_TRUE(quick.responses.back().has_value()) << "round " << round;
    EXPECT_EQ(quick.responses.back().value().value(), "tulip");
  }
}

constexpr char kLimitedConfig[] = R"pb(
  namespaces { name: "listed" }
  limits {
    max_dynamic_namespaces: 5
    dynamic_namespace_idle { seconds: 1 }
  }
)pb";

grpc::Status SetIn(pb::Corral::Stub& stub, const std::string& ns,
                   std::string* reason) {
  pb::SetRequest set;
  set.set_namespace_(ns);
  set.set_key("k");
  set.set_value("v");
  pb::SetResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub.Set(&ctx, set, &resp);
  auto trailers = ctx.GetServerTrailingMetadata();
  if (auto it = trailers.find("corral-reason"); it != trailers.end()) {
    *reason = std::string(it->second.data(), it->second.size());
  }
  return s;
}

TEST(NamespaceLimitE2E, RefusesBeyondTheLimitAndForgetsIdleNamespaces) {
  auto fleet = Fleet::Start(1, /*embedded=*/false, kLimitedConfig);
  ASSERT_NE(fleet, nullptr);
  auto stub = StubFor(fleet->replica(0).target());
  std::string reason;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(SetIn(*stub, absl::StrCat("dyn", i), &reason).ok()) << i;
  }
  // Counters with known labels are there, at 0, from the first use.
  auto metrics = HttpGet(fleet->replica(0).metrics_address(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(*MetricValue(*metrics, "corral_duplicate_computes_total",
                         {{"namespace", "dyn0"}}),
            0);
  EXPECT_EQ(
      *MetricValue(*metrics, "corral_breaker_transitions_total",
                   {{"namespace", "dyn0"}, {"from", "closed"}, {"to", "open"}}),
      0);
  grpc::Status refused = SetIn(*stub, "dyn5", &reason);
  EXPECT_EQ(refused.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(reason, "too-many-namespaces");
  EXPECT_THAT(refused.error_message(), HasSubstr("max_dynamic_namespaces"));
  // Listed namespaces do not count.
  EXPECT_TRUE(SetIn(*stub, "listed", &reason).ok());
  // Idle ones are forgotten (here after 1 s): their series go, and new
  // namespaces are admitted again.
  bool forgotten = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(15);
       !forgotten && absl::Now() < deadline;) {
    metrics = HttpGet(fleet->replica(0).metrics_address(), "/metrics");
    ASSERT_TRUE(metrics.ok());
    forgotten = true;
    for (int i = 0; i < 5; ++i) {
      forgotten =
          forgotten && !absl::StrContains(
                           *metrics, absl::StrCat("namespace=\"dyn", i, "\""));
    }
    if (!forgotten) absl::SleepFor(absl::Milliseconds(100));  // Polls.
  }
  EXPECT_TRUE(forgotten) << "dyn0..dyn4's series are still exported";
  EXPECT_THAT(*metrics, HasSubstr("namespace=\"listed\""));
  for (int i = 5; i < 10; ++i) {
    EXPECT_TRUE(SetIn(*stub, absl::StrCat("dyn", i), &reason).ok()) << i;
  }
  EXPECT_THAT(LogWith(fleet->replica(0), "namespaces_evicted"),
              HasSubstr("namespaces_evicted"));
}

TEST(CallerLabelsE2E, BoundedAndLogged) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  auto stub = StubFor(fleet->replica(0).target());
  // Too long, or with a control character: refused, naming the field.
  GrpcurlResult long_id = LookupAndHalfClose(
      *stub, LookupOf("plant_id", "k", 1, std::string(257, 'w')));
  EXPECT_EQ(long_id.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(long_id.status.error_message(), HasSubstr("worker_id"));
  pb::AcquireLockRequest lock;
  lock.set_namespace_("jobs");
  lock.set_key("nightly");
  lock.set_owner("cron\nINFO forged_line");
  {
    grpc::ClientContext ctx;
    pb::AcquireLockResponse resp;
    grpc::Status s = stub->AcquireLock(&ctx, lock, &resp);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("owner"));
  }
  // 256 bytes are fine, and the lease, fill lines carry the worker id.
  Leaseholder ok_holder(*stub, "plant_id", "labelled");
  ASSERT_TRUE(ok_holder.leased());
  ASSERT_TRUE(ok_holder.Fill("v"));
  const std::string log = LogWith(fleet->replica(0), " fill ns=plant_id");
  EXPECT_THAT(log, HasSubstr("lease ns=plant_id"));
  EXPECT_THAT(log, HasSubstr("worker_id=\"leaseholder-1\""));
  GrpcurlResult max_id = LookupAndHalfClose(
      *stub, LookupOf("plant_id", "labelled", 1, std::string(256, 'w')));
  EXPECT_TRUE(max_id.status.ok()) << max_id.status.error_message();
}

// The key= of log lines, for `key` in namespace plant_id.
std::string LoggedHash(const std::string& log, const std::string& event) {
  const std::string marker = absl::StrCat(" ", event, " ns=plant_id key=");
  size_t at = log.find(marker);
  if (at == std::string::npos) return "";
  return log.substr(at + marker.size(), 16);
}

TEST(LogKeyE2E, KeyHashesAreKeyedAndReplicasWithOneKeyAgree) {
  const std::string secret = "0123456789abcdef0123456789abcdef";
  const std::string key_file =
      absl::StrCat(::testing::TempDir(), "corral-log-key-", getpid());
  std::ofstream(key_file) << secret << "\n";
  ASSERT_EQ(::chmod(key_file.c_str(), 0644), 0);
  auto fleet =
      Fleet::Start(2, /*embedded=*/false, "", {"--log_key_file=" + key_file});
  ASSERT_NE(fleet, nullptr);
  ASSERT_TRUE(fleet->AddReplica({}));  // A third one, without the key.
  std::vector<std::string> logged;
  for (int i = 0; i < 3; ++i) {
    auto stub = StubFor(fleet->replica(i).target());
    Leaseholder holder(*stub, "plant_id",
                       absl::StrCat("user", i, "@example.com"));
    ASSERT_TRUE(holder.leased());
    ASSERT_TRUE(holder.Fill("v"));
    logged.push_back(
        LoggedHash(LogWith(fleet->replica(i), " fill ns=plant_id"), "fill"));
    ASSERT_EQ(logged.back().size(), 16u) << fleet->replica(i).Log();
  }
  // This process keyed as the first two replicas are: their hashes are the
  // HMAC under the shared key, not the unkeyed (guessable) one.
  ASSERT_TRUE(SetLogKeySecret(secret).ok());
  for (int i = 0; i < 2; ++i) {
    const CacheKey key{"plant_id", absl::StrCat("user", i, "@example.com")};
    EXPECT_EQ(logged[i], LogKeyHash(key)) << "replica " << i;
    EXPECT_NE(logged[i], KeyHash(key)) << "replica " << i;
  }
  // The third drew its own key.
  const CacheKey third{"plant_id", "user2@example.com"};
  EXPECT_NE(logged[2], LogKeyHash(third));
  EXPECT_NE(logged[2], KeyHash(third));
  // A key file others may read is warned about; no key at all too.
  EXPECT_THAT(fleet->replica(0).Log(), HasSubstr("secret_file_readable"));
  EXPECT_THAT(fleet->replica(0).Log(), Not(HasSubstr("log_key_random")));
  EXPECT_THAT(fleet->replica(2).Log(), HasSubstr("log_key_random"));
}

}  // namespace
}  // namespace corral::testing
