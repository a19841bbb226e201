#include "server/core/namespace_tracker.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "tests/server/core/null_observer.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

class RecordingObserver : public ::corral::testing::NullObserver {
 public:
  void OnNamespaceFirstUse(absl::string_view ns) override {
    first_uses.emplace_back(ns);
  }
  void OnNamespaceEvicted(absl::string_view ns) override {
    evicted.emplace_back(ns);
  }
  std::vector<std::string> first_uses;
  std::vector<std::string> evicted;
};

NamespaceRegistry Registry(uint32_t max_dynamic) {
  corral::v1::ServerConfig config;
  config.add_namespaces()->set_name("listed");
  config.mutable_limits()->set_max_dynamic_namespaces(max_dynamic);
  config.mutable_limits()->mutable_dynamic_namespace_idle()->set_seconds(600);
  return *NamespaceRegistry::Create(config);
}

TEST(NamespaceTrackerTest, BoundsDynamicNamespacesNotListedOnes) {
  NamespaceRegistry registry = Registry(2);
  FakeClock clock;
  RecordingObserver observer;
  NamespaceTracker tracker(registry, clock, observer);
  EXPECT_OK(tracker.Use("a"));
  EXPECT_OK(tracker.Use("b"));
  EXPECT_OK(tracker.Use("a"));  // Known: no new slot.
  absl::Status refused = tracker.Use("c");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(ReasonOf(refused), "too-many-namespaces");
  EXPECT_OK(tracker.Use("listed"));  // Never counted.
  EXPECT_EQ(tracker.dynamic_count(), 2u);
  // Each namespace's first use is reported once; a refused one never.
  EXPECT_THAT(observer.first_uses, ElementsAre("a", "b", "listed"));
}

TEST(NamespaceTrackerTest, ForgetsIdleOnesUnlessBusy) {
  NamespaceRegistry registry = Registry(3);
  FakeClock clock;
  RecordingObserver observer;
  NamespaceTracker tracker(registry, clock, observer);
  ASSERT_OK(tracker.Use("a"));
  ASSERT_OK(tracker.Use("b"));
  ASSERT_OK(tracker.Use("c"));
  ASSERT_OK(tracker.Use("listed"));
  auto never_busy = [](const std::string&) { return false; };
  clock.Advance(absl::Minutes(9));
  EXPECT_TRUE(tracker.EvictIdle(never_busy).empty());
  ASSERT_OK(tracker.Use("a"));  // Used again: idle from now.
  clock.Advance(absl::Minutes(2));
  // b and c are idle for 11 min; c has a call in flight.
  auto evicted =
      tracker.EvictIdle([](const std::string& ns) { return ns == "c"; });
  EXPECT_THAT(evicted, ElementsAre("b"));
  EXPECT_THAT(observer.evicted, ElementsAre("b"));
  EXPECT_EQ(tracker.dynamic_count(), 2u);
  // Its slot is free again, and a returning namespace is new again.
  ASSERT_OK(tracker.Use("d"));
  EXPECT_THAT(tracker.Use("b"), StatusIs(absl::StatusCode::kResourceExhausted));
  clock.Advance(absl::Minutes(11));
  EXPECT_THAT(tracker.EvictIdle(never_busy),
              UnorderedElementsAre("a", "c", "d"));
  EXPECT_OK(tracker.Use("b"));
  EXPECT_EQ(
      std::count(observer.first_uses.begin(), observer.first_uses.end(), "b"),
      2);
  EXPECT_EQ(tracker.dynamic_count(), 1u);
}

TEST(NamespaceTrackerTest, ZeroRefusesEveryUnlistedNamespace) {
  NamespaceRegistry registry = Registry(0);
  FakeClock clock;
  RecordingObserver observer;
  NamespaceTracker tracker(registry, clock, observer);
  EXPECT_OK(tracker.Use("listed"));
  EXPECT_THAT(tracker.Use("other"),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace corral
