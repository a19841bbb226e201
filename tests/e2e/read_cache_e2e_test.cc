// The read cache across a fleet: two corralds on one Redis. Replica B
// answers hits from its cache; replica A's writes reach B one invalidation
// message later, and B's readers never see a value go back in time.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/http_get.h"
#include "tests/support/joining_thread.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

double CacheHits(CorraldProcess& replica) {
  auto text = HttpGet(replica.metrics_address(), "/metrics");
  if (!text.ok()) return -1;
  auto hits =
      MetricValue(*text, "corral_read_cache_hits_total", {{"namespace", "ns"}});
  return hits.ok() ? *hits : 0;
}

// Reads `key` on `c` until it answers `want` ("" = not found); how long that
// took.
absl::Duration UntilSeen(client::Client& c, const std::string& key,
                         const std::string& want) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(5)) {
    auto got = c.Get("ns", key);
    if (got.ok() &&
        (want.empty() ? !got->found : got->found && got->value.value == want)) {
      return absl::Now() - start;
    }
  }
  return absl::InfiniteDuration();
}

TEST(ReadCacheE2E, HitsComeFromTheCacheAndAnotherReplicasWritesReachIt) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  auto a = fleet->ClientFor(0);
  // B's hits must reach B's read cache, not stop in the client's near cache.
  client::ClientOptions plain;
  plain.near_cache = false;
  auto b = std::make_unique<client::Client>(fleet->replica(1).target(), plain);
  ASSERT_THAT(a->Set("ns", "k", "one").status(), IsOk());
  ASSERT_LT(UntilSeen(*b, "k", "one"), absl::Seconds(5));
  // Hot reads on B are cache hits (tracking is on shortly after start).
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  double before = CacheHits(fleet->replica(1));
  while (absl::Now() < deadline) {
    for (int i = 0; i < 50; ++i)
      ASSERT_THAT(b->Get("ns", "k").status(), IsOk());
    if (CacheHits(fleet->replica(1)) >= before + 40) break;
  }
  EXPECT_GE(CacheHits(fleet->replica(1)), before + 40)
      << "B never served hits from its cache";

  // A's writes and invalidations reach B's cache.
  for (const std::string value : {"two", "three"}) {
    ASSERT_THAT(a->Set("ns", "k", value).status(), IsOk());
    EXPECT_LT(UntilSeen(*b, "k", value), absl::Seconds(1)) << value;
  }
  ASSERT_THAT(a->Invalidate("ns", "k").status(), IsOk());
  EXPECT_LT(UntilSeen(*b, "k", ""), absl::Seconds(1));

  // A write straight to Redis, bypassing corral, is seen too.
  ASSERT_THAT(a->Set("ns", "k", "four").status(), IsOk());
  ASSERT_LT(UntilSeen(*b, "k", "four"), absl::Seconds(1));
  ASSERT_THAT(fleet->redis().Command({"FLUSHALL"}).status(), IsOk());
  EXPECT_LT(UntilSeen(*b, "k", ""), absl::Seconds(1));
}

// One writer on A counts up; eight readers on B read as fast as they can.
// Each reader's values never go backwards, and once the writer is done
// every reader sees its last value at once (well, within a second).
TEST(ReadCacheE2E, ReadersOnAnotherReplicaNeverGoBackInTime) {
  auto fleet = Fleet::Start(2);
  ASSERT_NE(fleet, nullptr);
  auto a = fleet->ClientFor(0);
  ASSERT_THAT(a->Set("ns", "counter", "0").status(), IsOk());
  constexpr int kWrites = 300;
  std::atomic<bool> writing{true};
  std::atomic<int> backwards{0}, errors{0}, reads{0};
  std::vector<JoiningThread> readers;
  for (int r = 0; r < 8; ++r) {
    readers.emplace_back([&] {
      auto b = fleet->ClientFor(1);
      int last = 0;
      auto read_once = [&] {
        auto got = b->Get("ns", "counter");
        int v = 0;
        if (!got.ok() || !got->found ||
            !absl::SimpleAtoi(got->value.value, &v)) {
          ++errors;
          return last;
        }
        ++reads;
        if (v < last) ++backwards;
        last = std::max(last, v);
        return v;
      };
      while (writing.load()) read_once();
      // The last write is done: it must be visible within a second.
      const absl::Time deadline = absl::Now() + absl::Seconds(1);
      while (read_once() != kWrites && absl::Now() < deadline) {
      }
      if (last != kWrites) ++errors;
    });
  }
  for (int i = 1; i <= kWrites; ++i) {
    ASSERT_THAT(a->Set("ns", "counter", absl::StrCat(i)).status(), IsOk());
  }
  writing = false;
  for (auto& t : readers) t.join();
  EXPECT_EQ(backwards.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(reads.load(), kWrites);
}

}  // namespace
}  // namespace corral::testing
