// corrald against a real redis-server that requires a password
// (requirepass) or an ACL user: the password from the URI, from
// --redis_password_file and from $CORRAL_REDIS_PASSWORD; a wrong or missing
// one is a clear startup error (exit 2, no reconnect loop); the password
// never shows in corrald's output.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/corral_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/corrald_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassword[] = "pw-7d3e1a9c-redis";
constexpr char kWrongPassword[] = "pw-wrong-5b2c8f04";

class RedisAuthE2E : public ::testing::Test {
 protected:
  // A redis-server whose default user needs kPassword.
  void StartRequirePass() {
    RedisServer::Options options;
    options.args = {"--requirepass", kPassword};
    options.admin_password = kPassword;
    auto redis = RedisServer::Start(options);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
  }

  // A redis-server with ACL user "corral" (kPassword) limited to corral's
  // keys and channels; the default user stays open for the fixture.
  void StartAclUser() {
    auto redis = RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ASSERT_THAT(redis_->Command({"ACL", "SETUSER", "corral", "on",
                                 absl::StrCat(">", kPassword), "~corral:*",
                                 "&corral:*", "+@all"}),
                IsOkAndHolds("OK"));
  }

  std::string Uri(absl::string_view userinfo) const {
    return absl::StrCat("--redis=redis://", userinfo,
                        userinfo.empty() ? "" : "@",
                        "127.0.0.1:", redis_->port());
  }

  std::string PasswordFile(const std::string& contents) {
    const std::string path = absl::StrCat(
        ::testing::TempDir(), "/corral-redis-pw-", getpid(), "-", files_++);
    std::ofstream(path) << contents;
    return path;
  }

  // Starts corrald, round-trips a value through Redis, checks the log
  // holds no password, and stops it.
  void ExpectServes(std::vector<std::string> args,
                    std::vector<std::pair<std::string, std::string>> env = {}) {
    CorraldOptions options;
    options.args = std::move(args);
    options.env = std::move(env);
    auto corrald = CorraldProcess::Start(options);
    ASSERT_TRUE(corrald.ok()) << corrald.status();
    EXPECT_THAT((*corrald)->store(), HasSubstr("redis://127.0.0.1:"));
    client::Client c((*corrald)->target());
    ASSERT_THAT(c.Set("ns", "k", "v").status(), IsOk());
    auto got = c.Get("ns", "k");
    ASSERT_THAT(got.status(), IsOk());
    EXPECT_EQ(got->value.value, "v");
    EXPECT_THAT((*corrald)->Terminate(), IsOkAndHolds(0));
    EXPECT_THAT((*corrald)->Log(), Not(HasSubstr(kPassword)));
  }

  // Runs corrald expecting a startup error: exit 2 well before any
  // reconnect loop would give up, a message with `expected`, and neither
  // password in the output.
  void ExpectStartupError(
      std::vector<std::string> args, const std::string& expected,
      std::vector<std::pair<std::string, std::string>> env = {}) {
    std::vector<std::string> argv = {
        CorraldPath(), "--listen_address=127.0.0.1:0", "--metrics_address=off"};
    argv.insert(argv.end(), args.begin(), args.end());
    const absl::Time start = absl::Now();
    auto r = RunCommand(argv, "", absl::Seconds(20), std::move(env));
    ASSERT_TRUE(r.ok()) << r.status() << " (corrald kept running)";
    EXPECT_EQ(r->exit_code, 2) << r->stderr_text;
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    EXPECT_THAT(r->stderr_text, HasSubstr(expected));
    EXPECT_THAT(r->stderr_text, Not(HasSubstr("corrald ready")));
    for (const char* secret : {kPassword, kWrongPassword}) {
      EXPECT_THAT(r->stderr_text + r->stdout_text, Not(HasSubstr(secret)));
    }
  }

  std::unique_ptr<RedisServer> redis_;
  int files_ = 0;
};

TEST_F(RedisAuthE2E, RequirePassFromTheUriAFileOrTheEnvironment) {
  StartRequirePass();
  ExpectServes({Uri(absl::StrCat(":", kPassword))});
  ExpectServes(
      {Uri(""), absl::StrCat("--redis_password_file=",
                             PasswordFile(absl::StrCat(kPassword, "\n")))});
  ExpectServes({Uri("")}, {{"CORRAL_REDIS_PASSWORD", kPassword}});
  // The file wins over the environment.
  ExpectServes({Uri(""), absl::StrCat("--redis_password_file=",
                                      PasswordFile(kPassword))},
               {{"CORRAL_REDIS_PASSWORD", kWrongPassword}});
}

TEST_F(RedisAuthE2E, RequirePassWrongOrMissingIsAStartupError) {
  StartRequirePass();
  ExpectStartupError({Uri(absl::StrCat(":", kWrongPassword))},
                     "Redis AUTH failed");
  ExpectStartupError({Uri("")}, "Redis AUTH failed",
                     {{"CORRAL_REDIS_PASSWORD", kWrongPassword}});
  ExpectStartupError({Uri(""), absl::StrCat("--redis_password_file=",
                                            PasswordFile(kWrongPassword))},
                     "Redis AUTH failed");
  ExpectStartupError({Uri("")}, "Redis requires a password");
}

TEST_F(RedisAuthE2E, AclUserFromTheUriOrWithItsPasswordKeptApart) {
  StartAclUser();
  ExpectServes({Uri(absl::StrCat("corral:", kPassword))});
  ExpectServes({Uri("corral"), absl::StrCat("--redis_password_file=",
                                            PasswordFile(kPassword))});
  ExpectServes({Uri("corral")}, {{"CORRAL_REDIS_PASSWORD", kPassword}});
  auto clients = redis_->Command({"ACL", "LOG"});
  ASSERT_THAT(clients.status(), IsOk());
  EXPECT_THAT(*clients, Not(HasSubstr("corral")));  // No refused command.
}

TEST_F(RedisAuthE2E, AclUserWrongPasswordOrRightsAreStartupErrors) {
  StartAclUser();
  ExpectStartupError({Uri(absl::StrCat("corral:", kWrongPassword))},
                     "Redis AUTH failed");
  ExpectStartupError({Uri("corral")},
                     "names the ACL user \"corral\" but no password");
  ASSERT_THAT(redis_->Command({"ACL", "SETUSER", "limited", "on",
                               absl::StrCat(">", kPassword), "~corral:*",
                               "&corral:*", "+@all", "-@scripting"}),
              IsOkAndHolds("OK"));
  ExpectStartupError({Uri(absl::StrCat("limited:", kPassword))},
                     "the Redis user may not run");
}

TEST_F(RedisAuthE2E, PasswordFlagsThatCannotWorkAreStartupErrors) {
  StartRequirePass();
  ExpectStartupError(
      {Uri(absl::StrCat(":", kPassword)),
       absl::StrCat("--redis_password_file=", PasswordFile(kPassword))},
      "already holds a password");
  ExpectStartupError(
      {Uri(""), "--redis_password_file=/nonexistent/redis-password"},
      "--redis_password_file: cannot read /nonexistent/redis-password");
  ExpectStartupError(
      {Uri(""), absl::StrCat("--redis_password_file=", PasswordFile("\n"))},
      "is empty");
}

}  // namespace
}  // namespace corral::testing
