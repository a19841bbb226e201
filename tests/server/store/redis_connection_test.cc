// The subscriber side of RedisConnection against a real redis-server:
// channels dropped and taken back before Redis answers, which hiredis 0.14
// tracks per channel by the confirmations it reads, not by what was sent.
#include "server/store/redis_connection.h"

#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/event_loop.h"
#include "tests/support/on_loop.h"
#include "tests/support/poll.h"
#include "tests/support/redis_server.h"

namespace corral {
namespace {

using ::corral::testing::PollUntil;
using ::corral::testing::RedisServer;

// What the subscriber's handlers saw. Thread-safe.
class Heard {
 public:
  void Subscribed(absl::string_view channel) {
    absl::MutexLock lock(&mu_);
    subscribed_.emplace_back(channel);
  }
  void Message(absl::string_view channel, absl::string_view payload) {
    absl::MutexLock lock(&mu_);
    messages_.push_back(absl::StrCat(channel, "=", payload));
  }
  void Down(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    down_ = status;
  }
  bool HeardMessage(const std::string& message) const {
    absl::MutexLock lock(&mu_);
    for (const std::string& m : messages_) {
      if (m == message) return true;
    }
    return false;
  }
  absl::Status down() const {
    absl::MutexLock lock(&mu_);
    return down_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> subscribed_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
  absl::Status down_ ABSL_GUARDED_BY(mu_);
};

class RedisSubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    loop_.Start();
    OnLoop([this] {
      RedisConnection::Handlers handlers;
      handlers.on_down = [this](absl::Status s) { heard_.Down(s); };
      handlers.on_subscribed = [this](absl::string_view ch) {
        heard_.Subscribed(ch);
      };
      handlers.on_message = [this](absl::string_view ch, absl::string_view p) {
        heard_.Message(ch, p);
      };
      auto connection = RedisConnection::Connect(
          loop_, "127.0.0.1", server_->port(), std::move(handlers));
      ASSERT_TRUE(connection.ok()) << connection.status();
      subscriber_ = *std::move(connection);
    });
  }

  void TearDown() override {
    OnLoop([this] { subscriber_.reset(); });
    loop_.Stop();
  }

  void OnLoop(absl::AnyInvocable<void()> fn) {
    ::corral::testing::RunOnLoop(loop_, std::move(fn));
  }

  // Publishes `payload` on `channel` until the subscriber hears it (a
  // SUBSCRIBE still on its way to Redis misses a publish).
  bool Delivered(const std::string& channel, const std::string& payload) {
    return PollUntil([&] {
      return server_->Command({"PUBLISH", channel, payload}).ok() &&
             PollUntil(
                 [&] {
                   return heard_.HeardMessage(
                       absl::StrCat(channel, "=", payload));
                 },
                 absl::Milliseconds(50));
    });
  }

  EventLoop loop_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisConnection> subscriber_;
  Heard heard_;
};

// The connection's only channel: its "unsubscribe" confirmation leaves
// the connection with no subscription at all while the SUBSCRIBE sent
// after it is still unanswered.
TEST_F(RedisSubscriberTest, TheOnlyChannelDroppedAndTakenBackAtOnce) {
  OnLoop([this] { subscriber_->Subscribe("a"); });
  ASSERT_TRUE(Delivered("a", "first"));
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    OnLoop([this] {
      subscriber_->Unsubscribe("a");
      subscriber_->Subscribe("a");
    });
    ASSERT_TRUE(Delivered("a", absl::StrCat("m", round)));
  }
  EXPECT_TRUE(heard_.down().ok()) << heard_.down();
}

// One of several channels, many times within one loop turn; then the
// channel is really dropped and no longer heard, its neighbour still is.
TEST_F(RedisSubscriberTest, OneOfSeveralDroppedAndTakenBackManyTimes) {
  OnLoop([this] {
    subscriber_->Subscribe("keep");
    subscriber_->Subscribe("a");
  });
  ASSERT_TRUE(Delivered("keep", "0"));
  ASSERT_TRUE(Delivered("a", "0"));
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    OnLoop([this] {
      for (int i = 0; i < 10; ++i) {
        subscriber_->Unsubscribe("a");
        subscriber_->Subscribe("a");
      }
    });
    ASSERT_TRUE(Delivered("a", absl::StrCat("m", round)));
  }
  OnLoop([this] { subscriber_->Unsubscribe("a"); });
  // Redis has dropped it once PUBSUB NUMSUB says so.
  ASSERT_TRUE(PollUntil([&] {
    auto subscribers = server_->Command({"PUBSUB", "NUMSUB", "a"});
    return subscribers.ok() && *subscribers == "a\n0";
  }));
  ASSERT_TRUE(server_->Command({"PUBLISH", "a", "gone"}).ok());
  ASSERT_TRUE(Delivered("keep", "1"));  // Published after "gone".
  EXPECT_FALSE(heard_.HeardMessage("a=gone"));
  EXPECT_TRUE(heard_.down().ok()) << heard_.down();
}

}  // namespace
}  // namespace corral
