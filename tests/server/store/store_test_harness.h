// Drives a Store from the test thread: operations are posted to the loop and
// waited for; key events and availability changes are recorded and can be
// waited for. Shared by the behaviour suite and the Redis-specific tests.
#ifndef CORRAL_TESTS_SERVER_STORE_STORE_TEST_HARNESS_H_
#define CORRAL_TESTS_SERVER_STORE_STORE_TEST_HARNESS_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/event_loop.h"
#include "server/core/store.h"
#include "tests/support/on_loop.h"

namespace corral::testing {

// Records what a store tells its listener. Thread-safe.
class RecordingListener final : public StoreListener {
 public:
  void OnKeyEvent(const KeyEvent& event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  void OnStoreAvailability(bool up) override {
    absl::MutexLock lock(&mu_);
    availability_.push_back(up);
  }

  // Removes and returns the first recorded event matching `match`, waiting
  // up to `timeout` for one to arrive; nullopt if none did.
  std::optional<KeyEvent> TakeEvent(
      const std::function<bool(const KeyEvent&)>& match,
      absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    // Conditions must be pure: absl may evaluate one more than once.
    auto has_match = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::any_of(events_.begin(), events_.end(), match);
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&has_match), timeout)) {
      return std::nullopt;
    }
    auto it = std::find_if(events_.begin(), events_.end(), match);
    KeyEvent found = std::move(*it);
    events_.erase(it);
    return found;
  }
  std::optional<KeyEvent> TakeEvent(const CacheKey& key, KeyEvent::Kind kind,
                                    absl::Duration timeout = absl::Seconds(5)) {
    return TakeEvent(
        [&](const KeyEvent& e) { return e.key == key && e.kind == kind; },
        timeout);
  }

  // Waits until the latest availability report is `up`.
  bool WaitForAvailability(bool up, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto latest_is = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !availability_.empty() && availability_.back() == up;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&latest_is), timeout);
  }

  std::vector<KeyEvent> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<bool> availability() const {
    absl::MutexLock lock(&mu_);
    return availability_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<KeyEvent> events_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> availability_ ABSL_GUARDED_BY(mu_);
};

// Runs store operations on the loop and waits for their answers. Counts
// answers that arrived inline (before the store method returned), which the
// Store contract forbids.
class StoreRunner {
 public:
  StoreRunner(EventLoop& loop, Store& store) : loop_(loop), store_(store) {}

