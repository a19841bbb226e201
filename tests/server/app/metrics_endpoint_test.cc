#include "server/app/metrics_endpoint.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "tests/server/app/fails_with.h"
#include "tests/support/http_get.h"

namespace corral::app {
namespace {

using ::corral::testing::HttpGet;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::shared_ptr<prometheus::Registry> RegistryWith(const std::string& counter) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name(counter)
      .Help("test")
      .Register(*registry)
      .Add({})
      .Increment();
  return registry;
}

TEST(MetricsEndpointTest, OffServesNothing) {
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("off", RegistryWith("corral_test_total"));
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ((*endpoint)->bound(), "off");
  (*endpoint)->Add(RegistryWith("corral_other_total"));
  (*endpoint)->Stop();
}

TEST(MetricsEndpointTest, ServesOnThePortPickedAndCollectsWhatIsAdded) {
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1:0", RegistryWith("corral_test_total"));
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const std::string bound = (*endpoint)->bound();
  ASSERT_THAT(bound, StartsWith("127.0.0.1:"));
  EXPECT_NE(bound, "127.0.0.1:0");
  auto added = RegistryWith("corral_added_total");
  (*endpoint)->Add(added);
  absl::StatusOr<std::string> scraped = HttpGet(bound, "/metrics");
  ASSERT_TRUE(scraped.ok()) << scraped.status();
  EXPECT_THAT(*scraped, HasSubstr("corral_test_total 1"));
  EXPECT_THAT(*scraped, HasSubstr("corral_added_total 1"));
  (*endpoint)->Remove(added);
  scraped = HttpGet(bound, "/metrics");
  ASSERT_TRUE(scraped.ok()) << scraped.status();
  EXPECT_EQ(scraped->find("corral_added_total"), std::string::npos);
  (*endpoint)->Stop();
  EXPECT_FALSE(HttpGet(bound, "/metrics").ok());
}

TEST(MetricsEndpointTest, PortInUseIsAnError) {
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> first =
      MetricsEndpoint::Start("127.0.0.1:0", RegistryWith("corral_test_total"));
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string bound = (*first)->bound();
  EXPECT_THAT(MetricsEndpoint::Start(bound, RegistryWith("corral_test_total")),
              FailsWith(absl::StatusCode::kUnavailable,
                        StartsWith(absl::StrCat("cannot serve metrics on ",
                                                bound, ": "))));
}

// civetweb's listener polls for 2 s at a time and notices the stop only when
// a poll returns; a scrape has just restarted that poll, so without Stop()'s
// knock this takes about 2 s.
TEST(MetricsEndpointTest, StopRightAfterAScrapeIsPrompt) {
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1:0", RegistryWith("corral_test_total"));
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_TRUE(HttpGet((*endpoint)->bound(), "/metrics").ok());
  const absl::Time start = absl::Now();
  (*endpoint)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  (*endpoint)->Stop();  // Idempotent.
}

}  // namespace
}  // namespace corral::app
