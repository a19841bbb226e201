// A std::thread that joins when it goes out of scope. A test that fails an
// ASSERT returns early; with a plain std::thread still joinable that is
// std::terminate (the whole binary dies, and every later test with it)
// instead of one test's failure.
#ifndef CORRAL_TESTS_SUPPORT_JOINING_THREAD_H_
#define CORRAL_TESTS_SUPPORT_JOINING_THREAD_H_

#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"

namespace corral::testing {

class JoiningThread {
 public:
  template <typename F>
  explicit JoiningThread(F&& f) : thread_(std::forward<F>(f)) {}
  JoiningThread(JoiningThread&&) = default;
  JoiningThread& operator=(JoiningThread&&) = delete;
  ~JoiningThread() { join(); }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

// Notifies `n` (if nobody did) when it goes out of scope: declared after a
// JoiningThread that waits on `n`, it releases the thread before the join
// when an ASSERT ends the test early, so the test fails instead of hanging.
class NotifyOnExit {
 public:
  explicit NotifyOnExit(absl::Notification& n) : n_(n) {}
  NotifyOnExit(const NotifyOnExit&) = delete;
  NotifyOnExit& operator=(const NotifyOnExit&) = delete;
  ~NotifyOnExit() {
    if (!n_.HasBeenNotified()) n_.Notify();
  }

 private:
  absl::Notification& n_;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_JOINING_THREAD_H_
