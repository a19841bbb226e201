// A CoordinatorObserver for the Coordinator parts' unit tests: it keeps
// what a test checks (waiters, lock outcomes, computes) as plain counts.
// Single-threaded, like the parts under test.
#ifndef CORRAL_TESTS_SERVER_CORE_RECORDING_OBSERVER_H_
#define CORRAL_TESTS_SERVER_CORE_RECORDING_OBSERVER_H_

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/core/observer.h"
#include "tests/server/core/null_observer.h"

namespace corral::testing {

class RecordingObserver final : public NullObserver {
 public:
  void OnLockAcquisition(absl::string_view,
                         absl::string_view outcome) override {
    ++lock_outcomes[std::string(outcome)];
  }
  void OnCompute(absl::string_view, absl::string_view mode,
                 absl::string_view outcome) override {
    ++computes[absl::StrCat(mode, "/", outcome)];
  }
  void OnDuplicateCompute(absl::string_view) override { ++duplicates; }
  void OnWaitersChanged(absl::string_view, int delta) override {
    waiters += delta;
  }

  int waiters = 0;
  int duplicates = 0;
  std::map<std::string, int> lock_outcomes;
  std::map<std::string, int> computes;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SERVER_CORE_RECORDING_OBSERVER_H_
