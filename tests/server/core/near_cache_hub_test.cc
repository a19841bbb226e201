// NearCacheHub: registrations, one-shot invalidations, resets, bounds; and
// the read cache telling it of every invalidation.
#include "server/core/near_cache_hub.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/read_cache.h"

namespace corral {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Records what the hub pushes.
class RecordingSink final : public NearCacheSink {
 public:
  void Invalidate(std::vector<CacheKey> keys) override {
    for (CacheKey& k : keys) invalidated.push_back(k.key);
  }
  void Reset(absl::string_view reason) override {
    resets.push_back(std::string(reason));
  }
  void End() override { ended = true; }
  std::vector<std::string> invalidated;
  std::vector<std::string> resets;
  bool ended = false;
};

const CacheKey kA{"ns", "a"};
const CacheKey kB{"ns", "b"};

TEST(NearCacheHubTest, PushesAChangeOnceToTheSessionsThatRegisteredIt) {
  NearCacheHub hub;
  auto one = std::make_shared<RecordingSink>();
  auto two = std::make_shared<RecordingSink>();
  const std::string s1 = hub.Open(one);
  const std::string s2 = hub.Open(two);
  EXPECT_EQ(s1.size(), 16u);
  EXPECT_NE(s1, s2);
  EXPECT_TRUE(hub.Register(s1, kA));
  EXPECT_TRUE(hub.Register(s1, kA));  // Idempotent.
  EXPECT_TRUE(hub.Register(s2, kA));
  EXPECT_TRUE(hub.Register(s2, kB));
  EXPECT_EQ(hub.registrations(), 3u);
  hub.OnInvalidate(&kA);
  EXPECT_THAT(one->invalidated, ElementsAre("a"));
  EXPECT_THAT(two->invalidated, ElementsAre("a"));
  // One-shot: the next change of a is not pushed until a Get registers it.
  hub.OnInvalidate(&kA);
  EXPECT_THAT(one->invalidated, ElementsAre("a"));
  EXPECT_EQ(hub.registrations(), 1u);
  EXPECT_EQ(hub.keys_pushed(), 2u);
}

TEST(NearCacheHubTest, UnknownAndClosedSessionsRegisterNothing) {
  NearCacheHub hub;
  auto sink = std::make_shared<RecordingSink>();
  EXPECT_FALSE(hub.Register("no-such-session", kA));
  const std::string s = hub.Open(sink);
  ASSERT_TRUE(hub.Register(s, kA));
  hub.Close(s);
  EXPECT_EQ(hub.sessions(), 0u);
  EXPECT_EQ(hub.registrations(), 0u);
  EXPECT_FALSE(hub.Register(s, kA));
  hub.OnInvalidate(&kA);
  EXPECT_THAT(sink->invalidated, IsEmpty());
}

TEST(NearCacheHubTest, InvalidateAllResetsEverySession) {
  NearCacheHub hub;
  auto sink = std::make_shared<RecordingSink>();
  const std::string s = hub.Open(sink);
  ASSERT_TRUE(hub.Register(s, kA));
  hub.OnInvalidate(nullptr);
  EXPECT_EQ(sink->resets.size(), 1u);
  EXPECT_EQ(hub.registrations(), 0u);
  hub.OnInvalidate(&kA);  // Forgotten with the reset.
  EXPECT_THAT(sink->invalidated, IsEmpty());
}

TEST(NearCacheHubTest, TooManyKeysResetTheSession) {
  NearCacheHub hub;
  auto sink = std::make_shared<RecordingSink>();
  const std::string s = hub.Open(sink);
  for (size_t i = 0; i < NearCacheHub::kMaxKeysPerSession; ++i)
    ASSERT_TRUE(hub.Register(s, CacheKey{"ns", std::to_string(i)}));
  EXPECT_THAT(sink->resets, IsEmpty());
  ASSERT_TRUE(hub.Register(s, kA));
  EXPECT_THAT(sink->resets, ElementsAre("too-many-keys"));
  EXPECT_EQ(hub.registrations(), 1u);
}

TEST(NearCacheHubTest, ShutdownEndsEverySession) {
  NearCacheHub hub;
  auto sink = std::make_shared<RecordingSink>();
  hub.Open(sink);
  hub.Shutdown();
  EXPECT_TRUE(sink->ended);
  auto late = std::make_shared<RecordingSink>();
  EXPECT_EQ(hub.Open(late), "");
  EXPECT_TRUE(late->ended);
}

TEST(NearCacheHubTest, TheReadCacheReportsEveryInvalidation) {
  NearCacheHub hub;
  ReadCacheOptions options;
  options.max_bytes = 1 << 20;
  options.on_invalidate = [&hub](const CacheKey* key) {
    hub.OnInvalidate(key);
  };
  ReadCache cache(options);
  auto sink = std::make_shared<RecordingSink>();
  const std::string s = hub.Open(sink);
  cache.SetCoherent(true);  // Coherence gained: a reset.
  ASSERT_TRUE(hub.Register(s, kA));
  cache.Invalidate(kA);  // Not cached here: still reported.
  EXPECT_THAT(sink->invalidated, ElementsAre("a"));
  ASSERT_TRUE(hub.Register(s, kB));
  cache.SetCoherent(false);
  EXPECT_EQ(sink->resets.size(), 2u);
}

TEST(NearCacheHubTest, GrantsEndAtTheTtlOrTheEarlyRefreshWindow) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  const absl::Time expiry = now + absl::Seconds(60);
  // No compute time (a Set) or beta 0: until the TTL.
  EXPECT_EQ(NearCacheFor(now, expiry, absl::ZeroDuration(), 1.0),
            absl::Seconds(60));
  EXPECT_EQ(NearCacheFor(now, expiry, absl::Seconds(1), 0.0),
            absl::Seconds(60));
  // δ = 1 s, β = 1: the window opens ln(1000) ≈ 6.9 s before expiry.
  const absl::Duration grant = NearCacheFor(now, expiry, absl::Seconds(1), 1);
  EXPECT_GT(grant, absl::Seconds(53));
  EXPECT_LT(grant, absl::Seconds(54));
  // Inside the window, or expired: nothing.
  EXPECT_EQ(
      NearCacheFor(expiry - absl::Seconds(1), expiry, absl::Seconds(1), 1.0),
      absl::ZeroDuration());
  EXPECT_EQ(NearCacheFor(expiry + absl::Seconds(1), expiry,
                         absl::ZeroDuration(), 1.0),
            absl::ZeroDuration());
}

}  // namespace
}  // namespace corral
