// Redis Cluster routing without a server: CRC16 and hash tags, reading
// CLUSTER SLOTS (defensively), MOVED/ASK errors, and redis-cluster:// URIs.
// The slots are checked against a real cluster's CLUSTER KEYSLOT in
// redis_cluster_test.cc.
#include "server/store/redis_cluster_slots.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

RedisReply Int(int64_t v) {
  RedisReply r;
  r.type = RedisReply::Type::kInteger;
  r.integer = v;
  return r;
}
RedisReply Str(std::string s) {
  RedisReply r;
  r.type = RedisReply::Type::kString;
  r.str = std::move(s);
  return r;
}
RedisReply Arr(std::vector<RedisReply> elements) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  r.elements = std::move(elements);
  return r;
}
RedisReply Range(int64_t start, int64_t end, std::string host, int64_t port) {
  return Arr({Int(start), Int(end),
              Arr({Str(std::move(host)), Int(port), Str("id")}),
              Arr({Str("127.0.0.1"), Int(9999), Str("replica")})});
}

TEST(RedisCrc16Test, MatchesTheXmodemCheckValue) {
  // The standard check value of CRC-16/XMODEM.
  EXPECT_EQ(RedisCrc16("123456789"), 0x31C3);
  EXPECT_EQ(RedisCrc16(""), 0);
}

TEST(RedisHashSlotTest, HashesTheTagWhenThereIsOne) {
  EXPECT_EQ(RedisHashSlot("123456789"), 0x31C3 % 16384);
  // Keys that share a tag share a slot, whatever surrounds it.
  EXPECT_EQ(RedisHashSlot("{user1000}.following"),
            RedisHashSlot("{user1000}.followers"));
  EXPECT_EQ(RedisHashSlot("a{tag}b"), RedisHashSlot("tag"));
  // Only the first '{' and the first '}' after it count.
  EXPECT_EQ(RedisHashSlot("x{a}{b}"), RedisHashSlot("a"));
  EXPECT_EQ(RedisHashSlot("x{a{b}c"), RedisHashSlot("a{b"));
  // An empty tag, or none closed: the whole key.
  EXPECT_EQ(RedisHashSlot("{}x"), RedisCrc16("{}x") % 16384);
  EXPECT_EQ(RedisHashSlot("x{y"), RedisCrc16("x{y") % 16384);
  EXPECT_EQ(RedisHashSlot("}{"), RedisCrc16("}{") % 16384);
}

TEST(RedisHashSlotTest, EveryKeyOfOneItemSharesTheItemsSlot) {
  const CacheKey key{"ns", "some key {with} braces"};
  const RedisItemKeys keys = RedisKeysFor(key);
  const int slot = RedisHashSlot(keys.value);
  EXPECT_EQ(RedisHashSlot(keys.lock), slot);
  EXPECT_EQ(RedisHashSlot(keys.fence), slot);
  EXPECT_EQ(RedisHashSlot(keys.failure), slot);
  EXPECT_EQ(RedisHashSlot(keys.channel), slot);
  EXPECT_EQ(RedisHashSlot(RedisChannelFor(key)), slot);
  // A namespace's breaker has its own tag.
  EXPECT_EQ(RedisHashSlot(RedisBreakerKey("ns")), RedisHashSlot("ns"));
}

TEST(RedisSlotMapTest, ReadsClusterSlots) {
  const RedisAddress asked{"10.0.0.9", 7000};
  auto map = RedisSlotMap::Parse(Arr({Range(0, 5460, "10.0.0.1", 7000),
                                      Range(5461, 10922, "10.0.0.2", 7001),
                                      Range(10923, 16383, "", 7002)}),
                                 asked);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->covered(), 16384);
  ASSERT_EQ(map->masters().size(), 3u);
  EXPECT_EQ(RedisNodeName(*map->Owner(0)), "10.0.0.1:7000");
  EXPECT_EQ(RedisNodeName(*map->Owner(5461)), "10.0.0.2:7001");
  // An empty host is the node that was asked.
  EXPECT_EQ(RedisNodeName(*map->Owner(16383)), "10.0.0.9:7002");
  EXPECT_EQ(map->Owner(16384), nullptr);
  EXPECT_EQ(map->Owner(-1), nullptr);
  EXPECT_EQ(map->SlotsOf("10.0.0.2:7001").size(), 10922u - 5461u + 1u);

  map->Assign(5, RedisAddress{"10.0.0.4", 7005});
  EXPECT_EQ(RedisNodeName(*map->Owner(5)), "10.0.0.4:7005");
  EXPECT_EQ(map->masters().size(), 4u);
}

TEST(RedisSlotMapTest, LeavesUncoveredSlotsWithoutAnOwner) {
  auto map = RedisSlotMap::Parse(Arr({Range(100, 199, "h", 1)}), {"a", 2});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->covered(), 100);
  EXPECT_EQ(map->Owner(99), nullptr);
  EXPECT_NE(map->Owner(150), nullptr);
}

TEST(RedisSlotMapTest, RefusesRepliesItCannotRead) {
  const RedisAddress asked{"a", 1};
  const std::vector<RedisReply> bad = {
      Str("nope"),
      Arr({}),  // No slot served: not a cluster yet.
      Arr({Arr({Int(0), Int(10)})}),
      Arr({Range(-1, 10, "h", 1)}),
      Arr({Range(10, 16384, "h", 1)}),
      Arr({Range(10, 5, "h", 1)}),
      Arr({Range(0, 10, "h", 0)}),
      Arr({Range(0, 10, "h", 70000)}),
      Arr({Arr({Int(0), Int(10), Arr({Str("h")})})}),
      Arr({Arr({Int(0), Int(10), Arr({Int(1), Int(2)})})}),
      // One bad range spoils the whole reply.
      Arr({Range(0, 10, "h", 1), Str("junk")}),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(RedisSlotMap::Parse(bad[i], asked),
                StatusIs(absl::StatusCode::kInternal));
  }
}

