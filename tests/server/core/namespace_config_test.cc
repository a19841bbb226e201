#include "server/core/namespace_config.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::StatusIs;
using ::testing::HasSubstr;

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(NamespaceConfigTest, BuiltInDefaultsMatchTheSeed) {
  auto registry = NamespaceRegistry::Create(corral::v1::ServerConfig());
  ASSERT_TRUE(registry.ok());
  auto ns = registry->Find("plant_id");
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ(ns->ttl, absl::Hours(24));
  EXPECT_EQ(ns->wait_timeout, absl::Seconds(15));
  EXPECT_EQ(ns->lease_ttl, absl::Seconds(30));
  EXPECT_EQ(ns->max_compute_time, absl::Seconds(120));
  // Not the seed's: its unlocked compute per timed-out waiter is a herd
  // while the holder is still computing (issue 18). One hedge per lease.
  EXPECT_EQ(ns->on_wait_timeout, WaitTimeoutPolicy::kHedge);
  EXPECT_EQ(ns->max_hedges, 1u);
  EXPECT_FALSE(ns->compute_budget.enabled());
  EXPECT_EQ(ns->breaker.consecutive_failures, 5u);
  EXPECT_EQ(ns->breaker.minimum_calls, 20u);
  EXPECT_EQ(ns->breaker.open_duration, absl::Seconds(60));
  EXPECT_EQ(ns->max_value_bytes, 1u << 20);
}

TEST(NamespaceConfigTest, TextprotoLayersDefaultsAndNamespaces) {
  std::string path = WriteTemp("layers.textproto", R"pb(
    listen_address: "0.0.0.0:7000"
    defaults { wait_timeout { seconds: 5 } }
    namespaces {
      name: "plant_id"
      ttl { seconds: 3600 }
      on_wait_timeout: FAIL
      breaker { consecutive_failures: 3 }
    }
  )pb");
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address(), "0.0.0.0:7000");
  auto registry = NamespaceRegistry::Create(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto plant = registry->Find("plant_id");
  EXPECT_EQ(plant->ttl, absl::Hours(1));
  EXPECT_EQ(plant->wait_timeout, absl::Seconds(5));  // From defaults.
  EXPECT_EQ(plant->on_wait_timeout, WaitTimeoutPolicy::kFail);
  EXPECT_EQ(plant->breaker.consecutive_failures, 3u);
  auto other = registry->Find("other");
  EXPECT_EQ(other->ttl, absl::Hours(24));
  EXPECT_EQ(other->wait_timeout, absl::Seconds(5));
}

// Near caching is its own switch: read_cache does not turn it off
// (docs/ARCHITECTURE.md 3.8), and only a config where no namespace may be
// near-cached turns it off for the replica.
TEST(NamespaceConfigTest, NearCacheIsIndependentOfTheReadCache) {
  corral::v1::ServerConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        namespaces { name: "uncached" read_cache: false }
        namespaces { name: "far" near_cache: false }
      )pb",
      &config));
  auto registry = NamespaceRegistry::Create(config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  double beta = 0;
  EXPECT_FALSE(registry->UsesReadCache("uncached"));
  EXPECT_TRUE(registry->UsesNearCache("uncached", &beta));
  EXPECT_FALSE(registry->UsesNearCache("far", &beta));
  EXPECT_TRUE(registry->AnyNearCache());

  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        forbid_unknown_namespaces: true
        namespaces { name: "far" near_cache: false }
      )pb",
      &config));
  registry = NamespaceRegistry::Create(config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_FALSE(registry->AnyNearCache());
  config.set_forbid_unknown_namespaces(false);  // The defaults may be.
  registry = NamespaceRegistry::Create(config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_TRUE(registry->AnyNearCache());
}

TEST(NamespaceConfigTest, HedgePolicyAndComputeBudgetAreParsed) {
  std::string path = WriteTemp("budget.textproto", R"pb(
    namespaces {
      name: "plant_id"
      on_wait_timeout: HEDGE
      max_hedges: 2
      compute_budget {
        max_in_flight: 8
        rate_per_second: 2.5
        burst: 4
        enforce: false
      }
    }
    namespaces { name: "old" on_wait_timeout: COMPUTE_UNLOCKED }
  )pb");
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = NamespaceRegistry::Create(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto plant = registry->Find("plant_id");
  EXPECT_EQ(plant->on_wait_timeout, WaitTimeoutPolicy::kHedge);
  EXPECT_EQ(plant->max_hedges, 2u);
  EXPECT_TRUE(plant->compute_budget.enabled());
  EXPECT_EQ(plant->compute_budget.max_in_flight, 8u);
  EXPECT_EQ(plant->compute_budget.rate_per_second, 2.5);
  EXPECT_EQ(plant->compute_budget.burst, 4u);
  EXPECT_FALSE(plant->compute_budget.enforce);
  EXPECT_EQ(registry->Find("old")->on_wait_timeout,
            WaitTimeoutPolicy::kComputeUnlocked);
}

TEST(NamespaceConfigTest, BadComputeBudgetsNameTheField) {
  for (const auto& [text, field] :
       std::vector<std::pair<std::string, std::string>>{
           {"compute_budget { burst: 0 }", "compute_budget.burst"},
           {"compute_budget { rate_per_second: -1 }",
            "compute_budget.rate_per_second"},
           {"max_hedges: 1000", "max_hedges"},
       }) {
    corral::v1::ServerConfig config;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "namespaces { name: \"n\" " + text + " }", &config));
    auto registry = NamespaceRegistry::Create(config);
    EXPECT_FALSE(registry.ok()) << text;
    EXPECT_THAT(std::string(registry.status().message()),
                ::testing::HasSubstr(field));
  }
}

