// Tracked reads with a read cache of zero bytes (docs/ARCHITECTURE.md 3.8):
// the near cache needs the store to hear of every change of the keys it
// reads, not to hold their values. On the embedded store and on a real
// redis-server: a read is tracked once the store is coherent, a write that
// overtakes the read spoils it, and changes reach the listener.
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/clock.h"
#include "server/core/event_loop.h"
#include "server/core/read_cache.h"
#include "server/store/embedded_store.h"
#include "server/store/redis_store.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/poll.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::IsOk;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::PollUntil;
using ::corral::testing::RedisServer;
using ::corral::testing::StoreRunner;

enum class Backend { kEmbedded, kRedis };

// What the near cache's hub would hear: the keys the store said changed
// (an empty string for "everything may have").
class Invalidations {
 public:
  void Add(const CacheKey* key) {
    absl::MutexLock lock(&mu_);
    keys_.push_back(key == nullptr ? "" : key->key);
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    keys_.clear();
  }
  bool Saw(const std::string& key) const {
    absl::MutexLock lock(&mu_);
    for (const std::string& k : keys_) {
      if (k == key) return true;
    }
    return false;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> keys_ ABSL_GUARDED_BY(mu_);
};

class TrackedReadTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    loop_.Start();
    ReadCacheOptions tracking;  // max_bytes 0: nothing is ever cached.
    tracking.on_invalidate = [this](const CacheKey* key) {
      invalidations_.Add(key);
    };
    if (GetParam() == Backend::kRedis) {
      auto server = RedisServer::Start();
      ASSERT_OK(server.status());
      server_ = *std::move(server);
      redis_ = NewRedisStore(tracking);
      store_ = redis_.get();
      other_ = NewRedisStore({});
      other_runner_ = std::make_unique<StoreRunner>(loop_, *other_);
    } else {
      embedded_ = std::make_unique<EmbeddedStore>(loop_, clock_, tracking);
      store_ = embedded_.get();
    }
    runner_ = std::make_unique<StoreRunner>(loop_, *store_);
  }

  void TearDown() override {
    if (redis_) redis_->Shutdown();
    if (other_) other_->Shutdown();
    loop_.Stop();
  }

  std::unique_ptr<RedisStore> NewRedisStore(ReadCacheOptions read_cache) {
    absl::StatusOr<RedisOptions> options = ParseRedisUri(server_->uri());
    EXPECT_OK(options.status());
    options->reconnect_backoff_min = absl::Milliseconds(20);
    options->read_cache = std::move(read_cache);
    auto store = std::make_unique<RedisStore>(loop_, *std::move(options));
    store->Start();
    EXPECT_OK(store->WaitUntilConnected(absl::Seconds(5)));
    return store;
  }

  // Redis turns tracking on shortly after connecting: read until a read is
  // tracked.
  bool ReadUntilTracked(const CacheKey& key) {
    return PollUntil(
        [&] {
          absl::StatusOr<KeyRead> read = runner_->Read(key);
          return read.ok() && read->tracked;
        },
        absl::Seconds(3));
  }

  // A Get and a Put of `key` issued in one loop task, the Get first: the
  // Put's invalidation reaches the store before the Get's answer does.
  absl::StatusOr<KeyRead> ReadOvertakenByWrite(const CacheKey& key) {
    std::promise<absl::StatusOr<KeyRead>> read;
    std::promise<absl::StatusOr<bool>> written;
    PutOptions ttl;
    ttl.ttl = absl::Seconds(30);
    loop_.Post([&] {
      store_->Get(key, [&](absl::StatusOr<KeyRead> r) {
        read.set_value(std::move(r));
      });
      store_->Put(key, "overtaking", ttl, [&](absl::StatusOr<bool> stored) {
        written.set_value(std::move(stored));
      });
    });
    EXPECT_THAT(written.get_future().get(), IsOkAndHolds(true));
    return read.get_future().get();
  }

  const CacheKey key_{"ns", "key"};
  FakeClock clock_;
  EventLoop loop_;
  Invalidations invalidations_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisStore> redis_;
  std::unique_ptr<EmbeddedStore> embedded_;
  Store* store_ = nullptr;
  std::unique_ptr<RedisStore> other_;  // Another replica (Redis only).
  std::unique_ptr<StoreRunner> other_runner_;
  std::unique_ptr<StoreRunner> runner_;
};

TEST_P(TrackedReadTest, AZeroByteReadCacheTracksButHoldsNothing) {
  ASSERT_NE(store_->read_cache(), nullptr);
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilTracked(key_));
  EXPECT_EQ(store_->read_cache()->entries(), 0u);
  EXPECT_EQ(store_->read_cache()->Find(key_), nullptr);
  // A miss is tracked too: the key's first value will be heard of.
  const CacheKey missing{"ns", "missing"};
  absl::StatusOr<KeyRead> read = runner_->Read(missing);
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_FALSE(read->value.has_value());
  EXPECT_TRUE(read->tracked);
}

TEST_P(TrackedReadTest, AReadOvertakenByAWriteIsNotTracked) {
  ASSERT_THAT(runner_->Put(key_, "old", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilTracked(key_));
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<KeyRead> read = ReadOvertakenByWrite(key_);
    ASSERT_THAT(read.status(), IsOk());
    EXPECT_FALSE(read->tracked) << "round " << i;
  }
  // The next read, with nothing overtaking it, is.
  absl::StatusOr<KeyRead> read = runner_->Read(key_);
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_TRUE(read->tracked);
  EXPECT_EQ(read->value->value, "overtaking");
}

TEST_P(TrackedReadTest, ChangesOfATrackedKeyReachTheListener) {
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilTracked(key_));
  invalidations_.Clear();
  const std::string changed = "changed";
  if (other_runner_ != nullptr) {
    // Another replica's write: heard of through CLIENT TRACKING.
    ASSERT_THAT(other_runner_->Put(key_, changed, absl::Seconds(30)),
                IsOkAndHolds(true));
  } else {
    ASSERT_THAT(runner_->Put(key_, changed, absl::Seconds(30)),
                IsOkAndHolds(true));
  }
  EXPECT_TRUE(PollUntil([&] { return invalidations_.Saw("key"); }));
}

INSTANTIATE_TEST_SUITE_P(Stores, TrackedReadTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kRedis),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kEmbedded ? "Embedded"
                                                                   : "Redis";
                         });

}  // namespace
}  // namespace corral
