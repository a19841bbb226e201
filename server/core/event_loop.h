// One libevent loop on one thread. The coordination core and the stores run
// all their state changes here, so that state needs no locks; other threads
// (gRPC reactors) hand work over with Post().
#ifndef CORRAL_SERVER_CORE_EVENT_LOOP_H_
#define CORRAL_SERVER_CORE_EVENT_LOOP_H_

#include <cstdint>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/executor.h"

struct event_base;
struct event;

namespace corral {

class EventLoop final : public Executor {
 public:
  EventLoop();
  ~EventLoop() override;  // Stops the loop if it is running.
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the loop thread. Call once.
  void Start();
  // Runs the tasks already posted, then stops and joins the loop thread.
  // Call from any thread but the loop's own.
  void Stop();

  // Runs `task` on the loop thread, in posting order. Any thread.
  void Post(Task task) override;

  // Runs `task` on the loop thread after `delay`. Loop thread only.
  TimerId RunAfter(absl::Duration delay, Task task) override;
  // Cancels a timer that has not fired yet; a no-op otherwise. Loop thread
  // only.
  void Cancel(TimerId id) override;

  bool InLoopThread() const override {
    return std::this_thread::get_id() == thread_.get_id();
  }

  // For adapters that register their own events (hiredis). Loop thread only.
  event_base* base() const { return base_; }

 private:
  struct Timer;
  static void OnWakeup(int fd, short what, void* arg);
  static void OnTimer(int fd, short what, void* arg);
  void DrainPosted();

  event_base* base_;
  event* wakeup_;
  std::thread thread_;

  absl::Mutex mu_;
  std::deque<Task> posted_ ABSL_GUARDED_BY(mu_);
  bool wakeup_pending_ ABSL_GUARDED_BY(mu_) = false;

  // Loop thread only.
  TimerId next_timer_id_ = 1;
  absl::flat_hash_map<TimerId, Timer*> timers_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_EVENT_LOOP_H_
