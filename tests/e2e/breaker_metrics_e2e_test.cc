// The breaker shared by a fleet of real corrald processes, and the
// Prometheus metrics they export (scraped by a real Prometheus too).
#include <signal.h>

#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/bench/stampede.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/free_port.h"
#include "tests/support/http_get.h"
#include "tests/support/poll.h"
#include "tests/support/process.h"

namespace corral::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kFragileConfig[] = R"pb(
  namespaces {
    name: "fragile"
    breaker {
      consecutive_failures: 3
      open_duration { seconds: 2 }
      half_open_probes: 1
    }
    stale_window { seconds: 300 }
  }
)pb";

// Whether every replica in `replicas` reports the breaker in `state`.
bool BreakerIs(Fleet& fleet, std::initializer_list<int> replicas,
               client::BreakerState state) {
  for (int i : replicas) {
    auto b = fleet.ClientFor(i)->GetBreaker("fragile");
    if (!b.ok() || b->state != state) return false;
  }
  return true;
}

// A compute that fails upstream, through replica `i`.
void FailOnce(Fleet& fleet, int i, const std::string& key) {
  auto c = fleet.ClientFor(i);
  auto r = c->GetOrCompute("fragile", key, []() -> absl::StatusOr<std::string> {
    return absl::UnavailableError("upstream 503");
  });
  EXPECT_FALSE(r.ok());
}

TEST(BreakerE2E, OpensFleetWideProbesOnceAndSurvivesRestarts) {
  auto fleet = Fleet::Start(2, /*embedded=*/false, kFragileConfig);
  ASSERT_NE(fleet, nullptr);
  // Failures reported through both replicas add up in one shared breaker.
  FailOnce(*fleet, 0, "a");
  FailOnce(*fleet, 1, "b");
  FailOnce(*fleet, 0, "c");
  EXPECT_TRUE(PollUntil([&] {
    return BreakerIs(*fleet, {0, 1}, client::BreakerState::kOpen);
  }));
  for (int i = 0; i < 2; ++i) {
    auto b = fleet->ClientFor(i)->GetBreaker("fragile");
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->state, client::BreakerState::kOpen) << "replica " << i;
    auto miss = fleet->ClientFor(i)->GetOrCompute(
        "fragile", "d",
        []() -> absl::StatusOr<std::string> { return std::string("x"); });
    ASSERT_FALSE(miss.ok());
    EXPECT_EQ(client::ReasonOf(miss.status()), "breaker-open");
    auto retry = client::RetryAfterOf(miss.status());
    ASSERT_TRUE(retry.has_value());
    EXPECT_GT(*retry, absl::ZeroDuration());
    EXPECT_LE(*retry, absl::Seconds(2));
  }
  auto via_ctl = fleet->replica(0).Corralctl({"breaker", "fragile"});
  ASSERT_TRUE(via_ctl.ok());
  EXPECT_THAT(absl::AsciiStrToLower(via_ctl->stdout_text), HasSubstr("open"));

  // State lives in Redis: a restarted replica still sees it open.
  ASSERT_TRUE(fleet->replica(1).Terminate().ok());
  ASSERT_TRUE(fleet->AddReplica());
  auto after_restart = fleet->ClientFor(2)->GetBreaker("fragile");
  ASSERT_TRUE(after_restart.ok());
  EXPECT_EQ(after_restart->state, client::BreakerState::kOpen);

  // Half-open (after open_duration, 2 s of real time): across both
  // replicas exactly one probe computes.
  // (A breaker reports half-open only once a caller comes: until then it
  // is open with nothing left to wait.)
  ASSERT_TRUE(PollUntil(
      [&] {
        for (int i : {0, 2}) {
          auto b = fleet->ClientFor(i)->GetBreaker("fragile");
          if (!b.ok() || b->state != client::BreakerState::kOpen ||
              b->retry_after > absl::ZeroDuration()) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(10)));
  bench::StampedeOptions o;
  o.targets = {fleet->replica(0).target(), fleet->replica(2).target()};
  o.ns = "fragile";
  o.callers = 40;
  o.keys = 40;  // Distinct keys: every caller would compute if allowed.
  o.compute_time = absl::Milliseconds(300);
  o.key_prefix = "probe-";
  bench::StampedeReport report = bench::RunStampede(o);
  std::cout << report.Summary() << "\n";
  EXPECT_EQ(report.computes(), 1);
  int rejected = 0;
  for (const auto& c : report.callers)
    rejected += c.reason == "breaker-open" ? 1 : 0;
  EXPECT_EQ(rejected, 39);
  // The probe filled: closed again, fleet-wide.
  EXPECT_TRUE(PollUntil([&] {
    return BreakerIs(*fleet, {0, 2}, client::BreakerState::kClosed);
  }));
}

TEST(BreakerE2E, StaleValueServedWhileOpen) {
  auto fleet = Fleet::Start(1, /*embedded=*/false, kFragileConfig);
  ASSERT_NE(fleet, nullptr);
  auto c = fleet->ClientFor(0);
  client::SetOptions short_ttl;
  short_ttl.ttl = absl::Milliseconds(300);
  ASSERT_TRUE(c->Set("fragile", "photo", "Rosa canina", short_ttl).ok());
  ASSERT_TRUE(PollUntil([&] {  // Past its TTL (Redis' time): a Get misses.
    auto got = c->Get("fragile", "photo");
    return got.ok() && !got->found;
  }));
  for (const char* k : {"a", "b", "c"}) FailOnce(*fleet, 0, k);
  ASSERT_TRUE(PollUntil(
      [&] { return BreakerIs(*fleet, {0}, client::BreakerState::kOpen); }));
  client::GetOrComputeOptions stale_ok;
  stale_ok.allow_stale = true;
  auto r = c->GetOrCompute(
      "fragile", "photo",
      []() -> absl::StatusOr<std::string> { return std::string("new"); },
      stale_ok);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value, "Rosa canina");
  EXPECT_TRUE(r->stale);
  EXPECT_FALSE(r->computed);
}

