// A CoordinatorObserver that ignores everything: tests derive from it and
// override only the events they count (the interface's required ones are
// pure so that Metrics cannot forget one).
#ifndef CORRAL_TESTS_SERVER_CORE_NULL_OBSERVER_H_
#define CORRAL_TESTS_SERVER_CORE_NULL_OBSERVER_H_

#include "server/core/observer.h"

namespace corral::testing {

class NullObserver : public CoordinatorObserver {
 public:
  void OnLookup(absl::string_view, LookupStage, bool) override {}
  void OnWaitEnded(absl::string_view, absl::Duration) override {}
  void OnLockAcquisition(absl::string_view, absl::string_view) override {}
  void OnCompute(absl::string_view, absl::string_view,
                 absl::string_view) override {}
  void OnDuplicateCompute(absl::string_view) override {}
  void OnWaitersChanged(absl::string_view, int) override {}
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SERVER_CORE_NULL_OBSERVER_H_
