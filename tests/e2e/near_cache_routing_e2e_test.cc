// The near cache behind a load-balancing channel (docs/ARCHITECTURE.md 3.8,
// "Routing"): two corralds on one Redis, one client whose channel spreads
// its calls over both (round_robin). corrald grants only to the session it
// holds, so the client sends its NearCache stream and the Gets it may keep
// over a channel pinned to one replica: every key is near-cached after one
// Get, and writes through either replica reach it.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/http_get.h"
#include "tests/support/poll.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

using client::Client;
using client::ClientOptions;
using client::Source;

// "ipv4:127.0.0.1:p0,127.0.0.1:p1": both replicas behind one target.
std::string BothReplicas(Fleet& fleet) {
  std::vector<std::string> addresses;
  for (int i = 0; i < fleet.size(); ++i)
    addresses.push_back(fleet.replica(i).target());
  return absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
}

// RPCs of `method` replica `i` finished.
double Rpcs(Fleet& fleet, int i, const std::string& method) {
  auto text = HttpGet(fleet.replica(i).metrics_address(), "/metrics");
  if (!text.ok()) return -1;
  auto v = MetricValue(*text, "corral_rpc_requests_total",
                       {{"method", method}, {"code", "OK"}});
  return v.ok() ? *v : 0;
}

class NearCacheRoutingE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_ = Fleet::Start(2);
    ASSERT_NE(fleet_, nullptr);
  }
  std::unique_ptr<Client> SpreadingClient(bool near_cache) {
    ClientOptions options;
    options.default_timeout = absl::Seconds(30);
    options.load_balancing = "round_robin";
    options.near_cache = near_cache;
    return std::make_unique<Client>(BothReplicas(*fleet_), options);
  }
  std::unique_ptr<Fleet> fleet_;
};

TEST_F(NearCacheRoutingE2E, GetsReachTheReplicaHoldingTheStream) {
  auto c = SpreadingClient(true);
  ASSERT_TRUE(c->WaitNearCacheReady(absl::Seconds(10)));
  // The client's other calls do spread: both replicas answer its Sets
  // (round_robin uses every replica once both are connected).
  int set = 0;
  ASSERT_TRUE(PollUntil(
      [&] {
        EXPECT_THAT(c->Set("ns", absl::StrCat("k", set++ % 20), "v").status(),
                    IsOk());
        return Rpcs(*fleet_, 0, "Set") > 0 && Rpcs(*fleet_, 1, "Set") > 0;
      },
      absl::Seconds(10)));
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(c->Set("ns", absl::StrCat("k", i), "v").status(), IsOk());
  }
  // Redis tracking turns on shortly after a corrald connects.
  ASSERT_TRUE(PollUntil([&] {
    auto got = c->Get("ns", "k0");
    return got.ok() && got->value.source == Source::kNearCache;
  }));
  // One Get per key from corrald; the second is local, for every key.
  for (int i = 1; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    auto first = c->Get("ns", key);
    ASSERT_THAT(first.status(), IsOk());
    EXPECT_EQ(first->value.source, Source::kCache) << key;
    auto second = c->Get("ns", key);
    ASSERT_THAT(second.status(), IsOk());
    EXPECT_EQ(second->value.source, Source::kNearCache) << key;
  }
  // A write through either replica reaches the near cache.
  for (int i = 0; i < 2; ++i) {
    ClientOptions plain;
    plain.near_cache = false;
    Client writer(fleet_->replica(i).target(), plain);
    const std::string value = absl::StrCat("from-", i);
    ASSERT_THAT(writer.Set("ns", "k1", value).status(), IsOk());
    EXPECT_TRUE(PollUntil(
        [&] {
          auto got = c->Get("ns", "k1");
          return got.ok() && got->value.value == value;
        },
        absl::Seconds(1)))
        << value;
  }
}

}  // namespace
}  // namespace corral::testing
