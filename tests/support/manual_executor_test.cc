#include "tests/support/manual_executor.h"

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/joining_thread.h"

namespace corral::testing {
namespace {

using ::testing::ElementsAre;

class ManualExecutorTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  ManualExecutor executor_{clock_};
  std::vector<std::string> ran_;
};

TEST_F(ManualExecutorTest, PostedTasksRunInOrderOnlyWhenDriven) {
  executor_.Post([&] { ran_.push_back("a"); });
  executor_.Post([&] { ran_.push_back("b"); });
  EXPECT_TRUE(ran_.empty());
  EXPECT_EQ(executor_.pending_posts(), 2u);
  EXPECT_EQ(executor_.RunUntilIdle(), 2u);
  EXPECT_THAT(ran_, ElementsAre("a", "b"));
  EXPECT_EQ(executor_.RunUntilIdle(), 0u);
}

TEST_F(ManualExecutorTest, RunUntilIdleRunsWhatTasksPost) {
  executor_.Post([&] {
    ran_.push_back("outer");
    executor_.Post([&] { ran_.push_back("inner"); });
  });
  executor_.RunUntilIdle();
  EXPECT_THAT(ran_, ElementsAre("outer", "inner"));
}

TEST_F(ManualExecutorTest, RunUntilIdleDoesNotMoveTheClock) {
  const absl::Time start = clock_.Now();
  executor_.RunAfter(absl::Seconds(1), [&] { ran_.push_back("timer"); });
  executor_.RunUntilIdle();
  EXPECT_TRUE(ran_.empty());
  EXPECT_EQ(clock_.Now(), start);
  EXPECT_EQ(executor_.pending_timers(), 1u);
}

TEST_F(ManualExecutorTest, TimerFiresAtItsTimeNotBefore) {
  const absl::Time start = clock_.Now();
  absl::Time fired_at;
  executor_.RunAfter(absl::Seconds(5), [&] { fired_at = clock_.Now(); });
  executor_.Advance(absl::Seconds(5) - absl::Nanoseconds(1));
  EXPECT_EQ(fired_at, absl::Time());
  executor_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(fired_at, start + absl::Seconds(5));
  EXPECT_EQ(executor_.pending_timers(), 0u);
}

TEST_F(ManualExecutorTest, AdvanceRunsTimersInTimeOrderAtTheirTimes) {
  const absl::Time start = clock_.Now();
  std::vector<absl::Duration> at;
  auto record = [&] { at.push_back(clock_.Now() - start); };
  executor_.RunAfter(absl::Seconds(3), record);
  executor_.RunAfter(absl::Seconds(1), record);
  executor_.RunAfter(absl::Seconds(2), record);
  executor_.Advance(absl::Seconds(10));
  EXPECT_THAT(
      at, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(3)));
  EXPECT_EQ(clock_.Now(), start + absl::Seconds(10));
}

TEST_F(ManualExecutorTest, TiesRunInSchedulingOrder) {
  for (const char* name : {"first", "second", "third"}) {
    executor_.RunAfter(absl::Seconds(1), [&, name] { ran_.push_back(name); });
  }
  executor_.Advance(absl::Seconds(1));
  EXPECT_THAT(ran_, ElementsAre("first", "second", "third"));
}

TEST_F(ManualExecutorTest, WorkPostedByATimerRunsBeforeTheNextTimer) {
  executor_.RunAfter(absl::Seconds(1), [&] {
    ran_.push_back("timer1");
    executor_.Post([&] { ran_.push_back("posted by timer1"); });
  });
  executor_.RunAfter(absl::Seconds(2), [&] { ran_.push_back("timer2"); });
  executor_.Advance(absl::Seconds(2));
  EXPECT_THAT(ran_, ElementsAre("timer1", "posted by timer1", "timer2"));
}

TEST_F(ManualExecutorTest, TimersScheduledDuringAdvanceFireIfWithinIt) {
  // A renewal loop: each firing schedules the next, one second later.
  const absl::Time start = clock_.Now();
  std::vector<absl::Duration> at;
  std::function<void()> tick = [&] {
    at.push_back(clock_.Now() - start);
    executor_.RunAfter(absl::Seconds(1), tick);
  };
  executor_.RunAfter(absl::Seconds(1), tick);
  executor_.Advance(absl::Milliseconds(3500));
  EXPECT_THAT(
      at, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(3)));
  EXPECT_EQ(executor_.pending_timers(), 1u);
  EXPECT_EQ(executor_.NextTimerIn(), absl::Milliseconds(500));
}

TEST_F(ManualExecutorTest, CancelledTimerNeverRuns) {
  const Executor::TimerId keep =
      executor_.RunAfter(absl::Seconds(1), [&] { ran_.push_back("kept"); });
  const Executor::TimerId drop =
      executor_.RunAfter(absl::Seconds(1), [&] { ran_.push_back("dropped"); });
  EXPECT_NE(keep, drop);
  executor_.Cancel(drop);
  executor_.Cancel(drop);  // twice: a no-op
  executor_.Cancel(0);     // never issued: a no-op
  executor_.Advance(absl::Seconds(2));
  EXPECT_THAT(ran_, ElementsAre("kept"));
  executor_.Cancel(keep);  // already fired: a no-op
}

TEST_F(ManualExecutorTest, ATimerCanCancelALaterOne) {
  Executor::TimerId later = 0;
  executor_.RunAfter(absl::Seconds(1), [&] {
    ran_.push_back("first");
    executor_.Cancel(later);
  });
  later =
      executor_.RunAfter(absl::Seconds(2), [&] { ran_.push_back("later"); });
  executor_.Advance(absl::Seconds(3));
  EXPECT_THAT(ran_, ElementsAre("first"));
}

TEST_F(ManualExecutorTest, ClockMovedDirectlyMakesTimersDueWithoutGoingBack) {
  executor_.RunAfter(absl::Seconds(1), [&] { ran_.push_back("due"); });
  clock_.Advance(absl::Seconds(5));
  const absl::Time moved = clock_.Now();
  executor_.RunUntilIdle();
  EXPECT_THAT(ran_, ElementsAre("due"));
  EXPECT_EQ(clock_.Now(), moved);
}

TEST_F(ManualExecutorTest, NextTimerInIsEmptyWithoutTimers) {
  EXPECT_EQ(executor_.NextTimerIn(), std::nullopt);
}

TEST_F(ManualExecutorTest, PostFromAnotherThreadRunsOnTheDriver) {
  const std::thread::id driver = std::this_thread::get_id();
  bool in_loop_elsewhere = true;
  {
    JoiningThread poster([&] {
      in_loop_elsewhere = executor_.InLoopThread();
      executor_.Post([&] {
        EXPECT_EQ(std::this_thread::get_id(), driver);
        EXPECT_TRUE(executor_.InLoopThread());
        ran_.push_back("posted");
      });
    });
  }
  EXPECT_FALSE(in_loop_elsewhere);
  EXPECT_TRUE(executor_.InLoopThread());
  executor_.RunUntilIdle();
  EXPECT_THAT(ran_, ElementsAre("posted"));
}

TEST_F(ManualExecutorTest, TheThreadThatDrivesIsTheLoopThread) {
  bool in_loop = false;
  {
    JoiningThread driver([&] {
      executor_.Post([&] { in_loop = executor_.InLoopThread(); });
      executor_.RunUntilIdle();
    });
  }
  EXPECT_TRUE(in_loop);
  EXPECT_FALSE(executor_.InLoopThread());
}

}  // namespace
}  // namespace corral::testing
