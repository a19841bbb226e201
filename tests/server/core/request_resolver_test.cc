// Request resolution alone (server/core/request_resolver.h): a key's
// namespace settings and a Lookup's durations against the defaults and the
// limits. Pure: no store, no loop.
#include "server/core/request_resolver.h"

#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/core/observer.h"
#include "tests/server/core/recording_observer.h"

namespace corral {
namespace {

NamespaceRegistry Registry(bool forbid_unknown) {
  corral::v1::ServerConfig config;
  auto* listed = config.add_namespaces();
  listed->set_name("listed");
  listed->mutable_ttl()->set_seconds(60);
  config.set_forbid_unknown_namespaces(forbid_unknown);
  config.mutable_limits()->mutable_max_wait()->set_seconds(120);
  auto registry = NamespaceRegistry::Create(config);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return *std::move(registry);
}

class RequestResolverTest : public ::testing::Test {
 protected:
  explicit RequestResolverTest(bool forbid_unknown = false)
      : registry_(Registry(forbid_unknown)),
        tracker_(registry_, clock_, observer_),
        resolver_(registry_, tracker_) {}

  LookupRequest Lookup(std::string ns, std::string key) {
    LookupRequest request;
    request.key = CacheKey{std::move(ns), std::move(key)};
    return request;
  }

  FakeClock clock_;
  testing::RecordingObserver observer_;
  NamespaceRegistry registry_;
  NamespaceTracker tracker_;
  RequestResolver resolver_;
};

TEST_F(RequestResolverTest, AnUnsetDurationTakesTheNamespaceDefault) {
  auto resolved = resolver_.ResolveLookup(Lookup("listed", "k"));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->ttl, absl::Seconds(60));
  EXPECT_EQ(resolved->wait_timeout, resolved->ns.wait_timeout);
  EXPECT_EQ(resolved->lease_ttl, resolved->ns.lease_ttl);
}

TEST_F(RequestResolverTest, SetDurationsAreCheckedAgainstTheLimits) {
  LookupRequest request = Lookup("listed", "k");
  request.wait_timeout = absl::Seconds(5);
  request.ttl = absl::Seconds(7);
  auto resolved = resolver_.ResolveLookup(request);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->wait_timeout, absl::Seconds(5));
  EXPECT_EQ(resolved->ttl, absl::Seconds(7));
  request.wait_timeout = absl::Seconds(121);  // Past limits.max_wait.
  EXPECT_TRUE(
      absl::IsInvalidArgument(resolver_.ResolveLookup(request).status()));
  request.wait_timeout = absl::ZeroDuration();  // 0: do not wait.
  EXPECT_TRUE(resolver_.ResolveLookup(request).ok());
  request.ttl = absl::ZeroDuration();  // A TTL must be positive.
  EXPECT_TRUE(
      absl::IsInvalidArgument(resolver_.ResolveLookup(request).status()));
}

TEST_F(RequestResolverTest, BadKeysAndLabelsAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      resolver_.ResolveLookup(Lookup("bad namespace", "k")).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      resolver_.ResolveLookup(Lookup("listed", "")).status()));
  LookupRequest request = Lookup("listed", "k");
  request.worker_id = "a\x01";
  EXPECT_TRUE(
      absl::IsInvalidArgument(resolver_.ResolveLookup(request).status()));
}

TEST_F(RequestResolverTest, AnUnlistedNamespaceGetsTheDefaultsAndIsCounted) {
  auto settings = resolver_.Settings(CacheKey{"dynamic", "k"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->ttl, registry_.defaults().ttl);
  EXPECT_EQ(tracker_.dynamic_count(), 1u);
}

class ForbiddingResolverTest : public RequestResolverTest {
 protected:
  ForbiddingResolverTest() : RequestResolverTest(/*forbid_unknown=*/true) {}
};

TEST_F(ForbiddingResolverTest, AnUnknownNamespaceIsNotFound) {
  auto settings = resolver_.Settings(CacheKey{"dynamic", "k"});
  EXPECT_TRUE(absl::IsNotFound(settings.status())) << settings.status();
  EXPECT_EQ(ReasonOf(settings.status()), kReasonUnknownNamespace);
  EXPECT_TRUE(resolver_.Settings("listed").ok());
}

}  // namespace
}  // namespace corral
