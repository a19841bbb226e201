// A Redis Sentinel deployment for one test: a master, one replica and three
// sentinels (quorum 2), each a real redis-server on a free port (see
// RedisServer), with short timeouts so that a failover takes seconds.
//
// Not thread-safe: use from the test thread.
#ifndef CORRAL_TESTS_SUPPORT_SENTINEL_GROUP_H_
#define CORRAL_TESTS_SUPPORT_SENTINEL_GROUP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/redis_server.h"

namespace corral::testing {

class SentinelGroup {
 public:
  struct Options {
    std::string master_name = "corral";
    // Sentinel's down-after-milliseconds: how long a silent master has
    // before it is deemed down.
    absl::Duration down_after = absl::Seconds(1);
    absl::Duration failover_timeout = absl::Seconds(3);
  };

  // Starts everything and waits until the replica is in sync and every
  // sentinel knows the replica and the other two sentinels (so that a
  // failover can happen at once).
  static absl::StatusOr<std::unique_ptr<SentinelGroup>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<SentinelGroup>> Start() {
    return Start(Options{});
  }

  // The data nodes: index 0 started as the master, 1 as its replica.
  RedisServer& node(int i) { return *nodes_[i]; }
  RedisServer& sentinel(int i) { return *sentinels_[i]; }
  // The node that is master now, by ROLE (polling up to `timeout`); -1 if
  // none is.
  int MasterIndex(absl::Duration timeout = absl::Seconds(0));

  // redis-sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/<name>
  std::string uri() const;
  const std::string& master_name() const { return options_.master_name; }

  // Waits until every live sentinel names node `i` as the master and that
  // node says ROLE master.
  absl::Status WaitForMaster(int i, absl::Duration timeout);
  // Starts node `i` again (empty) as a replica of node `master`, and waits
  // until it is in sync: after a failover, the old master coming back.
  absl::Status RestartAsReplica(int i, int master, absl::Duration timeout);
  // Waits until the master's replication offset reached node `i`.
  absl::Status WaitForReplication(int i, absl::Duration timeout);

 private:
  explicit SentinelGroup(Options options) : options_(std::move(options)) {}
  absl::Status WaitUntilReady(absl::Duration timeout);

  const Options options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_SENTINEL_GROUP_H_