TEST(NamespaceConfigTest, JsonIsAccepted) {
  std::string path = WriteTemp("c.json", R"({"forbidUnknownNamespaces": true,
      "namespaces": [{"name": "a", "leaseTtl": "10s"}]})");
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = NamespaceRegistry::Create(*config);
  ASSERT_TRUE(registry.ok());
  EXPECT_EQ(registry->Find("a")->lease_ttl, absl::Seconds(10));
  EXPECT_THAT(registry->Find("b"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(NamespaceConfigTest, ErrorsSayWhere) {
  auto syntax = LoadServerConfig(
      WriteTemp("bad.textproto", "namespaces {\n  nme: \"x\"\n}\n"));
  EXPECT_THAT(syntax, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(syntax.status().message()), HasSubstr("line 2"));

  EXPECT_THAT(LoadServerConfig("/nonexistent/corral.textproto"),
              StatusIs(absl::StatusCode::kNotFound));

  corral::v1::ServerConfig dup;
  dup.add_namespaces()->set_name("a");
  dup.add_namespaces()->set_name("a");
  auto r = NamespaceRegistry::Create(dup);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("twice"));

  corral::v1::ServerConfig bad_name;
  bad_name.add_namespaces()->set_name("has space");
  EXPECT_THAT(NamespaceRegistry::Create(bad_name),
              StatusIs(absl::StatusCode::kInvalidArgument));

  corral::v1::ServerConfig negative;
  auto* ns = negative.add_namespaces();
  ns->set_name("a");
  ns->mutable_ttl()->set_seconds(-5);
  auto neg = NamespaceRegistry::Create(negative);
  EXPECT_THAT(neg, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(neg.status().message()),
              HasSubstr("namespaces[a].ttl"));

  corral::v1::ServerConfig rate;
  rate.mutable_defaults()->mutable_breaker()->set_failure_rate(1.5);
  EXPECT_THAT(NamespaceRegistry::Create(rate),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(NamespaceConfigTest, DynamicNamespaceLimits) {
  auto defaults = NamespaceRegistry::Create(corral::v1::ServerConfig());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->limits().max_dynamic_namespaces, 1000u);
  EXPECT_EQ(defaults->limits().dynamic_namespace_idle, absl::Minutes(10));
  auto config =
      LoadServerConfig(WriteTemp("limits.textproto",
                                 "namespaces { name: \"listed\" }\n"
                                 "limits { max_dynamic_namespaces: 5 "
                                 "dynamic_namespace_idle { seconds: 30 } }\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = NamespaceRegistry::Create(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ(registry->limits().max_dynamic_namespaces, 5u);
  EXPECT_EQ(registry->limits().dynamic_namespace_idle, absl::Seconds(30));
  EXPECT_TRUE(registry->IsListed("listed"));
  EXPECT_FALSE(registry->IsListed("other"));
  corral::v1::ServerConfig zero_idle;
  zero_idle.mutable_limits()->mutable_dynamic_namespace_idle();
  auto bad = NamespaceRegistry::Create(zero_idle);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("limits.dynamic_namespace_idle"));
}

}  // namespace
}  // namespace corral
