#include "server/app/options.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/app/fails_with.h"

namespace corral::app {
namespace {

using ::testing::HasSubstr;

// A config file in a fresh temporary directory, removed with it.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text,
                      const std::string& name = "corrald.textproto") {
    char dir[] = "/tmp/corral_options_test.XXXXXX";
    dir_ = ::mkdtemp(dir);
    path_ = dir_ + "/" + name;
    std::ofstream(path_) << text;
  }
  ~ConfigFile() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

TEST(ResolveOptionsTest, DefaultsWithoutFlagsOrConfig) {
  absl::StatusOr<Options> options = ResolveOptions(CommandLine{});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->log_level, LogLevel::kInfo);
  EXPECT_EQ(options->listen_address, "127.0.0.1:50051");
  EXPECT_EQ(options->metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(options->redis_uri, "");
  EXPECT_EQ(options->log_key_file, "");
  EXPECT_EQ(options->read_cache_mb, 64);
  EXPECT_EQ(options->redis_min_replica_acks, -1);
  EXPECT_EQ(options->redis_replica_ack_timeout, absl::Milliseconds(500));
  EXPECT_FALSE(options->ConfigHoldsSecrets());
}

TEST(ResolveOptionsTest, ConfigFileFillsWhatFlagsLeaveOut) {
  ConfigFile config(
      "listen_address: \"127.0.0.1:7001\"\n"
      "metrics_address: \"off\"\n"
      "redis: \"redis://127.0.0.1:7002/1\"\n"
      "log_key_file: \"/etc/corral/log_key\"\n");
  CommandLine flags;
  flags.config = config.path();
  absl::StatusOr<Options> options = ResolveOptions(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->config_path, config.path());
  EXPECT_EQ(options->listen_address, "127.0.0.1:7001");
  EXPECT_EQ(options->metrics_address, "off");
  EXPECT_EQ(options->redis_uri, "redis://127.0.0.1:7002/1");
  EXPECT_EQ(options->log_key_file, "/etc/corral/log_key");
  EXPECT_FALSE(options->ConfigHoldsSecrets());
}

TEST(ResolveOptionsTest, FlagsOverrideTheConfigFile) {
  ConfigFile config(
      "listen_address: \"127.0.0.1:7001\"\n"
      "metrics_address: \"off\"\n"
      "redis: \"redis://127.0.0.1:7002/1\"\n"
      "log_key_file: \"/etc/corral/log_key\"\n");
  CommandLine flags;
  flags.config = config.path();
  flags.listen_address = "127.0.0.1:8001";
  flags.metrics_address = "127.0.0.1:8002";
  flags.redis = "redis://127.0.0.1:8003/2";
  flags.log_key_file = "/run/key";
  flags.log_level = "warning";
  flags.read_cache_mb = 0;
  flags.tls_cert = "cert.pem";
  flags.tls_key = "key.pem";
  flags.tls_client_ca = "ca.pem";
  absl::StatusOr<Options> options = ResolveOptions(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->listen_address, "127.0.0.1:8001");
  EXPECT_EQ(options->metrics_address, "127.0.0.1:8002");
  EXPECT_EQ(options->redis_uri, "redis://127.0.0.1:8003/2");
  EXPECT_EQ(options->log_key_file, "/run/key");
  EXPECT_EQ(options->log_level, LogLevel::kWarning);
  EXPECT_EQ(options->read_cache_mb, 0);
  EXPECT_EQ(options->tls.cert, "cert.pem");
  EXPECT_EQ(options->tls.key, "key.pem");
  EXPECT_EQ(options->tls.client_ca, "ca.pem");
}

TEST(ResolveOptionsTest, ConfigWithCredentialsOrRedisPasswordHoldsSecrets) {
  ConfigFile with_password("redis: \"redis://app:pw@127.0.0.1:7002\"\n");
  CommandLine flags;
  flags.config = with_password.path();
  absl::StatusOr<Options> options = ResolveOptions(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->ConfigHoldsSecrets());
}

TEST(ResolveOptionsTest, BadLogLevel) {
  CommandLine flags;
  flags.log_level = "verbose";
  EXPECT_THAT(
      ResolveOptions(flags),
      FailsWith(absl::StatusCode::kInvalidArgument,
                "--log_level must be one of debug, info, warning, error"));
}

TEST(ResolveOptionsTest, MissingConfigFileIsAnError) {
  CommandLine flags;
  flags.config = "/nonexistent/corrald.textproto";
  absl::StatusOr<Options> options = ResolveOptions(flags);
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(std::string(options.status().message()),
              HasSubstr("/nonexistent/corrald.textproto"));
}

TEST(ResolveOptionsTest, InvalidNamespaceInConfigIsAnError) {
  ConfigFile config("namespaces { name: \"\" }\n");
  CommandLine flags;
  flags.config = config.path();
  EXPECT_FALSE(ResolveOptions(flags).ok());
}

TEST(ReadCacheBytesTest, Bounds) {
  EXPECT_THAT(ReadCacheBytes(-1),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "--read_cache_mb: -1 is not a size in MiB between 0 "
                        "(off) and 1048576"));
  EXPECT_THAT(
      ReadCacheBytes((int64_t{1} << 20) + 1),
      FailsWith(
          absl::StatusCode::kInvalidArgument,
          "--read_cache_mb: 1048577 is not a size in MiB between 0 (off) and "
          "1048576"));
  EXPECT_EQ(*ReadCacheBytes(0), 0u);
  EXPECT_EQ(*ReadCacheBytes(64), size_t{64} << 20);
  EXPECT_EQ(*ReadCacheBytes(int64_t{1} << 20), size_t{1} << 40);
}

// The first error wins, in the order corrald has always checked them.
TEST(ResolveOptionsTest, LogLevelIsCheckedBeforeTheConfigFile) {
  CommandLine flags;
  flags.log_level = "loud";
  flags.config = "/nonexistent/corrald.textproto";
  EXPECT_THAT(
      ResolveOptions(flags),
      FailsWith(absl::StatusCode::kInvalidArgument, HasSubstr("--log_level")));
}

}  // namespace
}  // namespace corral::app
