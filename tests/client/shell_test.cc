#include "client/corralctl/shell.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace corral::ctl {
namespace {

using ::corral::testing::IsOkAndHolds;
using ::corral::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RunShellTest, ReturnsStdout) {
  EXPECT_THAT(RunShell("echo hello; echo world >&2"),
              IsOkAndHolds(std::string("hello\n")));
}

TEST(RunShellTest, IsBinarySafe) {
  EXPECT_THAT(RunShell("printf 'a\\000b'"),
              IsOkAndHolds(std::string("a\0b", 3)));
}

TEST(RunShellTest, LargeOutput) {
  auto out = RunShell("head -c 1000000 /dev/zero");
  ASSERT_OK(out);
  EXPECT_EQ(out->size(), 1000000u);
}

TEST(RunShellTest, NonZeroExitAndSignalAreErrors) {
  auto exited = RunShell("echo partial; exit 3");
  EXPECT_THAT(exited, StatusIs(absl::StatusCode::kUnknown));
  EXPECT_THAT(exited.status().message(), HasSubstr("status 3"));
  auto killed = RunShell("kill -9 $$");
  EXPECT_THAT(killed, StatusIs(absl::StatusCode::kUnknown));
  EXPECT_THAT(killed.status().message(), HasSubstr("signal 9"));
}

}  // namespace
}  // namespace corral::ctl
