#include "client/cpp/lock_guard.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace corral::client {

struct LockGuard::State {
  Client* client = nullptr;
  std::string ns;
  std::string key;
  std::string token;
  uint64_t fencing_token = 0;
  absl::Duration ttl;
  absl::Duration period;
  absl::Duration waited;
  absl::AnyInvocable<void()> on_lost;

  mutable absl::Mutex mu;
  bool stop ABSL_GUARDED_BY(mu) = false;
  bool lost ABSL_GUARDED_BY(mu) = false;
  absl::Time expires_at ABSL_GUARDED_BY(mu);
  // When the lock expires at the latest by the client's clock: the server's
  // expires_at comes from another clock, so losses are judged by this.
  absl::Time local_expiry ABSL_GUARDED_BY(mu);

  bool released = false;  // Owner thread only.
  std::thread renewer;

  void RenewLoop();
  void MarkLost();
  // Waits until `until` or Stop(); true when stopped.
  bool WaitForStop(absl::Time until);
  void Stop();
};

bool LockGuard::State::WaitForStop(absl::Time until) {
  absl::MutexLock lock(&mu);
  return mu.AwaitWithDeadline(absl::Condition(&stop), until);
}

void LockGuard::State::Stop() {
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  if (renewer.joinable()) renewer.join();
}

void LockGuard::State::MarkLost() {
  {
    absl::MutexLock lock(&mu);
    lost = true;
  }
  if (on_lost) on_lost();
}

void LockGuard::State::RenewLoop() {
  absl::Time next = absl::Now() + period;
  while (!WaitForStop(next)) {
    const absl::Time sent = absl::Now();
    absl::Time local_expiry_now;
    {
      absl::MutexLock lock(&mu);
      local_expiry_now = local_expiry;
    }
    // A renewal that lands after expiry is pointless; bound the call by it.
    CallOptions call;
    call.timeout = std::max(local_expiry_now - sent, absl::Milliseconds(1));
    absl::StatusOr<RenewLockResult> renewed =
        client->RenewLock(ns, key, token, ttl, call);
    const absl::Time now = absl::Now();
    if (renewed.ok() && renewed->renewed) {
      absl::MutexLock lock(&mu);
      expires_at = renewed->expires_at;
      local_expiry = sent + ttl;
      next = now + period;
      continue;
    }
    if ((renewed.ok() && !renewed->renewed) || now >= local_expiry_now) {
      MarkLost();
      return;
    }
    // A failed renewal (corrald restarting, network): try again soon, while
    // the lock is still ours.
    next = now + std::clamp((local_expiry_now - now) / 4,
                            absl::Milliseconds(10), period);
  }
}

absl::StatusOr<LockGuard> LockGuard::Acquire(
    Client& client, absl::string_view ns, absl::string_view key,
    absl::Duration ttl, std::optional<absl::Duration> wait_timeout,
    LockGuardOptions options) {
  options.ttl = ttl;
  options.wait_timeout = wait_timeout;
  return Acquire(client, ns, key, std::move(options));
}

absl::StatusOr<LockGuard> LockGuard::Acquire(Client& client,
                                             absl::string_view ns,
                                             absl::string_view key,
                                             LockGuardOptions options) {
  const absl::Duration ttl = options.ttl;
  const std::optional<absl::Duration> wait_timeout = options.wait_timeout;
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("LockGuard: ttl must be positive");
  }
  const absl::Time sent = absl::Now();
  AcquireLockOptions acquire;
  acquire.ttl = ttl;
  acquire.wait_timeout = wait_timeout;
  acquire.owner = options.owner;
  absl::StatusOr<AcquireLockResult> acquired =
      client.AcquireLock(ns, key, acquire);
  if (!acquired.ok()) return acquired.status();
  if (!acquired->acquired) {
    return absl::DeadlineExceededError(
        absl::StrCat("lock not acquired within ",
                     wait_timeout ? absl::FormatDuration(*wait_timeout)
                                  : std::string("the namespace's wait_timeout"),
                     " (waited ", absl::FormatDuration(acquired->waited), ")"));
  }
  auto state = std::make_unique<State>();
  state->client = &client;
  state->ns = std::string(ns);
  state->key = std::string(key);
  state->token = acquired->token;
  state->fencing_token = acquired->fencing_token;
  state->ttl = ttl;
  state->period = options.renew_every.value_or(ttl / 3);
  state->waited = acquired->waited;
  state->on_lost = std::move(options.on_lost);
  {
    absl::MutexLock lock(&state->mu);
    state->expires_at = acquired->expires_at;
    state->local_expiry = sent + ttl;
  }
  State* raw = state.get();
  state->renewer = std::thread([raw] { raw->RenewLoop(); });
  return LockGuard(std::move(state));
}

LockGuard::LockGuard(std::unique_ptr<State> state) : state_(std::move(state)) {}

LockGuard::LockGuard(LockGuard&& other) noexcept = default;

LockGuard& LockGuard::operator=(LockGuard&& other) noexcept {
  if (this != &other) {
    if (state_ && !state_->released) Release().IgnoreError();
    state_ = std::move(other.state_);
  }
  return *this;
}

LockGuard::~LockGuard() {
  if (state_ && !state_->released) Release().IgnoreError();
}

absl::StatusOr<bool> LockGuard::Release(Outcome outcome) {
  if (!state_ || state_->released) {
    return absl::FailedPreconditionError("LockGuard: nothing to release");
  }
  state_->Stop();
  state_->released = true;
  absl::StatusOr<ReleaseLockResult> released = state_->client->ReleaseLock(
      state_->ns, state_->key, state_->token, outcome);
  if (!released.ok()) return released.status();
  return released->released;
}

std::string LockGuard::token() const {
  return state_ ? state_->token : std::string();
}

uint64_t LockGuard::fencing_token() const {
  return state_ ? state_->fencing_token : 0;
}

absl::Time LockGuard::expires_at() const {
  if (!state_) return absl::InfinitePast();
  absl::MutexLock lock(&state_->mu);
  return state_->expires_at;
}

absl::Duration LockGuard::waited() const {
  return state_ ? state_->waited : absl::ZeroDuration();
}

bool LockGuard::lost() const {
  if (!state_) return false;
  absl::MutexLock lock(&state_->mu);
  return state_->lost;
}

}  // namespace corral::client
