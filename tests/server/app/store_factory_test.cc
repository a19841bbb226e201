#include "server/app/store_factory.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/server/app/fails_with.h"
#include "tests/support/free_port.h"
#include "tests/support/redis_server.h"

namespace corral::app {
namespace {

using ::corral::testing::ClosedPort;
using ::corral::testing::RedisServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Options WithRedis(const std::string& uri) {
  Options options;
  options.redis_uri = uri;
  options.redis_replica_ack_timeout = absl::Milliseconds(500);
  return options;
}

TEST(RedisOptionsForTest, ReplicaAcksDefaultByUri) {
  absl::StatusOr<RedisOptions> plain =
      RedisOptionsFor(WithRedis("redis://127.0.0.1:6390/2"), {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->min_replica_acks, 0);
  EXPECT_EQ(plain->db, 2);
  absl::StatusOr<RedisOptions> sentinel =
      RedisOptionsFor(WithRedis("redis-sentinel://127.0.0.1:26379/main"), {});
  ASSERT_TRUE(sentinel.ok()) << sentinel.status();
  EXPECT_EQ(sentinel->min_replica_acks, 1);
}

TEST(RedisOptionsForTest, FlagsSetAcksTimeoutAndReadCache) {
  Options options = WithRedis("redis-sentinel://127.0.0.1:26379/main");
  options.redis_min_replica_acks = 0;
  options.redis_replica_ack_timeout = absl::Milliseconds(250);
  ReadCacheOptions read_cache;
  read_cache.max_bytes = 12345;
  absl::StatusOr<RedisOptions> redis = RedisOptionsFor(options, read_cache);
  ASSERT_TRUE(redis.ok()) << redis.status();
  EXPECT_EQ(redis->min_replica_acks, 0);
  EXPECT_EQ(redis->replica_ack_timeout, absl::Milliseconds(250));
  EXPECT_EQ(redis->read_cache.max_bytes, 12345u);
}

TEST(RedisOptionsForTest, Errors) {
  EXPECT_THAT(
      RedisOptionsFor(WithRedis("http://127.0.0.1:6379"), {}),
      FailsWith(absl::StatusCode::kInvalidArgument, StartsWith("--redis: ")));

  Options acks = WithRedis("redis://127.0.0.1:6390");
  acks.redis_min_replica_acks = 65;
  EXPECT_THAT(
      RedisOptionsFor(acks, {}),
      FailsWith(
          absl::StatusCode::kInvalidArgument,
          "--redis_min_replica_acks: 65 is not -1 (by URI) or a replica count "
          "in 0..64"));
  acks.redis_min_replica_acks = -2;
  EXPECT_THAT(RedisOptionsFor(acks, {}),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        HasSubstr("--redis_min_replica_acks: -2 is not")));

  Options timeout = WithRedis("redis://127.0.0.1:6390");
  timeout.redis_replica_ack_timeout = absl::ZeroDuration();
  EXPECT_THAT(
      RedisOptionsFor(timeout, {}),
      FailsWith(absl::StatusCode::kInvalidArgument,
                "--redis_replica_ack_timeout: 0 is not between 1ms and 2s"));
  timeout.redis_replica_ack_timeout = absl::Seconds(2);
  EXPECT_THAT(
      RedisOptionsFor(timeout, {}),
      FailsWith(absl::StatusCode::kInvalidArgument,
                "--redis_replica_ack_timeout: 2s is not between 1ms and 2s"));

  Options user = WithRedis("redis://app@127.0.0.1:6390");
  EXPECT_THAT(
      RedisOptionsFor(user, {}),
      FailsWith(absl::StatusCode::kInvalidArgument,
                HasSubstr("names the ACL user \"app\" but no password")));
}

TEST(RedisStoreNameTest, NamesWithoutCredentials) {
  absl::StatusOr<RedisOptions> plain =
      ParseRedisUri("redis://app:pw@127.0.0.1:6390/3");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(RedisStoreName(*plain), "redis://127.0.0.1:6390/3");
  absl::StatusOr<RedisOptions> sentinel = ParseRedisUri(
      "redis-sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/main?db=4");
  ASSERT_TRUE(sentinel.ok()) << sentinel.status();
  EXPECT_EQ(RedisStoreName(*sentinel), "redis-sentinel://.../main?db=4");
}

TEST(IsFatalConnectErrorTest, ConfigurationErrorsAreFatal) {
  EXPECT_TRUE(IsFatalConnectError(absl::PermissionDeniedError("NOPERM")));
  EXPECT_TRUE(IsFatalConnectError(absl::UnauthenticatedError("WRONGPASS")));
  EXPECT_TRUE(
      IsFatalConnectError(absl::InvalidArgumentError("unknown master")));
  EXPECT_FALSE(
      IsFatalConnectError(absl::UnavailableError("connection refused")));
  EXPECT_FALSE(IsFatalConnectError(absl::DeadlineExceededError("timed out")));
}

class MakeStoreTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  RealClock clock_;
  EventLoop loop_;
};

TEST_F(MakeStoreTest, EmbeddedWithoutRedis) {
  ReadCacheOptions read_cache;
  read_cache.max_bytes = 1 << 20;
  SelectedStore store =
      MakeStore(loop_, clock_, metrics_, std::nullopt, read_cache);
  ASSERT_NE(store.store, nullptr);
  EXPECT_EQ(store.redis, nullptr);
  EXPECT_EQ(store.name, "embedded");
  EXPECT_TRUE(store.store->IsUp());
  EXPECT_NE(store.store->read_cache(), nullptr);
}

TEST_F(MakeStoreTest, RedisConnectsAtStart) {
  absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  absl::StatusOr<RedisOptions> options =
      RedisOptionsFor(WithRedis((*redis)->uri()), {});
  ASSERT_TRUE(options.ok()) << options.status();
  SelectedStore store = MakeStore(loop_, clock_, metrics_, *options, {});
  ASSERT_NE(store.redis, nullptr);
  EXPECT_EQ(store.redis, store.store.get());
  EXPECT_EQ(store.name,
            absl::StrCat("redis://127.0.0.1:", (*redis)->port(), "/0"));
  loop_.Start();
  EXPECT_TRUE(ConnectAtStart(*store.redis, store.name, absl::Seconds(5)).ok());
  EXPECT_TRUE(store.store->IsUp());
  store.redis->Shutdown();
  loop_.Stop();
}

TEST_F(MakeStoreTest, UnreachableRedisIsLoggedAndServed) {
  ClosedPort closed;  // Bound, never listening: refused, and ours alone.
  const int port = closed.port();
  absl::StatusOr<RedisOptions> options =
      RedisOptionsFor(WithRedis(absl::StrCat("redis://127.0.0.1:", port)), {});
  ASSERT_TRUE(options.ok()) << options.status();
  SelectedStore store = MakeStore(loop_, clock_, metrics_, *options, {});
  loop_.Start();
  ::testing::internal::CaptureStderr();
  const absl::Status connected =
      ConnectAtStart(*store.redis, store.name, absl::Milliseconds(200));
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(connected.ok()) << connected;
  EXPECT_THAT(logged, HasSubstr(absl::StrCat(
                          "store_unreachable_at_start store=redis://127.0.0.1:",
                          port, "/0 error=\"")));
  EXPECT_THAT(logged, HasSubstr("(serving; reconnecting in the background)"));
  EXPECT_FALSE(store.store->IsUp());
  store.redis->Shutdown();
  loop_.Stop();
}

TEST_F(MakeStoreTest, WrongPasswordIsFatal) {
  RedisServer::Options server_options;
  server_options.args = {"--requirepass", "right"};
  server_options.admin_password = "right";
  absl::StatusOr<std::unique_ptr<RedisServer>> redis =
      RedisServer::Start(server_options);
  ASSERT_TRUE(redis.ok()) << redis.status();
  absl::StatusOr<RedisOptions> options = RedisOptionsFor(
      WithRedis(absl::StrCat("redis://:wrong@127.0.0.1:", (*redis)->port())),
      {});
  ASSERT_TRUE(options.ok()) << options.status();
  SelectedStore store = MakeStore(loop_, clock_, metrics_, *options, {});
  loop_.Start();
  const absl::Status connected =
      ConnectAtStart(*store.redis, store.name, absl::Seconds(5));
  EXPECT_TRUE(IsFatalConnectError(connected)) << connected;
  store.redis->Shutdown();
  loop_.Stop();
}

}  // namespace
}  // namespace corral::app
