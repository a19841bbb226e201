#include "tests/support/manual_executor.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace corral::testing {
namespace {
// A task that keeps re-posting itself would spin RunUntilIdle forever; stop
// at this many and fail the test instead of hanging it.
constexpr size_t kMaxTasksPerRun = 1'000'000;
}  // namespace

ManualExecutor::ManualExecutor(FakeClock& clock)
    : clock_(clock), driver_(std::this_thread::get_id()) {}

void ManualExecutor::Post(Task task) {
  absl::MutexLock lock(&mu_);
  posted_.push_back(std::move(task));
}

Executor::TimerId ManualExecutor::RunAfter(absl::Duration delay, Task task) {
  const absl::Time due = clock_.Now() + std::max(delay, absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  const TimerId id = next_timer_id_++;
  const TimerKey key{due, next_sequence_++};
  timers_.emplace(key, Timer{id, std::move(task)});
  timer_keys_.emplace(id, key);
  return id;
}

void ManualExecutor::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = timer_keys_.find(id);
  if (it == timer_keys_.end()) return;
  timers_.erase(it->second);
  timer_keys_.erase(it);
}

bool ManualExecutor::InLoopThread() const {
  absl::MutexLock lock(&mu_);
  return std::this_thread::get_id() == driver_;
}

void ManualExecutor::TakeDriver() {
  absl::MutexLock lock(&mu_);
  driver_ = std::this_thread::get_id();
}

bool ManualExecutor::PopRunnable(absl::Time now, Task& task) {
  absl::MutexLock lock(&mu_);
  if (!posted_.empty()) {
    task = std::move(posted_.front());
    posted_.pop_front();
    return true;
  }
  auto it = timers_.begin();
  if (it == timers_.end() || it->first.first > now) return false;
  task = std::move(it->second.task);
  timer_keys_.erase(it->second.id);
  timers_.erase(it);
  return true;
}

size_t ManualExecutor::RunUntilIdle() {
  TakeDriver();
  size_t ran = 0;
  Task task;
  while (PopRunnable(clock_.Now(), task)) {
    std::move(task)();
    task = nullptr;
    if (++ran >= kMaxTasksPerRun) {
      ADD_FAILURE() << "ManualExecutor: " << ran
                    << " tasks without going idle (a task re-posting itself?)";
      break;
    }
  }
  return ran;
}

size_t ManualExecutor::Advance(absl::Duration d) {
  TakeDriver();
  const absl::Time target = clock_.Now() + std::max(d, absl::ZeroDuration());
  size_t ran = RunUntilIdle();
  while (ran < kMaxTasksPerRun) {
    absl::Time due;
    {
      absl::MutexLock lock(&mu_);
      if (timers_.empty() || timers_.begin()->first.first > target) break;
      due = timers_.begin()->first.first;
    }
    // A timer already due (the clock was moved directly) does not move the
    // clock back.
    const absl::Time now = clock_.Now();
    if (due > now) clock_.Advance(due - now);
    const size_t batch = RunUntilIdle();
    ran += batch;
    if (batch >= kMaxTasksPerRun) return ran;  // RunUntilIdle failed the test
  }
  const absl::Time now = clock_.Now();
  if (target > now) clock_.Advance(target - now);
  ran += RunUntilIdle();
  return ran;
}

size_t ManualExecutor::pending_timers() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

size_t ManualExecutor::pending_posts() const {
  absl::MutexLock lock(&mu_);
  return posted_.size();
}

std::optional<absl::Duration> ManualExecutor::NextTimerIn() const {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  if (timers_.empty()) return std::nullopt;
  return std::max(timers_.begin()->first.first - now, absl::ZeroDuration());
}

}  // namespace corral::testing
