#include "server/app/secrets.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/app/fails_with.h"

namespace corral::app {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Files in a fresh temporary directory, removed with it.
class SecretsTest : public ::testing::Test {
 protected:
  SecretsTest() {
    char dir[] = "/tmp/corral_secrets_test.XXXXXX";
    dir_ = ::mkdtemp(dir);
  }
  ~SecretsTest() override {
    for (const std::string& path : written_) ::unlink(path.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& contents,
                    mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    ::chmod(path.c_str(), mode);
    written_.push_back(path);
    return path;
  }
  void TearDown() override { ::unsetenv("CORRAL_REDIS_PASSWORD"); }

  std::string dir_;
  std::vector<std::string> written_;
};

TEST_F(SecretsTest, ReadSecretFileDropsOneTrailingNewline) {
  EXPECT_EQ(*ReadSecretFile(Write("lf", "s3cret\n")), "s3cret");
  EXPECT_EQ(*ReadSecretFile(Write("crlf", "s3cret\r\n")), "s3cret");
  EXPECT_EQ(*ReadSecretFile(Write("none", "s3cret")), "s3cret");
  EXPECT_EQ(*ReadSecretFile(Write("two", "s3cret\n\n")), "s3cret\n");
}

TEST_F(SecretsTest, ReadSecretFileRefusesEmptyAndMissingFiles) {
  const std::string empty = Write("empty", "\n");
  EXPECT_THAT(
      ReadSecretFile(empty),
      FailsWith(absl::StatusCode::kInvalidArgument, empty + " is empty"));
  EXPECT_FALSE(ReadSecretFile(dir_ + "/missing").ok());
}

TEST_F(SecretsTest, ExposureOfPrivateAndSharedFiles) {
  EXPECT_FALSE(ExposureOf(Write("private", "x", 0600)).has_value());
  // Group-readable by corrald's own group (Kubernetes' fsGroup) is private.
  EXPECT_FALSE(ExposureOf(Write("own_group", "x", 0640)).has_value());
  std::optional<SecretFileExposure> world =
      ExposureOf(Write("world", "x", 0644));
  ASSERT_TRUE(world.has_value());
  EXPECT_EQ(world->readable_by, "every user");
  EXPECT_EQ(world->mode, 0644u);
  EXPECT_FALSE(ExposureOf(dir_ + "/missing").has_value());
}

TEST_F(SecretsTest, ExposureOfAFileOfAnotherGroup) {
  const std::string path = Write("other_group", "x", 0640);
  if (::chown(path.c_str(), static_cast<uid_t>(-1), ::getegid() + 1) != 0) {
    GTEST_SKIP() << "cannot give a file to another group here (not root)";
  }
  std::optional<SecretFileExposure> group = ExposureOf(path);
  ASSERT_TRUE(group.has_value());
  EXPECT_EQ(group->readable_by, "its group");
  EXPECT_EQ(group->mode, 0640u);
}

TEST_F(SecretsTest, WarnIfSharedLogsTheFileAndItsMode) {
  const std::string path = Write("shared", "x", 0604);
  ::testing::internal::CaptureStderr();
  WarnIfShared(path, "tls_key");
  WarnIfShared(Write("quiet", "x", 0600), "tls_key");
  WarnIfShared("", "tls_key");
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(
      logged,
      AllOf(HasSubstr("secret_file_readable file=" + path +
                      " holds=tls_key"
                      " mode=0604 WARNING: readable by every user of this host;"
                      " chmod 600 it (owned by corrald's user)")));
  EXPECT_EQ(logged.find("quiet"), std::string::npos) << logged;
}

TEST_F(SecretsTest, RedisPasswordFromTheFile) {
  RedisOptions options;
  ASSERT_TRUE(ResolveRedisPassword(Write("pw", "from-file\n"), options).ok());
  EXPECT_EQ(options.password, "from-file");
}

TEST_F(SecretsTest, RedisPasswordFileWinsOverTheEnvironment) {
  ::setenv("CORRAL_REDIS_PASSWORD", "from-env", 1);
  RedisOptions options;
  ASSERT_TRUE(ResolveRedisPassword(Write("pw", "from-file"), options).ok());
  EXPECT_EQ(options.password, "from-file");
}

TEST_F(SecretsTest, RedisPasswordFromTheEnvironment) {
  ::setenv("CORRAL_REDIS_PASSWORD", "from-env", 1);
  RedisOptions options;
  ASSERT_TRUE(ResolveRedisPassword("", options).ok());
  EXPECT_EQ(options.password, "from-env");
}

TEST_F(SecretsTest, NoRedisPasswordAnywhereIsFineWithoutAUser) {
  RedisOptions options;
  ASSERT_TRUE(ResolveRedisPassword("", options).ok());
  EXPECT_EQ(options.password, "");
}

TEST_F(SecretsTest, RedisPasswordErrors) {
  RedisOptions in_uri;
  in_uri.password = "in-uri";
  EXPECT_THAT(
      ResolveRedisPassword(Write("pw", "x"), in_uri),
      FailsWith(
          absl::StatusCode::kInvalidArgument,
          "--redis_password_file: the --redis URI already holds a password; "
          "give it once"));
  EXPECT_EQ(in_uri.password, "in-uri");

  const std::string empty = Write("empty", "");
  RedisOptions options;
  EXPECT_THAT(ResolveRedisPassword(empty, options),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "--redis_password_file: " + empty + " is empty"));

  RedisOptions user_only;
  user_only.user = "app";
  EXPECT_THAT(
      ResolveRedisPassword("", user_only),
      FailsWith(absl::StatusCode::kInvalidArgument,
                "--redis names the ACL user \"app\" but no password: put it in "
                "--redis_password_file or $CORRAL_REDIS_PASSWORD"));
}

TEST_F(SecretsTest, RandomLogKeyIsAWarningOnlyForAFleet) {
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(SetUpLogKey("", /*fleet=*/true).ok());
  const std::string fleet = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(fleet,
              AllOf(HasSubstr("WARN log_key_random"),
                    HasSubstr("give every replica the same --log_key_file")));
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(SetUpLogKey("", /*fleet=*/false).ok());
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("INFO log_key_random"));
}

TEST_F(SecretsTest, LogKeyErrors) {
  EXPECT_THAT(SetUpLogKey(dir_ + "/missing", true),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        StartsWith("--log_key_file: ")));
  const std::string short_key = Write("short", "too short\n");
  EXPECT_THAT(SetUpLogKey(short_key, true),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        StartsWith("--log_key_file: " + short_key +
                                   ": the log key is 9 bytes")));
}

TEST_F(SecretsTest, LogKeyFromAFileWarnsWhenShared) {
  const std::string key = Write("key", "0123456789abcdef0123\n", 0644);
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(SetUpLogKey(key, true).ok());
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("secret_file_readable file=" + key +
                        " holds=log_key mode=0644"));
}

}  // namespace
}  // namespace corral::app