  // The whole read: value, remembered failure, lock held.
  absl::StatusOr<KeyRead> Read(const CacheKey& key) {
    return Call<KeyRead>(
        [key](Store& s, auto done) { s.Get(key, std::move(done)); });
  }
  // Just the value part of a read.
  absl::StatusOr<std::optional<StoredValue>> Get(const CacheKey& key) {
    absl::StatusOr<KeyRead> read = Read(key);
    if (!read.ok()) return read.status();
    return std::move(read->value);
  }
  absl::StatusOr<absl::Time> RememberFailure(const CacheKey& key,
                                             absl::Duration ttl) {
    return Call<absl::Time>([key, ttl](Store& s, auto done) {
      s.RememberFailure(key, ttl, std::move(done));
    });
  }
  absl::StatusOr<bool> Put(const CacheKey& key, std::string value,
                           PutOptions options) {
    return Call<bool>(
        [key, value = std::move(value), options](Store& s, auto done) mutable {
          s.Put(key, std::move(value), options, std::move(done));
        });
  }
  absl::StatusOr<bool> Put(const CacheKey& key, std::string value,
                           absl::Duration ttl) {
    PutOptions options;
    options.ttl = ttl;
    return Put(key, std::move(value), options);
  }
  absl::StatusOr<bool> Delete(const CacheKey& key) {
    return Call<bool>(
        [key](Store& s, auto done) { s.Delete(key, std::move(done)); });
  }
  absl::StatusOr<LockAttempt> TryLock(const CacheKey& key,
                                      const std::string& token,
                                      absl::Duration ttl) {
    return Call<LockAttempt>([key, token, ttl](Store& s, auto done) {
      s.TryLock(key, token, ttl, std::move(done));
    });
  }
  absl::StatusOr<LockAttempt> TryLockAndRead(const CacheKey& key,
                                             const std::string& token,
                                             absl::Duration ttl) {
    return Call<LockAttempt>([key, token, ttl](Store& s, auto done) {
      s.TryLockAndRead(key, token, ttl, std::move(done));
    });
  }
  absl::StatusOr<std::optional<absl::Time>> Renew(const CacheKey& key,
                                                  const std::string& token,
                                                  absl::Duration ttl) {
    return Call<std::optional<absl::Time>>(
        [key, token, ttl](Store& s, auto done) {
          s.RenewLock(key, token, ttl, std::move(done));
        });
  }
  absl::StatusOr<bool> Release(
      const CacheKey& key, const std::string& token,
      ReleaseNotice notice = ReleaseNotice::kReleased) {
    return Call<bool>([key, token, notice](Store& s, auto done) {
      s.ReleaseLock(key, token, notice, std::move(done));
    });
  }
  absl::StatusOr<HedgeClaim> ClaimHedge(
      const CacheKey& key, uint32_t max_hedges,
      absl::Duration keep = absl::Seconds(60)) {
    return Call<HedgeClaim>([key, max_hedges, keep](Store& s, auto done) {
      s.ClaimHedge(key, max_hedges, keep, std::move(done));
    });
  }
  absl::StatusOr<BudgetCharge> ChargeBudget(const std::string& ns,
                                            const std::string& slot,
                                            const BudgetLimits& limits,
                                            absl::Duration hold) {
    return Call<BudgetCharge>([ns, slot, limits, hold](Store& s, auto done) {
      s.ChargeBudget(ns, slot, limits, hold, std::move(done));
    });
  }
  absl::StatusOr<bool> RenewBudget(const std::string& ns,
                                   const std::string& slot,
                                   absl::Duration hold) {
    return Call<bool>([ns, slot, hold](Store& s, auto done) {
      s.RenewBudget(ns, slot, hold, std::move(done));
    });
  }
  absl::StatusOr<bool> ReturnBudget(const std::string& ns,
                                    const std::string& slot) {
    return Call<bool>([ns, slot](Store& s, auto done) {
      s.ReturnBudget(ns, slot, std::move(done));
    });
  }
  absl::Status Ping() {
    absl::StatusOr<bool> r = Call<bool>([](Store& s, auto done) {
      s.Ping([done = std::move(done)](absl::Status st) mutable {
        if (st.ok()) {
          done(true);
        } else {
          done(std::move(st));
        }
      });
    });
    return r.status();
  }
  void Watch(const CacheKey& key) {
    OnLoop([this, key] { store_.Watch(key); });
  }
  void Unwatch(const CacheKey& key) {
    OnLoop([this, key] { store_.Unwatch(key); });
  }
  void SetListener(StoreListener* listener) {
    OnLoop([this, listener] { store_.SetListener(listener); });
  }

  // Runs `fn` on the loop thread and waits for it.
  void OnLoop(absl::AnyInvocable<void()> fn) {
    ::corral::testing::RunOnLoop(loop_, std::move(fn));
  }

  int inline_answers() const { return inline_answers_->load(); }

  // Runs `op(store, done)` on the loop; waits up to 10 s for `done`.
  template <typename T, typename Op>
  absl::StatusOr<T> Call(Op op) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
    std::future<absl::StatusOr<T>> answer = promise->get_future();
    loop_.Post([this, op = std::move(op), promise,
                inline_answers = inline_answers_]() mutable {
      auto returned = std::make_shared<bool>(false);
      op(store_, Store::Callback<T>([promise, returned,
                                     inline_answers](absl::StatusOr<T> result) {
           if (!*returned) inline_answers->fetch_add(1);
           promise->set_value(std::move(result));
         }));
      *returned = true;
    });
    if (answer.wait_for(std::chrono::seconds(10)) !=
        std::future_status::ready) {
      return absl::DeadlineExceededError("the store did not answer in 10 s");
    }
    return answer.get();
  }

 private:
  EventLoop& loop_;
  Store& store_;
  std::shared_ptr<std::atomic<int>> inline_answers_ =
      std::make_shared<std::atomic<int>>(0);
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SERVER_STORE_STORE_TEST_HARNESS_H_
