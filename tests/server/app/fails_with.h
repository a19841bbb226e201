// FailsWith(code, message_matcher): a Status or StatusOr that failed with
// `code` and a message that matches; the app's errors are corrald's exit
// lines, so their wording is checked.
#ifndef CORRAL_TESTS_SERVER_APP_FAILS_WITH_H_
#define CORRAL_TESTS_SERVER_APP_FAILS_WITH_H_

#include <string>

#include "gmock/gmock.h"
#include "tests/support/status_matchers.h"

namespace corral::app {

MATCHER_P2(FailsWith, code, message,
           "fails with the code and a matching message") {
  const absl::Status& status = ::corral::testing::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message, std::string(status.message()),
                                       result_listener);
}

}  // namespace corral::app

#endif  // CORRAL_TESTS_SERVER_APP_FAILS_WITH_H_
