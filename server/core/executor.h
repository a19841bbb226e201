// Where the core's work runs and when its timers fire. Production runs it on
// the libevent loop (EventLoop); tests can drive it by hand with a fake clock
// (tests/support/manual_executor.h), so that wait timeouts, lease renewals,
// revocations and retries happen exactly when a test moves time, with no
// sleeps.
#ifndef CORRAL_SERVER_CORE_EXECUTOR_H_
#define CORRAL_SERVER_CORE_EXECUTOR_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace corral {

class Executor {
 public:
  using Task = absl::AnyInvocable<void()>;
  using TimerId = uint64_t;

  virtual ~Executor() = default;

  // Runs `task` on the executor's thread, in posting order. Any thread.
  virtual void Post(Task task) = 0;
  // Runs `task` on the executor's thread after `delay`. Executor thread
  // only. Never 0.
  virtual TimerId RunAfter(absl::Duration delay, Task task) = 0;
  // Cancels a timer that has not fired yet; a no-op otherwise (0 included).
  // Executor thread only.
  virtual void Cancel(TimerId id) = 0;
  // Whether the caller runs on the executor's thread.
  virtual bool InLoopThread() const = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_EXECUTOR_H_
