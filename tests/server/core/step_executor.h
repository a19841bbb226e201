// A single-threaded Executor for the Coordinator parts' unit tests: posted
// tasks and due timers run only when the test calls RunReady/Advance, on the
// test's thread, against a FakeClock. No loop, no sleeps. (To be replaced by
// tests/support/manual_executor.h once that lands.)
#ifndef CORRAL_TESTS_SERVER_CORE_STEP_EXECUTOR_H_
#define CORRAL_TESTS_SERVER_CORE_STEP_EXECUTOR_H_

#include <deque>
#include <map>
#include <utility>

#include "server/core/clock.h"
#include "server/core/executor.h"

namespace corral::testing {

class StepExecutor final : public Executor {
 public:
  explicit StepExecutor(FakeClock& clock) : clock_(clock) {}

  void Post(Task task) override { posted_.push_back(std::move(task)); }
  TimerId RunAfter(absl::Duration delay, Task task) override {
    const TimerId id = next_id_++;
    timers_.emplace(id, Timer{clock_.Now() + delay, std::move(task)});
    return id;
  }
  void Cancel(TimerId id) override { timers_.erase(id); }
  bool InLoopThread() const override { return true; }

  // Runs posted tasks (and those they post) until none is left.
  void RunReady() {
    while (!posted_.empty()) {
      Task task = std::move(posted_.front());
      posted_.pop_front();
      task();
    }
  }
  // Moves the clock by `d`, running each timer that falls due (in due
  // order) and what it posts.
  void Advance(absl::Duration d) {
    const absl::Time until = clock_.Now() + d;
    RunReady();
    for (;;) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.due <= until &&
            (next == timers_.end() || it->second.due < next->second.due)) {
          next = it;
        }
      }
      if (next == timers_.end()) break;
      if (next->second.due > clock_.Now())
        clock_.Advance(next->second.due - clock_.Now());
      Task task = std::move(next->second.task);
      timers_.erase(next);
      task();
      RunReady();
    }
    if (until > clock_.Now()) clock_.Advance(until - clock_.Now());
  }
  size_t pending_timers() const { return timers_.size(); }

 private:
  struct Timer {
    absl::Time due;
    Task task;
  };
  FakeClock& clock_;
  std::deque<Task> posted_;
  std::map<TimerId, Timer> timers_;
  TimerId next_id_ = 1;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SERVER_CORE_STEP_EXECUTOR_H_
