// RAII holder of one corral lock, renewed in the background.
//
//   LockGuardOptions options;
//   options.ttl = absl::Seconds(30);
//   absl::StatusOr<LockGuard> lock =
//       LockGuard::Acquire(client, "plant_id", key, std::move(options));
//   if (!lock.ok()) return lock.status();
//   ... compute ...
//   SetOptions set;
//   set.lock_token = lock->token();   // Fenced: stored only while held.
//   client.Set("plant_id", key, value, set);
//   lock->Release(Outcome::kSuccess);  // Or let the destructor release it.
//
// Acquire either returns a guard that holds the lock or an error: a lock not
// acquired within `wait_timeout` is DEADLINE_EXCEEDED ("lock not acquired
// within 15s"), so a guard never has to be asked whether it holds anything.
// While the guard lives a background thread renews the lock every ttl/3. If
// the server says it was not renewed (another holder got it after expiry),
// or renewals fail until the lock has expired, lost() turns true and
// on_lost runs once; the fencing token then no longer protects writes.
#ifndef CORRAL_CLIENT_CPP_LOCK_GUARD_H_
#define CORRAL_CLIENT_CPP_LOCK_GUARD_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cpp/corral_client.h"

namespace corral::client {

struct LockGuardOptions {
  // The lock's expiry, renewed while the guard lives. Must be positive.
  absl::Duration ttl = absl::Seconds(30);
  // How long corrald waits for the lock: zero tries once. Unset: the
  // namespace's wait_timeout.
  std::optional<absl::Duration> wait_timeout;
  std::string owner;  // Empty: ClientOptions::worker_id.
  // Runs once, on the renewal thread, when the lock is lost. It must not
  // destroy or Release() the guard (that joins the renewal thread).
  absl::AnyInvocable<void()> on_lost;
  // Renewal period; unset is ttl / 3.
  std::optional<absl::Duration> renew_every;
};

class LockGuard {
 public:
  // `client` must outlive the guard.
  static absl::StatusOr<LockGuard> Acquire(Client& client, absl::string_view ns,
                                           absl::string_view key,
                                           LockGuardOptions options = {});
  // The same with ttl and wait_timeout in order. Kept for existing callers;
  // new code sets them in LockGuardOptions.
  static absl::StatusOr<LockGuard> Acquire(
      Client& client, absl::string_view ns, absl::string_view key,
      absl::Duration ttl,
      std::optional<absl::Duration> wait_timeout = std::nullopt,
      LockGuardOptions options = {});

  LockGuard(LockGuard&& other) noexcept;
  // Releases the lock this guard held, then takes over `other`'s.
  LockGuard& operator=(LockGuard&& other) noexcept;
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  // Stops renewing and releases (outcome unspecified) unless Release ran.
  ~LockGuard();

  // Stops renewing, then releases the lock, telling the breaker `outcome`.
  // Returns whether the server released it (false: it had been lost). A
  // second call, or a call on a moved-from guard, is FAILED_PRECONDITION.
  // Not to be called from on_lost.
  absl::StatusOr<bool> Release(Outcome outcome = Outcome::kUnspecified);

  // Thread-safe accessors. Empty / zero on a moved-from guard.
  std::string token() const;
  uint64_t fencing_token() const;
  // The server's word on when the lock expires, as of the last renewal.
  absl::Time expires_at() const;
  // The wait the acquisition took.
  absl::Duration waited() const;
  bool lost() const;

 private:
  struct State;
  explicit LockGuard(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_LOCK_GUARD_H_
