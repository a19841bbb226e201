#include "server/core/event_loop.h"

#include <event2/event.h>
#include <event2/thread.h>

#include <cstdlib>
#include <utility>

namespace corral {
namespace {
void EnableLibeventThreads() {
  static const int rc = evthread_use_pthreads();
  if (rc != 0) std::abort();
}
}  // namespace

struct EventLoop::Timer {
  EventLoop* loop;
  TimerId id;
  event* ev;
  Task task;
};

EventLoop::EventLoop() {
  EnableLibeventThreads();
  base_ = event_base_new();
  if (base_ == nullptr) std::abort();
  // A persistent user event that other threads activate to hand over tasks.
  wakeup_ = event_new(base_, -1, EV_PERSIST, &EventLoop::OnWakeup, this);
  event_add(wakeup_, nullptr);
}

EventLoop::~EventLoop() {
  if (thread_.joinable()) Stop();
  for (auto& [id, timer] : timers_) {
    event_free(timer->ev);
    delete timer;
  }
  event_free(wakeup_);
  event_base_free(base_);
}

void EventLoop::Start() {
  // NO_EXIT_ON_EMPTY: the wakeup event has no fd, so libevent does not count
  // it, and a loop with nothing else registered would return at once and
  // never run what is posted later.
  thread_ =
      std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
}

void EventLoop::Stop() {
  if (!thread_.joinable()) return;
  Post([this] {
    DrainPosted();
    event_base_loopbreak(base_);
  });
  thread_.join();
  thread_ = std::thread();
}

void EventLoop::Post(Task task) {
  bool activate = false;
  {
    absl::MutexLock lock(&mu_);
    posted_.push_back(std::move(task));
    activate = !wakeup_pending_;
    wakeup_pending_ = true;
  }
  if (activate) event_active(wakeup_, EV_READ, 0);
}

void EventLoop::OnWakeup(int, short, void* arg) {
  static_cast<EventLoop*>(arg)->DrainPosted();
}

void EventLoop::DrainPosted() {
  std::deque<Task> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(posted_);
    wakeup_pending_ = false;
  }
  for (Task& task : batch) std::move(task)();
}

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay, Task task) {
  auto* timer = new Timer{this, next_timer_id_++, nullptr, std::move(task)};
  timer->ev = evtimer_new(base_, &EventLoop::OnTimer, timer);
  timeval tv = absl::ToTimeval(std::max(delay, absl::ZeroDuration()));
  evtimer_add(timer->ev, &tv);
  timers_[timer->id] = timer;
  return timer->id;
}

void EventLoop::Cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  event_free(it->second->ev);
  delete it->second;
  timers_.erase(it);
}

void EventLoop::OnTimer(int, short, void* arg) {
  auto* timer = static_cast<Timer*>(arg);
  EventLoop* loop = timer->loop;
  Task task = std::move(timer->task);
  loop->timers_.erase(timer->id);
  event_free(timer->ev);
  delete timer;
  std::move(task)();
}

}  // namespace corral
