// redis-sentinel:// URIs: the sentinels, the master name, the data nodes'
// credentials and the query parameters; errors name the wrong part and
// never echo a password. (redis:// itself: redis_store_test.cc.)
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/redis_uri.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Sentinels(const RedisOptions& options) {
  std::vector<std::string> out;
  for (const RedisAddress& s : options.sentinels) {
    out.push_back(s.host + ":" + std::to_string(s.port));
  }
  return out;
}

TEST(ParseSentinelUriTest, AcceptsTheDocumentedForms) {
  auto one = ParseRedisUri("redis-sentinel://127.0.0.1:26380/mymaster");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(one->sentinel());
  EXPECT_THAT(Sentinels(*one), ::testing::ElementsAre("127.0.0.1:26380"));
  EXPECT_EQ(one->master_name, "mymaster");
  EXPECT_EQ(one->db, 0);
  EXPECT_EQ(one->user, "");
  EXPECT_EQ(one->password, "");
  EXPECT_EQ(one->sentinel_password, "");
  // Until the sentinels answer there is no data node.
  EXPECT_EQ(one->host, "");

  auto full = ParseRedisUri(
      "REDIS-SENTINEL://corral:p%40ss@s1,s2:26390,[::1]:26391/cache%2Dmain"
      "?db=3&sentinel_password=s%26cret");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_THAT(Sentinels(*full),
              ::testing::ElementsAre("s1:26379", "s2:26390", "::1:26391"));
  EXPECT_EQ(full->master_name, "cache-main");
  EXPECT_EQ(full->user, "corral");
  EXPECT_EQ(full->password, "p@ss");
  EXPECT_EQ(full->db, 3);
  EXPECT_EQ(full->sentinel_password, "s&cret");

  auto password_only =
      ParseRedisUri("redis-sentinel://:pw@h:1/m?sentinel_password=x");
  ASSERT_TRUE(password_only.ok()) << password_only.status();
  EXPECT_EQ(password_only->password, "pw");
  EXPECT_EQ(password_only->sentinel_password, "x");

  auto acl_user = ParseRedisUri("redis-sentinel://corral@h:1/m?db=0");
  ASSERT_TRUE(acl_user.ok()) << acl_user.status();
  EXPECT_EQ(acl_user->user, "corral");
  EXPECT_EQ(acl_user->password, "");

  // redis:// is not sentinel mode.
  auto plain = ParseRedisUri("redis://h:1");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->sentinel());
}

TEST(ParseSentinelUriTest, RejectsWithAClearMessageAndNeverThePassword) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"redis-sentinel://h:1", "master name"},
      {"redis-sentinel://h:1/", "master name"},
      {"redis-sentinel:///m", "no sentinel address"},
      {"redis-sentinel://secret@/m", "no sentinel address"},
      {"redis-sentinel://h:1,,h:2/m", "host is missing (sentinel 2)"},
      {"redis-sentinel://h:1,h:x/m",
       "port is not a number in 1..65535 (sentinel 2)"},
      {"redis-sentinel://h:1,h:/m", "port after ':' is empty (sentinel 2)"},
      {"redis-sentinel://h:70000/m",
       "port is not a number in 1..65535 (sentinel 1)"},
      {"redis-sentinel://[::1/m", "IPv6"},
      {"redis-sentinel://h/m?db=x", "database (db=)"},
      {"redis-sentinel://h/m?db=-1", "database (db=)"},
      {"redis-sentinel://h/m?db=", "db=) is empty"},
      {"redis-sentinel://h/m?db=1&db=2", "db is given twice"},
      {"redis-sentinel://h/m?sentinel_password=", "sentinel_password is empty"},
      {"redis-sentinel://h/m?sentinel_password=secret%zz",
       "sentinel_password has a malformed"},
      {"redis-sentinel://h/m?sentinel_password=a&sentinel_password=secret",
       "given twice"},
      {"redis-sentinel://h/m?secret=1", "unknown query parameter"},
      {"redis-sentinel://h/m?password=secret", "unknown query parameter"},
      {"redis-sentinel://h/m/x", "master name contains '/'"},
      {"redis-sentinel://h/m#frag", "fragments"},
      {"redis-sentinel://u:@h/m", "password after ':' is empty"},
      {"redis-sentinel://@h/m", "user before '@' is empty"},
      {"redis-sentinel://u:secret%g@h/m",
       "password has a malformed percent-escape"},
      {"sentinel://h/m", "must start with redis://, redis-sentinel://"},
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

TEST(ParseSentinelUriTest, DescribeMasksBothPasswords) {
  auto parsed = ParseRedisUri(
      "redis-sentinel://corral:secret@s1:1,s2:2/"
      "m?db=2&sentinel_password=secret");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(
      parsed->Describe(),
      "redis-sentinel://corral:***@s1:1,s2:2/m?db=2&sentinel_password=***");
  parsed->host = "10.0.0.5";
  parsed->port = 6380;
  EXPECT_THAT(parsed->Describe(), HasSubstr("(master 10.0.0.5:6380)"));
}

}  // namespace
}  // namespace corral
