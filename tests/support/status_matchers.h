// gMock matchers for absl::Status / absl::StatusOr, named like abseil's
// (absl 20220623 does not ship status_matchers.h), so an upgrade is a rename.
#ifndef CORRAL_TESTS_SUPPORT_STATUS_MATCHERS_H_
#define CORRAL_TESTS_SUPPORT_STATUS_MATCHERS_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace corral::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kNotFound));
MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

// EXPECT_THAT(status_or, IsOkAndHolds(Eq(3)));
MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.ok();
}

}  // namespace corral::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::corral::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::corral::testing::IsOk())

#endif  // CORRAL_TESTS_SUPPORT_STATUS_MATCHERS_H_
