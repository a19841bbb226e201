// What corrald needs of a Redis-backed store beyond the Store interface:
// start it, wait for it at start-up, shut it down. RedisStore (one master,
// optionally found through Sentinel) and RedisClusterStore implement it.
#ifndef CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_
#define CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/store.h"

namespace corral {

class RedisBackedStore : public Store {
 public:
  // Begins connecting (on the loop). Any thread; once.
  virtual void Start() = 0;
  // Blocks until connected, a non-retryable failure, or `timeout` (then the
  // latest error). Not on the loop thread.
  virtual absl::Status WaitUntilConnected(absl::Duration timeout) = 0;
  // Disconnects for good; idempotent. From a non-loop thread the loop must
  // be running.
  virtual void Shutdown() = 0;
};

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_BACKED_STORE_H_
