// A Redis Cluster for one test: three masters and three replicas, each a
// real redis-server on a free loopback port (see RedisServer), made into a
// cluster by `redis-cli --cluster create ... --cluster-replicas 1` with a
// short cluster-node-timeout, so that a failover takes seconds.
//
// Every server is killed with the fixture. Not thread-safe: use from the
// test thread.
#ifndef CORRAL_TESTS_SUPPORT_REDIS_CLUSTER_H_
#define CORRAL_TESTS_SUPPORT_REDIS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace corral::testing {

class RedisCluster {
 public:
  struct Options {
    // cluster-node-timeout: how long a silent master has before its
    // replica takes over.
    absl::Duration node_timeout = absl::Milliseconds(1000);
  };

  // Starts the six servers, creates the cluster and waits until every node
  // says cluster_state:ok and every replica is in sync.
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start() {
    return Start(Options{});
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  RedisServer& node(int i) { return *nodes_[i]; }
  // redis-cluster://127.0.0.1:<p0>,127.0.0.1:<p1>,... (every node a seed).
  std::string uri() const;

  // Indices of the nodes that are masters now and serve slots (by ROLE and
  // CLUSTER SLOTS of a live node).
  std::vector<int> Masters();
  // The index of the node that serves `key`'s slot (-1 if none is known).
  int OwnerOfKey(const std::string& key);
  // The node's cluster id (CLUSTER MYID).
  absl::StatusOr<std::string> NodeId(int i);
  // The replica (index) of master `i`, -1 if none.
  int ReplicaOf(int master);

  // Waits until every live node says cluster_state:ok and agrees on which
  // nodes serve slots.
  absl::Status WaitUntilOk(absl::Duration timeout);
  // Waits until a live node other than `old_master` serves every slot that
  // `old_master` served (after it was killed).
  absl::Status WaitForFailover(int old_master, absl::Duration timeout);

  // Starts node `i` again (empty, with its nodes.conf) after it was killed
  // and lost its slots: it rejoins as a replica of its old replica. Waits
  // until it is in sync and the cluster is ok.
  absl::Status RestartAsReplica(int i, absl::Duration timeout);

  // Starts a seventh node, adds it as a master without slots
  // (`redis-cli --cluster add-node`) and waits until every node knows it.
  // Returns its index.
  absl::StatusOr<int> AddMaster(absl::Duration timeout);

  // Starts `redis-cli --cluster reshard` moving `slots` slots from master
  // `from` to master `to`; the caller waits for it.
  absl::StatusOr<std::unique_ptr<Subprocess>> StartReshard(int from, int to,
                                                           int slots);

 private:
  RedisCluster() = default;
  int IndexOfPort(int port) const;
  // A live node to ask.
  RedisServer* AnyLive();

  Options options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_REDIS_CLUSTER_H_