absl::Status ErrorReply(absl::string_view code, absl::string_view message) {
  absl::Status status(absl::StatusCode::kInternal,
                      absl::StrCat("Redis error: ", message));
  status.SetPayload("corral.dev/redis-error", absl::Cord(code));
  return status;
}

TEST(ParseRedirectTest, ReadsMovedAndAsk) {
  auto moved = ParseRedirect(ErrorReply("MOVED", "MOVED 3999 127.0.0.1:6381"));
  ASSERT_TRUE(moved.has_value());
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(RedisNodeName(moved->to), "127.0.0.1:6381");
  auto ask = ParseRedirect(ErrorReply("ASK", "ASK 1 ::1:7000"));
  ASSERT_TRUE(ask.has_value());
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->to.host, "::1");
  EXPECT_EQ(ask->to.port, 7000);
  // No host: the caller fills in the node it asked.
  auto hostless = ParseRedirect(ErrorReply("MOVED", "MOVED 7 :6381"));
  ASSERT_TRUE(hostless.has_value());
  EXPECT_EQ(hostless->to.host, "");
}

TEST(ParseRedirectTest, IgnoresEverythingElse) {
  EXPECT_FALSE(ParseRedirect(absl::OkStatus()).has_value());
  EXPECT_FALSE(ParseRedirect(ErrorReply("ERR", "ERR MOVED 1 h:1")));
  EXPECT_FALSE(ParseRedirect(ErrorReply("MOVED", "MOVED x h:1")));
  EXPECT_FALSE(ParseRedirect(ErrorReply("MOVED", "MOVED 16384 h:1")));
  EXPECT_FALSE(ParseRedirect(ErrorReply("MOVED", "MOVED 1 h")));
  EXPECT_FALSE(ParseRedirect(ErrorReply("MOVED", "MOVED 1 h:0")));
  EXPECT_FALSE(ParseRedirect(ErrorReply("MOVED", "MOVED 1")));
}

TEST(ParseClusterUriTest, AcceptsSeedNodesAndCredentials) {
  auto one = ParseRedisUri("redis-cluster://127.0.0.1:7000");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(one->cluster());
  EXPECT_FALSE(one->sentinel());
  ASSERT_EQ(one->cluster_nodes.size(), 1u);
  EXPECT_EQ(RedisNodeName(one->cluster_nodes[0]), "127.0.0.1:7000");
  EXPECT_EQ(one->min_replica_acks, 1);

  auto many = ParseRedisUri(
      "redis-cluster://corral:s%40cret@a:7000,b:7001,[::1]:7002/");
  ASSERT_TRUE(many.ok()) << many.status();
  ASSERT_EQ(many->cluster_nodes.size(), 3u);
  EXPECT_EQ(RedisNodeName(many->cluster_nodes[2]), "::1:7002");
  EXPECT_EQ(many->user, "corral");
  EXPECT_EQ(many->password, "s@cret");
  EXPECT_EQ(many->Describe(),
            "redis-cluster://corral:***@a:7000,b:7001,[::1]:7002");

  auto password_only = ParseRedisUri("redis-cluster://:pw@a:1");
  ASSERT_TRUE(password_only.ok());
  EXPECT_EQ(password_only->password, "pw");
}

TEST(ParseClusterUriTest, RejectsWithAClearMessageAndNeverThePassword) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"redis-cluster://", "no cluster node"},
      {"redis-cluster://:secret@", "no cluster node"},
      {"redis-cluster://a", "port of cluster node 1 is missing"},
      {"redis-cluster://a:1,b", "port of cluster node 2 is missing"},
      {"redis-cluster://a:1,,b:2", "cluster node 2"},
      {"redis-cluster://a:0", "port"},
      {"redis-cluster://:secret@a:x", "port"},
      {"redis-cluster://a:1/2", "no path"},
      {"redis-cluster://a:1?db=1", "no query"},
      {"redis-cluster://u:@a:1", "password after ':' is empty"},
      {"redis-cluster://[::1:1", "IPv6"},
      {"redis-clusterx://a:1", "must start with"},
  };
  for (const auto& [uri, expected] : cases) {
    SCOPED_TRACE(uri);
    auto parsed = ParseRedisUri(uri);
    ASSERT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(expected));
    EXPECT_THAT(std::string(parsed.status().message()),
                Not(HasSubstr("secret")));
  }
}

TEST(RedisClusterScriptsTest, ItemScriptsPublishToTheirShard) {
  for (RedisScript s : {RedisScript::kPut, RedisScript::kRelease}) {
    EXPECT_THAT(std::string(RedisClusterScriptSource(s)),
                HasSubstr("redis.call('SPUBLISH',"));
    EXPECT_THAT(std::string(RedisScriptSource(s)), Not(HasSubstr("SPUBLISH")));
  }
  EXPECT_EQ(RedisClusterScriptSource(RedisScript::kBreakerCas),
            RedisScriptSource(RedisScript::kBreakerCas));
}

}  // namespace
}  // namespace corral
