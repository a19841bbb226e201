#include "client/corralctl/args.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace corral::ctl {
namespace {

using ::corral::testing::IsOkAndHolds;
using ::corral::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

absl::StatusOr<Invocation> Parse(
    std::vector<std::string> args,
    std::optional<std::string> env = std::nullopt) {
  return ParseArgs(args, std::move(env));
}

TEST(ParseDurationFlagTest, AcceptsAbslSyntax) {
  EXPECT_THAT(ParseDurationFlag("ttl", "250ms"),
              IsOkAndHolds(absl::Milliseconds(250)));
  EXPECT_THAT(ParseDurationFlag("ttl", "10s"), IsOkAndHolds(absl::Seconds(10)));
  EXPECT_THAT(ParseDurationFlag("ttl", "1m"), IsOkAndHolds(absl::Minutes(1)));
  EXPECT_THAT(ParseDurationFlag("ttl", "1h30m"),
              IsOkAndHolds(absl::Minutes(90)));
  EXPECT_THAT(ParseDurationFlag("wait", "0"),
              IsOkAndHolds(absl::ZeroDuration()));
}

TEST(ParseDurationFlagTest, RejectsGarbageNegativeAndInfinite) {
  EXPECT_THAT(ParseDurationFlag("ttl", "10"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationFlag("ttl", "abc"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationFlag("ttl", "-1s"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationFlag("ttl", "inf"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationFlag("ttl", "abc").status().message(),
              HasSubstr("--ttl"));
}

TEST(ParseArgsTest, GetWithDefaults) {
  auto inv = Parse({"get", "plant_id", "k1"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->command, Command::kGet);
  EXPECT_THAT(inv->args, ::testing::ElementsAre("plant_id", "k1"));
  EXPECT_EQ(inv->target, "127.0.0.1:50051");
  EXPECT_EQ(inv->timeout, absl::Seconds(30));
  EXPECT_FALSE(inv->verbose);
}

TEST(ParseArgsTest, TargetFromEnvironmentAndFlagOverrides) {
  auto from_env = Parse({"health"}, "corral:7000");
  ASSERT_OK(from_env);
  EXPECT_EQ(from_env->target, "corral:7000");
  auto from_flag = Parse({"--target", "x:1", "health"}, "corral:7000");
  ASSERT_OK(from_flag);
  EXPECT_EQ(from_flag->target, "x:1");
  auto equals_form = Parse({"health", "--target=y:2", "--timeout=250ms"});
  ASSERT_OK(equals_form);
  EXPECT_EQ(equals_form->target, "y:2");
  EXPECT_EQ(equals_form->timeout, absl::Milliseconds(250));
}

TEST(ParseArgsTest, SetWithFlagsAnywhere) {
  auto inv = Parse({"--verbose", "set", "ns", "--ttl", "10s", "k", "-",
                    "--lock-token=T1", "--release-lock"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->command, Command::kSet);
  EXPECT_THAT(inv->args, ::testing::ElementsAre("ns", "k", "-"));
  EXPECT_THAT(inv->ttl, Optional(absl::Seconds(10)));
  EXPECT_EQ(inv->lock_token, "T1");
  EXPECT_TRUE(inv->release_lock);
  EXPECT_TRUE(inv->verbose);
}

TEST(ParseArgsTest, DoubleDashEndsFlags) {
  auto inv = Parse({"set", "ns", "k", "--", "--not-a-flag"});
  ASSERT_OK(inv);
  EXPECT_THAT(inv->args, ::testing::ElementsAre("ns", "k", "--not-a-flag"));
  // A single-dash word is a value.
  auto negative = Parse({"set", "ns", "k", "-5"});
  ASSERT_OK(negative);
  EXPECT_EQ(negative->args[2], "-5");
}

TEST(ParseArgsTest, LockSubcommands) {
  auto acquire = Parse({"lock", "acquire", "ns", "k", "--ttl", "30s", "--wait",
                        "0s", "--owner", "me"});
  ASSERT_OK(acquire);
  EXPECT_EQ(acquire->command, Command::kLockAcquire);
  EXPECT_THAT(acquire->ttl, Optional(absl::Seconds(30)));
  EXPECT_THAT(acquire->wait, Optional(absl::ZeroDuration()));
  EXPECT_EQ(acquire->owner, "me");

  auto renew = Parse({"lock", "renew", "ns", "k", "TOKEN"});
  ASSERT_OK(renew);
  EXPECT_EQ(renew->command, Command::kLockRenew);
  EXPECT_EQ(renew->ttl, std::nullopt);  // Unset: the namespace default.

  auto release =
      Parse({"lock", "release", "ns", "k", "TOKEN", "--outcome", "failure"});
  ASSERT_OK(release);
  EXPECT_EQ(release->command, Command::kLockRelease);
  EXPECT_EQ(release->outcome, client::Outcome::kFailure);
}

TEST(ParseArgsTest, GetOrCompute) {
  auto inv = Parse({"get-or-compute", "ns", "k", "--exec", "echo hi", "--wait",
                    "2s", "--lease-ttl", "5s", "--allow-stale"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->command, Command::kGetOrCompute);
  EXPECT_EQ(inv->exec, "echo hi");
  EXPECT_THAT(inv->wait, Optional(absl::Seconds(2)));
  EXPECT_THAT(inv->lease_ttl, Optional(absl::Seconds(5)));
  EXPECT_EQ(inv->ttl, std::nullopt);
  EXPECT_TRUE(inv->allow_stale);
}

TEST(ParseArgsTest, UsageErrors) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {},
           {"bogus"},
           {"lock"},
           {"lock", "steal", "ns", "k"},
           {"get", "ns"},
           {"get", "ns", "k", "extra"},
           {"get", "ns", "k", "--ttl", "1s"},  // get takes no --ttl
           {"get", "ns", "k", "--nope"},
           {"set", "ns", "k", "v", "--ttl"},  // missing value
           {"set", "ns", "k", "v", "--ttl", "soon"},
           {"set", "ns", "k", "v", "--release-lock"},  // needs --lock-token
           {"set", "ns", "k", "v", "--release-lock=yes"},
           {"get-or-compute", "ns", "k"},  // needs --exec
           {"lock", "release", "ns", "k", "T", "--outcome", "meh"},
           {"health", "--timeout", "0s"},
       }) {
    EXPECT_THAT(Parse(args), StatusIs(absl::StatusCode::kInvalidArgument))
        << ::testing::PrintToString(args);
  }
}

TEST(ParseArgsTest, Help) {
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    auto inv = Parse(args);
    ASSERT_OK(inv);
    EXPECT_EQ(inv->command, Command::kHelp);
    EXPECT_THAT(inv->help, HasSubstr("Exit codes"));
    EXPECT_THAT(inv->help, HasSubstr("get-or-compute"));
  }
  auto command = Parse({"lock", "acquire", "--help"});
  ASSERT_OK(command);
  EXPECT_THAT(command->help, HasSubstr("Usage: corralctl lock acquire NS KEY"));
  EXPECT_THAT(command->help, HasSubstr("fencing_token"));
  auto help_word = Parse({"help", "get-or-compute"});
  ASSERT_OK(help_word);
  EXPECT_THAT(help_word->help, HasSubstr("/bin/sh -c"));
  auto group = Parse({"lock", "--help"});
  ASSERT_OK(group);
  EXPECT_THAT(group->help, HasSubstr("lock renew"));
  // Help wins over otherwise incomplete arguments.
  ASSERT_OK(Parse({"set", "--help"}));
  EXPECT_THAT(Parse({"nope", "--help"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseArgsTest, TlsAndTokenFlags) {
  auto inv = Parse({"--tls-ca", "ca.pem", "--tls-cert=c.pem", "--tls-key",
                    "k.pem", "health", "--token", "T0k"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->tls_ca, "ca.pem");
  EXPECT_EQ(inv->tls_cert, "c.pem");
  EXPECT_EQ(inv->tls_key, "k.pem");
  EXPECT_EQ(inv->token, "T0k");
  auto plain = Parse({"health"});
  ASSERT_OK(plain);
  EXPECT_EQ(plain->tls_ca, "");
  EXPECT_EQ(plain->token, "");  // main falls back to $CORRAL_TOKEN.
  EXPECT_THAT(Parse({"--tls-cert", "c.pem", "health"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--tls-key", "k.pem", "health"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--token=", "health"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseArgsTest, UnderscoresSpellDashes) {
  auto inv = Parse({"--tls_ca=ca.pem", "set", "ns", "k", "v", "--lock_token",
                    "T", "--release_lock"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->tls_ca, "ca.pem");
  EXPECT_EQ(inv->lock_token, "T");
  EXPECT_TRUE(inv->release_lock);
}

TEST(ParseArgsTest, HashTokenTakesNoArguments) {
  auto inv = Parse({"hash-token"});
  ASSERT_OK(inv);
  EXPECT_EQ(inv->command, Command::kHashToken);
  EXPECT_THAT(Parse({"hash-token", "secret"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto help = Parse({"hash-token", "--help"});
  ASSERT_OK(help);
  EXPECT_THAT(help->help, HasSubstr("token_sha256"));
}

}  // namespace
}  // namespace corral::ctl
