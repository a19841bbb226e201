// The fixture of the Redis-backed store tests (redis_store_test,
// redis_sentinel_test, redis_cluster_test): a loop, the store under test
// (RedisStore or RedisClusterStore), a StoreRunner that drives it from the
// test thread and a RecordingListener. Each test starts its own Redis (a
// server, a Sentinel group, a cluster) and makes the store with MakeStore or
// ConnectStoreWith.
#ifndef CORRAL_TESTS_SERVER_STORE_REDIS_STORE_FIXTURE_H_
#define CORRAL_TESTS_SERVER_STORE_REDIS_STORE_FIXTURE_H_

#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/event_loop.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {

template <typename StoreT>
class RedisStoreFixture : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }

  void TearDown() override {
    if (store_) {
      if (runner_) {
        EXPECT_EQ(runner_->inline_answers(), 0) << "a callback ran inline";
      }
      store_->Shutdown();
    }
    loop_.Stop();
    runner_.reset();
    store_.reset();
  }

  // Sets the timeouts of a store that must notice a failover within a
  // test: connect 500 ms, replica acks 1 s (under load a WAIT was seen to
  // take over 500 ms), reconnects after 20 to 500 ms; and a 1 MiB read
  // cache. The command timeout and ping interval are each test's.
  static void UseFailoverTimeouts(RedisOptions& options) {
    options.replica_ack_timeout = absl::Milliseconds(1000);
    options.connect_timeout = absl::Milliseconds(500);
    options.reconnect_backoff_min = absl::Milliseconds(20);
    options.reconnect_backoff_max = absl::Milliseconds(500);
    options.read_cache.max_bytes = 1 << 20;
  }

  // Creates and starts the store (not waiting for the connection).
  void MakeStore(RedisOptions options) {
    store_ = std::make_unique<StoreT>(loop_, std::move(options));
    runner_ = std::make_unique<StoreRunner>(loop_, *store_);
    runner_->SetListener(&listener_);
    store_->Start();
  }

  // MakeStore, then waits until the store is connected and the listener
  // heard so.
  void ConnectStoreWith(RedisOptions options,
                        absl::Duration timeout = absl::Seconds(10)) {
    MakeStore(std::move(options));
    ASSERT_OK(store_->WaitUntilConnected(timeout));
    ASSERT_TRUE(listener_.WaitForAvailability(true));
  }

  EventLoop loop_;
  std::unique_ptr<StoreT> store_;
  std::unique_ptr<StoreRunner> runner_;
  RecordingListener listener_;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SERVER_STORE_REDIS_STORE_FIXTURE_H_
