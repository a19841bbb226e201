// The clients' near cache (issue 19; docs/ARCHITECTURE.md 3.8) against real
// corralds, on Redis and on the embedded store: coherence across replicas,
// TTL, FLUSHALL and Redis restarts, stream loss, the memory bound, early
// refresh, and in-process single flight.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

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

using client::Client;
using client::ClientOptions;
using client::Source;

std::unique_ptr<Client> NearClient(const std::string& target,
                                   ClientOptions options = {}) {
  options.default_timeout = absl::Seconds(30);
  auto c = std::make_unique<Client>(target, options);
  EXPECT_TRUE(c->WaitNearCacheReady(absl::Seconds(10)));
  return c;
}

std::unique_ptr<Client> PlainClient(const std::string& target) {
  ClientOptions options;
  options.near_cache = false;
  return std::make_unique<Client>(target, options);
}

// Polls `c` (Get) until `key` answers `want` ("" = not found), for at most
// `limit`; how long it took (infinite: never).
absl::Duration UntilSeen(Client& c, const std::string& key,
                         const std::string& want,
                         absl::Duration limit = absl::Seconds(5)) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < limit) {
    auto got = c.Get("ns", key);
    if (got.ok() &&
        (want.empty() ? !got->found : got->found && got->value.value == want)) {
      return absl::Now() - start;
    }
  }
  return absl::InfiniteDuration();
}

// Gets `key` until an answer comes from the near cache.
bool UntilNearHit(Client& c, const std::string& key,
                  absl::Duration limit = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    auto got = c.Get("ns", key);
    if (got.ok() && got->found && got->value.source == Source::kNearCache)
      return true;
  }
  return false;
}

// `reader` holds "k" (value "one", written by `writer`): 100 Gets are all
// local, and each of two Sets and an Invalidate through `writer` reaches the
// reader's near cache within 1 s. Call under ASSERT_NO_FATAL_FAILURE.
void ExpectLocalHitsAndCoherentWrites(Client* reader, Client* writer) {
  ASSERT_TRUE(UntilNearHit(*reader, "k"));
  const uint64_t rpcs = reader->stats().get_rpcs;
  for (int i = 0; i < 100; ++i) {
    auto got = reader->Get("ns", "k");
    ASSERT_THAT(got.status(), IsOk());
    EXPECT_EQ(got->value.value, "one");
  }
  EXPECT_EQ(reader->stats().get_rpcs, rpcs) << "hits went to corrald";

  for (const std::string value : {"two", "three"}) {
    ASSERT_THAT(writer->Set("ns", "k", value).status(), IsOk());
    EXPECT_LT(UntilSeen(*reader, "k", value, absl::Seconds(1)),
              absl::Seconds(1))
        << value;
    ASSERT_TRUE(UntilNearHit(*reader, "k"));
  }
  ASSERT_THAT(writer->Invalidate("ns", "k").status(), IsOk());
  EXPECT_LT(UntilSeen(*reader, "k", "", absl::Seconds(1)), absl::Seconds(1));
  EXPECT_GE(reader->stats().near_invalidations, 3u);
}

