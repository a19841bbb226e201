// Redis Sentinel, as the Redis store needs it: which node is the master
// named in the URI, and word when the sentinels switch it.
//
// Discover() asks the sentinels one at a time (SENTINEL
// get-master-addr-by-name), starting with the one that answered last, each
// within connect_timeout; the first address wins. Whether that node really
// is the master is the store's check (ROLE), not this class's.
//
// Watch() keeps one sentinel's +switch-master subscription open (moving to
// the next sentinel when it drops) and reports switches of our master.
//
// Threading: the loop thread only (create, call, destroy); callbacks run on
// it, possibly from inside a hiredis callback of this class's connections
// (so they must not destroy this object).
#ifndef CORRAL_SERVER_STORE_SENTINEL_CLIENT_H_
#define CORRAL_SERVER_STORE_SENTINEL_CLIENT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/event_loop.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_uri.h"

namespace corral {

class SentinelClient {
 public:
  using DiscoverCallback =
      absl::AnyInvocable<void(absl::StatusOr<RedisAddress>)>;
  using SwitchCallback = absl::AnyInvocable<void(const RedisAddress& master)>;

  // `options.sentinels` must not be empty; `loop` must outlive this.
  SentinelClient(EventLoop& loop, const RedisOptions& options);
  ~SentinelClient();
  SentinelClient(const SentinelClient&) = delete;
  SentinelClient& operator=(const SentinelClient&) = delete;

  // `done` runs once with the master's address, or (every sentinel failed
  // or knows no such master) StoreUnavailable listing what each said.
  // Replaces a discovery in flight, whose `done` is then dropped.
  void Discover(DiscoverCallback done);
  // Drops the discovery in flight (its `done` never runs).
  void CancelDiscovery();

  // From now on `on_switch` hears of every +switch-master of our master.
  void Watch(SwitchCallback on_switch);

  // Time-outs of a silent sentinel, and re-opening the watch. Call often
  // (the store's tick).
  void Tick(absl::Time now);

  // Closes everything; no callback runs afterwards. Idempotent.
  void Shutdown();

 private:
  void AskNext();
  void QueryFailed(uint64_t query, absl::Status error);
  void OpenWatch();
  void OnSwitchMessage(absl::string_view payload);
  std::unique_ptr<RedisConnection> OpenConnection(
      const RedisAddress& sentinel, RedisConnection::Handlers handlers,
      absl::Status* error);
  // Hands a connection to a posted task to destroy (we may be inside its
  // callbacks).
  void Retire(std::unique_ptr<RedisConnection> conn,
              const absl::Status& reason);

  EventLoop& loop_;
  const std::vector<RedisAddress> sentinels_;
  const std::string master_name_;
  const std::string password_;
  const absl::Duration timeout_;

  // The discovery in flight: query_ counts them, so late replies of an
  // abandoned one are told apart.
  DiscoverCallback done_;
  uint64_t query_ = 0;
  size_t asked_ = 0;      // sentinels asked in this discovery
  size_t preferred_ = 0;  // the sentinel that answered last
  size_t current_ = 0;    // the one being asked
  absl::Time asked_at_;
  std::unique_ptr<RedisConnection> conn_;
  std::vector<std::string> errors_;

  SwitchCallback on_switch_;
  std::unique_ptr<RedisConnection> watch_;
  size_t watch_index_ = 0;
  absl::Time watch_retry_at_ = absl::InfinitePast();
  bool shut_down_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_SENTINEL_CLIENT_H_
