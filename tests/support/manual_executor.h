// An Executor that a test drives by hand, on a FakeClock: nothing runs until
// the test calls RunUntilIdle() or Advance(), and timers fire only when the
// test moves fake time past them. So "let the waiters queue" is
// RunUntilIdle(), and a 5 s wait timeout is Advance(absl::Seconds(5)): exact,
// instant and the same on every run.
#ifndef CORRAL_TESTS_SUPPORT_MANUAL_EXECUTOR_H_
#define CORRAL_TESTS_SUPPORT_MANUAL_EXECUTOR_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/clock.h"
#include "server/core/executor.h"

namespace corral::testing {

class ManualExecutor final : public Executor {
 public:
  // `clock` must outlive the executor. The constructing thread drives it
  // until another thread calls RunUntilIdle() or Advance().
  explicit ManualExecutor(FakeClock& clock);
  ManualExecutor(const ManualExecutor&) = delete;
  ManualExecutor& operator=(const ManualExecutor&) = delete;

  // Queues `task`; it runs at the next RunUntilIdle()/Advance(). Any thread.
  void Post(Task task) override;
  // Schedules `task` at fake time Now() + `delay`. Any thread (the
  // interface asks for the executor thread; here it costs nothing to allow).
  TimerId RunAfter(absl::Duration delay, Task task) override;
  // Drops a timer that has not fired; a no-op otherwise (0 included).
  void Cancel(TimerId id) override;
  // True on the thread that drives the executor (see the constructor).
  bool InLoopThread() const override;

  // Runs posted tasks and the timers due at the clock's current time, and
  // whatever those post or schedule for now, until none is left. Does not
  // move the clock. Returns how many tasks ran. Driving thread; not from
  // inside a task.
  size_t RunUntilIdle();

  // Moves the clock forward by `d`, stopping at each timer that falls due on
  // the way: the clock is set to that timer's time, the timer runs, then
  // everything it posted (RunUntilIdle). Timers run in time order, ties in
  // the order they were scheduled; a timer scheduled on the way runs too if
  // it falls within `d`. Ends at exactly start + `d`, idle. Returns how many
  // tasks ran.
  size_t Advance(absl::Duration d);

  // Timers scheduled and not yet fired or cancelled.
  size_t pending_timers() const;
  // Tasks posted and not yet run.
  size_t pending_posts() const;
  // How far the earliest pending timer is from now (zero if already due);
  // nullopt when there is none.
  std::optional<absl::Duration> NextTimerIn() const;

 private:
  // Timers ordered by (due time, scheduling sequence).
  using TimerKey = std::pair<absl::Time, uint64_t>;
  struct Timer {
    TimerId id;
    Task task;
  };

  void TakeDriver();
  // Pops the next task to run (posted first, then the earliest timer due at
  // or before `now`); false when there is none.
  bool PopRunnable(absl::Time now, Task& task);

  FakeClock& clock_;
  mutable absl::Mutex mu_;
  std::thread::id driver_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> posted_ ABSL_GUARDED_BY(mu_);
  std::map<TimerKey, Timer> timers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, TimerKey> timer_keys_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  TimerId next_timer_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_MANUAL_EXECUTOR_H_