template <typename Pred>
bool Eventually(Pred pred, absl::Duration limit = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

class NearCacheE2E : public ::testing::TestWithParam<bool> {
 protected:
  bool embedded() const { return GetParam(); }
  // Redis: two replicas (reader on 0, writer on 1); embedded: one.
  void SetUp() override {
    fleet_ = Fleet::Start(embedded() ? 1 : 2, embedded());
    ASSERT_NE(fleet_, nullptr);
  }
  const std::string& writer_target() {
    return fleet_->replica(fleet_->size() - 1).target();
  }
  std::unique_ptr<Fleet> fleet_;
};

TEST_P(NearCacheE2E, HitsAreLocalAndWritesAnywhereReachThem) {
  auto reader = NearClient(fleet_->replica(0).target());
  auto writer = PlainClient(writer_target());
  ASSERT_THAT(writer->Set("ns", "k", "one").status(), IsOk());
  ASSERT_LT(UntilSeen(*reader, "k", "one"), absl::Seconds(5));
  ASSERT_NO_FATAL_FAILURE(
      ExpectLocalHitsAndCoherentWrites(reader.get(), writer.get()));
}

TEST_P(NearCacheE2E, NeverServedPastItsTtl) {
  auto reader = NearClient(fleet_->replica(0).target());
  auto writer = PlainClient(writer_target());
  client::SetOptions set;
  set.ttl = absl::Milliseconds(400);
  ASSERT_THAT(writer->Set("ns", "t", "short", set).status(), IsOk());
  const absl::Time stored = absl::Now();  // The expiry is before this + ttl.
  ASSERT_TRUE(UntilNearHit(*reader, "t", absl::Milliseconds(300)));
  int late_hits = 0;
  while (absl::Now() < stored + absl::Milliseconds(800)) {
    const absl::Time asked = absl::Now();
    auto got = reader->Get("ns", "t");
    ASSERT_THAT(got.status(), IsOk());
    if (got->found && asked > stored + *set.ttl) ++late_hits;
  }
  EXPECT_EQ(late_hits, 0);
}

TEST_P(NearCacheE2E, StreamLossEmptiesTheNearCache) {
  auto reader = NearClient(fleet_->replica(0).target());
  auto writer = PlainClient(writer_target());
  ASSERT_THAT(writer->Set("ns", "s", "v").status(), IsOk());
  ASSERT_TRUE(UntilNearHit(*reader, "s"));
  fleet_->replica(0).Kill();
  EXPECT_TRUE(Eventually([&] { return reader->stats().near_entries == 0; }));
  client::CallOptions quick;
  quick.timeout = absl::Seconds(1);
  auto got = reader->Get("ns", "s", quick);
  EXPECT_FALSE(got.ok() && got->found &&
               got->value.source == Source::kNearCache);
}

TEST_P(NearCacheE2E, MemoryIsBoundedByEntriesAndBytes) {
  ClientOptions options;
  options.near_cache_max_entries = 10;
  options.near_cache_max_bytes = 64 << 10;
  auto reader = NearClient(fleet_->replica(0).target(), options);
  auto writer = PlainClient(writer_target());
  const std::string big(4000, 'x');
  for (int i = 0; i < 40; ++i) {
    const std::string key = absl::StrCat("m", i);
    ASSERT_THAT(writer->Set("ns", key, big).status(), IsOk());
    ASSERT_TRUE(UntilNearHit(*reader, key)) << key;
    const client::ClientStats s = reader->stats();
    ASSERT_LE(s.near_entries, 10u);
    ASSERT_LE(s.near_bytes, options.near_cache_max_bytes);
  }
}

TEST_P(NearCacheE2E, SingleFlightComputesOnceForManyThreads) {
  auto c = NearClient(fleet_->replica(0).target());
  std::atomic<int> computes{0};
  std::atomic<int> ok{0};
  {
    std::vector<JoiningThread> threads;
    for (int i = 0; i < 200; ++i) {
      threads.emplace_back([&] {
        auto r =
            c->GetOrCompute("ns", "cold", [&]() -> absl::StatusOr<std::string> {
              computes.fetch_add(1);
              absl::SleepFor(absl::Milliseconds(300));
              return std::string("computed");
            });
        if (r.ok() && r->value == "computed") ok.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(computes.load(), 1);
  EXPECT_EQ(ok.load(), 200);
  const client::ClientStats s = c->stats();
  EXPECT_LE(s.get_rpcs + s.get_or_compute_streams, 10u);
  EXPECT_GE(s.shared_calls, 150u);
}

TEST_P(NearCacheE2E, SingleFlightSharesAnErrorAndATimeoutLeavesTheOthers) {
  auto c = NearClient(fleet_->replica(0).target());
  std::atomic<int> computes{0};
  std::atomic<int> failed{0};
  std::atomic<int> peer_failed{0};
  {
    std::vector<JoiningThread> threads;
    for (int i = 0; i < 20; ++i) {
      threads.emplace_back([&] {
        auto r = c->GetOrCompute("ns", "failing",
                                 [&]() -> absl::StatusOr<std::string> {
                                   computes.fetch_add(1);
                                   absl::SleepFor(absl::Milliseconds(200));
                                   return absl::InternalError("upstream down");
                                 });
        if (!r.ok()) failed.fetch_add(1);
        // The others hear what corrald tells a failed compute's waiters.
        if (client::ReasonOf(r.status()) == client::kReasonPeerComputeFailed)
          peer_failed.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(computes.load(), 1);
  EXPECT_EQ(failed.load(), 20);
  EXPECT_EQ(peer_failed.load(), 19);

  // A caller that gives up early does not end the shared call.
  std::atomic<int> got_value{0};
  std::atomic<bool> computing{false};
  absl::Status impatient;
  {
    std::vector<JoiningThread> threads;
    threads.emplace_back([&] {
      auto r =
          c->GetOrCompute("ns", "slow", [&]() -> absl::StatusOr<std::string> {
            computing.store(true);
            absl::SleepFor(absl::Milliseconds(600));
            return std::string("slow-value");
          });
      if (r.ok() && r->value == "slow-value") got_value.fetch_add(1);
    });
    ASSERT_TRUE(Eventually([&] { return computing.load(); }));
    threads.emplace_back([&] {
      client::GetOrComputeOptions quick;
      quick.timeout = absl::Milliseconds(100);
      impatient = c->GetOrCompute(
                       "ns", "slow",
                       []() -> absl::StatusOr<std::string> {
                         return std::string("never");
                       },
                       quick)
                      .status();
    });
    for (int i = 0; i < 5; ++i) {
      threads.emplace_back([&] {
        auto r =
            c->GetOrCompute("ns", "slow", []() -> absl::StatusOr<std::string> {
              return std::string("never");
            });
        if (r.ok() && r->value == "slow-value") got_value.fetch_add(1);
      });
    }
  }
  EXPECT_TRUE(absl::IsDeadlineExceeded(impatient)) << impatient;
  EXPECT_EQ(got_value.load(), 6);
}

TEST_P(NearCacheE2E, GetOrComputeHitsAreLocalAfterTheFill) {
  auto c = NearClient(fleet_->replica(0).target());
  auto compute = []() -> absl::StatusOr<std::string> {
    return std::string("v");
  };
  ASSERT_THAT(c->GetOrCompute("ns", "g", compute).status(), IsOk());
  bool near = false;
  for (int i = 0; i < 200 && !near; ++i) {
    auto r = c->GetOrCompute("ns", "g", compute);
    ASSERT_THAT(r.status(), IsOk());
    near = r->source == Source::kNearCache;
  }
  EXPECT_TRUE(near);
  // Opting out asks corrald.
  client::GetOrComputeOptions remote;
  remote.near_cache = false;
  auto r = c->GetOrCompute("ns", "g", compute, remote);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->source, Source::kCache);
}

// After a write, the first Get that reads the value through a tracked read
// is granted: the second is a near-cache hit.
TEST_P(NearCacheE2E, OneGetAfterAWriteIsEnough) {
  auto reader = NearClient(fleet_->replica(0).target());
  auto writer = PlainClient(writer_target());
  // Redis: tracking turns on shortly after corrald connects.
  ASSERT_THAT(writer->Set("ns", "warm", "w").status(), IsOk());
  ASSERT_TRUE(UntilNearHit(*reader, "warm"));
  for (const std::string value : {"one", "two"}) {
    ASSERT_THAT(writer->Set("ns", "once", value).status(), IsOk());
    ASSERT_LT(UntilSeen(*reader, "once", value), absl::Seconds(5));
    const uint64_t rpcs = reader->stats().get_rpcs;
    auto got = reader->Get("ns", "once");
    ASSERT_THAT(got.status(), IsOk());
    EXPECT_EQ(got->value.value, value);
    EXPECT_EQ(got->value.source, Source::kNearCache) << value;
    EXPECT_EQ(reader->stats().get_rpcs, rpcs) << value;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, NearCacheE2E, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Embedded" : "Redis";
                         });

// Near caching without the read cache: --read_cache_mb=0, or a namespace
// with read_cache: false. corrald still tracks the reads it grants, so a
// write anywhere reaches the reader's near cache.
struct NoReadCache {
  bool embedded;
  bool flag;  // --read_cache_mb=0; else the namespace's read_cache: false.
};

class NearCacheWithoutReadCacheE2E
    : public ::testing::TestWithParam<NoReadCache> {
 protected:
  void SetUp() override {
    const NoReadCache p = GetParam();
    fleet_ = p.flag ? Fleet::Start(p.embedded ? 1 : 2, p.embedded, "",
                                   {"--read_cache_mb=0"})
                    : Fleet::Start(p.embedded ? 1 : 2, p.embedded,
                                   "namespaces { name: \"ns\" "
                                   "read_cache: false }");
    ASSERT_NE(fleet_, nullptr);
  }
  std::unique_ptr<Fleet> fleet_;
};

TEST_P(NearCacheWithoutReadCacheE2E, GrantsAndStaysCoherent) {
  auto reader = NearClient(fleet_->replica(0).target());
  auto writer = PlainClient(fleet_->replica(fleet_->size() - 1).target());
  ASSERT_THAT(writer->Set("ns", "k", "one").status(), IsOk());
  ASSERT_NO_FATAL_FAILURE(
      ExpectLocalHitsAndCoherentWrites(reader.get(), writer.get()));
  // And the read cache really held nothing.
  auto text = HttpGet(fleet_->replica(0).metrics_address(), "/metrics");
  ASSERT_THAT(text.status(), IsOk());
  auto entries = MetricValue(*text, "corral_read_cache_entries");
  ASSERT_THAT(entries.status(), IsOk());
  EXPECT_EQ(*entries, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, NearCacheWithoutReadCacheE2E,
    ::testing::Values(NoReadCache{false, true}, NoReadCache{true, true},
                      NoReadCache{false, false}, NoReadCache{true, false}),
    [](const ::testing::TestParamInfo<NoReadCache>& info) {
      return absl::StrCat(info.param.embedded ? "Embedded" : "Redis",
                          info.param.flag ? "ZeroMb" : "NamespaceOff");
    });

// Redis only: changes that bypass corral's writes.
TEST(NearCacheRedisE2E, FlushallAndRedisRestartEmptyIt) {
  auto fleet = Fleet::Start(1);
  ASSERT_NE(fleet, nullptr);
  auto reader = NearClient(fleet->replica(0).target());
  auto writer = PlainClient(fleet->replica(0).target());
  ASSERT_THAT(writer->Set("ns", "f", "v").status(), IsOk());
  ASSERT_TRUE(UntilNearHit(*reader, "f"));
  ASSERT_THAT(fleet->redis().Command({"FLUSHALL"}).status(), IsOk());
  EXPECT_LT(UntilSeen(*reader, "f", "", absl::Seconds(1)), absl::Seconds(1));

  ASSERT_THAT(writer->Set("ns", "f", "w").status(), IsOk());
  ASSERT_TRUE(UntilNearHit(*reader, "f"));
  ASSERT_THAT(fleet->redis().Restart(), IsOk());
  // The restarted Redis is empty: once corrald reconnects, no client of it
  // may still answer the old value.
  EXPECT_TRUE(Eventually(
      [&] {
        auto got = reader->Get("ns", "f");
        return got.ok() && !got->found;
      },
      absl::Seconds(10)));
  EXPECT_GE(reader->stats().near_resets, 1u);
}

TEST(NearCacheRedisE2E, ANamespaceCanForbidIt) {
  auto fleet =
      Fleet::Start(1, false, "namespaces { name: \"ns\" near_cache: false }");
  ASSERT_NE(fleet, nullptr);
  auto reader = NearClient(fleet->replica(0).target());
  ASSERT_THAT(reader->Set("ns", "x", "v").status(), IsOk());
  for (int i = 0; i < 200; ++i) {
    auto got = reader->Get("ns", "x");
    ASSERT_THAT(got.status(), IsOk());
    ASSERT_NE(got->value.source, Source::kNearCache);
  }
  EXPECT_EQ(reader->stats().near_planted, 0u);
}

// A value inside its early-refresh window goes to corrald, so one caller
// still gets the REFRESH lease before the value expires.
TEST(NearCacheRedisE2E, EarlyRefreshStillHappens) {
  auto fleet = Fleet::Start(
      1, false, "namespaces { name: \"ns\" early_refresh_beta: 1 }");
  ASSERT_NE(fleet, nullptr);
  auto c = NearClient(fleet->replica(0).target());
  client::GetOrComputeOptions options;
  options.ttl = absl::Seconds(2);
  std::atomic<int> computes{0};
  auto compute = [&]() -> absl::StatusOr<std::string> {
    computes.fetch_add(1);
    absl::SleepFor(absl::Milliseconds(150));  // compute_time ~150 ms.
    return std::string("v");
  };
  ASSERT_THAT(c->GetOrCompute("ns", "r", compute, options).status(), IsOk());
  const absl::Time filled = absl::Now();
  bool refreshed = false;
  int near_hits = 0;
  while (!refreshed && absl::Now() < filled + absl::Seconds(2)) {
    auto r = c->GetOrCompute("ns", "r", compute, options);
    ASSERT_THAT(r.status(), IsOk());
    if (r->source == Source::kNearCache) ++near_hits;
    refreshed = r->lease_mode == client::LeaseMode::kRefresh;
  }
  EXPECT_TRUE(refreshed) << "no refresh before the TTL";
  EXPECT_GT(near_hits, 0);
  EXPECT_EQ(computes.load(), 2);
}

}  // namespace
}  // namespace corral::testing
