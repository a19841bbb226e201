// Waiting for something another thread or process does, with a deadline:
// the one way a test waits on real time (never a fixed sleep). Tests of the
// core drive time with a ManualExecutor instead (manual_executor.h).
#ifndef CORRAL_TESTS_SUPPORT_POLL_H_
#define CORRAL_TESTS_SUPPORT_POLL_H_

#include <algorithm>
#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace corral::testing {

// Checks `condition` until it holds (true) or `timeout` passed (false, after
// one last check). Backs off from 1 ms to 20 ms between checks.
inline bool PollUntil(const std::function<bool()>& condition,
                      absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (!condition()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return condition();
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
  return true;
}

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_POLL_H_
