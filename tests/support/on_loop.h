// Runs a function on an executor's thread (the EventLoop in tests that use
// a real loop) and waits until it has run: how a test thread touches state
// that belongs to the loop.
#ifndef CORRAL_TESTS_SUPPORT_ON_LOOP_H_
#define CORRAL_TESTS_SUPPORT_ON_LOOP_H_

#include <future>

#include "absl/functional/any_invocable.h"
#include "server/core/executor.h"

namespace corral::testing {

// Not from the executor's own thread (it would wait for itself).
inline void RunOnLoop(Executor& executor, absl::AnyInvocable<void()> fn) {
  std::promise<void> ran;
  std::future<void> ran_future = ran.get_future();
  executor.Post([&fn, &ran] {
    fn();
    ran.set_value();
  });
  ran_future.wait();
}

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_ON_LOOP_H_