TEST(MetricsE2E, StampedeCountsAreExact) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  bench::StampedeOptions o;
  o.targets = fleet->targets();
  o.ns = "metrics";
  o.callers = 50;
  o.keys = 1;
  o.compute_time =
      absl::Milliseconds(500);  // Everyone arrives before the fill.
  o.key_prefix = "m-";
  bench::StampedeReport report = bench::RunStampede(o);
  ASSERT_EQ(report.ok(), 50);
  ASSERT_EQ(report.computes(), 1);
  // A call is counted once the server is done with it, which can be a
  // moment after the client has its answer: read once all 50 are counted.
  absl::StatusOr<std::string> text;
  EXPECT_TRUE(PollUntil([&] {
    text = HttpGet(fleet->replica(0).metrics_address(), "/metrics");
    return text.ok() &&
           MetricValue(*text, "corral_rpc_requests_total",
                       {{"method", "GetOrCompute"}, {"code", "OK"}})
                   .value_or(0) >= 50;
  }));
  ASSERT_TRUE(text.ok()) << text.status();
  auto v = [&](absl::string_view name,
               std::map<std::string, std::string> labels) {
    labels["namespace"] = "metrics";
    auto value = MetricValue(*text, name, labels);
    return value.ok() ? *value : -1.0;
  };
  EXPECT_EQ(
      v("corral_lookups_total", {{"stage", "initial"}, {"result", "miss"}}),
      50);
  EXPECT_EQ(
      v("corral_lookups_total", {{"stage", "after_lock"}, {"result", "miss"}}),
      1);
  EXPECT_EQ(
      v("corral_lookups_total", {{"stage", "after_wait"}, {"result", "hit"}}),
      49);
  EXPECT_EQ(
      v("corral_computes_total", {{"mode", "locked"}, {"outcome", "filled"}}),
      1);
  EXPECT_EQ(v("corral_lock_acquisitions_total", {{"outcome", "acquired"}}), 1);
  EXPECT_EQ(v("corral_lock_wait_seconds_count", {}), 50);
  EXPECT_EQ(v("corral_waiters", {}), 0);
  // Exported at 0 from the namespace's first use: no duplicate was counted.
  EXPECT_EQ(v("corral_duplicate_computes_total", {}), 0);
  EXPECT_EQ(*MetricValue(*text, "corral_store_up"), 1);
  EXPECT_EQ(*MetricValue(*text, "corral_rpc_requests_total",
                         {{"method", "GetOrCompute"}, {"code", "OK"}}),
            50);
  EXPECT_EQ(v("corral_breaker_state", {{"state", "closed"}}), 1);
  // Never the raw key in metrics.
  EXPECT_EQ(text->find("m-0"), std::string::npos);
}

TEST(MetricsE2E, StoreDownShowsInStoreUp) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  fleet->redis().Kill();
  absl::Time until = absl::Now() + absl::Seconds(5);
  double up = 1;
  while (absl::Now() < until && up != 0) {
    absl::SleepFor(absl::Milliseconds(100));
    auto text = HttpGet(fleet->replica(0).metrics_address(), "/metrics");
    if (text.ok()) up = MetricValue(*text, "corral_store_up").value_or(-1);
  }
  EXPECT_EQ(up, 0) << "a dead Redis is noticed within seconds, with no traffic";
}

TEST(MetricsE2E, RealPrometheusScrapesCorrald) {
  auto fleet = Fleet::Start(1, /*embedded=*/true);
  ASSERT_NE(fleet, nullptr);
  const int port = PickFreePort();
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "prom-", ::getpid());
  ASSERT_EQ(
      std::system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()),
      0);
  std::ofstream(dir + "/prometheus.yml")
      << absl::StrReplaceAll(R"(global:
  scrape_interval: 1s
scrape_configs:
  - job_name: corral
    static_configs:
      - targets: ["TARGET"]
)",
                             {{"TARGET", fleet->replica(0).metrics_address()}});
  SubprocessOptions p;
  p.argv = {"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
            "--storage.tsdb.path=" + dir + "/data",
            absl::StrCat("--web.listen-address=127.0.0.1:", port)};
  auto prometheus = Subprocess::Start(p);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  const std::string api = absl::StrCat("127.0.0.1:", port);
  std::string body;
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until) {
    auto r = HttpGet(api, "/api/v1/query?query=corral_store_up");
    if (r.ok() && r->find("\"result\":[{") != std::string::npos) {
      body = *r;
      break;
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_THAT(body, HasSubstr("corral_store_up"))
      << "Prometheus never had corral's series";
  EXPECT_THAT(body, HasSubstr("\"job\":\"corral\""));
  ASSERT_TRUE((*prometheus)->Signal(SIGTERM).ok());
}

}  // namespace
}  // namespace corral::testing
