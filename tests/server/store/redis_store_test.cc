// What only the Redis store has: URIs, outages (down, killed, hung),
// reconnects, pipelining, authentication, the script cache and the key
// layout. Each test starts its own redis-server.
#include "server/store/redis_store.h"

#include <atomic>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/core/event_loop.h"
#include "server/store/redis_scripts.h"
#include "server/store/redis_uri.h"
#include "tests/server/store/redis_store_fixture.h"
#include "tests/server/store/store_test_harness.h"
#include "tests/support/free_port.h"
#include "tests/support/poll.h"
#include "tests/support/redis_server.h"
#include "tests/support/sanitizers.h"
#include "tests/support/status_matchers.h"

namespace corral {
namespace {

using ::corral::testing::ClosedPort;
using ::corral::testing::IsOkAndHolds;
using ::corral::testing::PollUntil;
using ::corral::testing::RecordingListener;
using ::corral::testing::RedisServer;
using ::corral::testing::StatusIs;
using ::corral::testing::StoreRunner;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

// ---------------------------------------------------------------- URIs

struct UriCase {
  std::string uri;
  std::string host;
  int port;
  std::string user;
  std::string password;
  int db;
};

TEST(ParseRedisUriTest, AcceptsTheDocumentedForms) {
  const std::vector<UriCase> cases = {
      {"redis://localhost", "localhost", 6379, "", "", 0},
      {"redis://127.0.0.1:6390", "127.0.0.1", 6390, "", "", 0},
      {"redis://127.0.0.1:6390/", "127.0.0.1", 6390, "", "", 0},
      {"redis://h:1/15", "h", 1, "", "", 15},
      {"redis://:secret@h:7000", "h", 7000, "", "secret", 0},
      {"redis://corral:pw@h:7000/2", "h", 7000, "corral", "pw", 2},
      {"redis://u%40x:p%3A%2F%40%25@h", "h", 6379, "u@x", "p:/@%", 0},
      {"redis://:p@ss@h:1", "h", 1, "", "p@ss", 0},  // Last '@' ends userinfo.
      {"REDIS://H:2", "H", 2, "", "", 0},
      {"redis://[::1]:6380/1", "::1", 6380, "", "", 1},
      // An ACL user whose password corrald reads from a file or $ENV.
      {"redis://corral@h:7000", "h", 7000, "corral", "", 0},
  };
  for (const UriCase& c : cases) {
    SCOPED_TRACE(c.uri);
    auto parsed = ParseRedisUri(c.uri);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->host, c.host);
    EXPECT_EQ(parsed->port, c.port);
    EXPECT_EQ(parsed->user, c.user);
    EXPECT_EQ(parsed->password, c.password);
    EXPECT_EQ(parsed->db, c.db);
    EXPECT_EQ(parsed->connect_timeout, absl::Seconds(1));
    EXPECT_EQ(parsed->command_timeout, absl::Seconds(2));
  }
}

TEST(ParseRedisUriTest, RejectsWithAClearMessageAndNeverThePassword) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "must start with redis://"},
      {"http://h:1", "must start with redis://"},
      {"rediss://h:1", "TLS"},
      {"redis://", "host is missing"},
      {"redis://:1", "host is missing"},
      {"redis://h:", "port after ':' is empty"},
      {"redis://h:0", "port"},
      {"redis://h:65536", "port"},
      {"redis://h:12ab", "port"},
      {"redis://h:-1", "port"},
      {"redis://h:1/x", "database"},
      {"redis://h:1/-2", "database"},
      {"redis://h:1?db=2", "query"},
      {"redis://@h", "user before '@' is empty"},
      {"redis://u:@h", "password after ':' is empty"},
      {"redis://u:secret%zz@h", "password has a malformed percent-escape"},
      {"redis://u%g:secret@h", "user has a malformed percent-escape"},
      {"redis://[::1:6379", "IPv6"},
      {"redis://:secret@h:port", "port"},
  };
  for (const auto& [uri, expected] : cases) {
    SCOPED_TRACE(uri);
    auto parsed = ParseRedisUri(uri);
    ASSERT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(expected));
    EXPECT_THAT(std::string(parsed.status().message()),
                Not(HasSubstr("secret")));
  }
}

TEST(ParseRedisUriTest, DescribeMasksThePassword) {
  auto parsed = ParseRedisUri("redis://corral:secret@h:7000/2");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Describe(), "redis://corral:***@h:7000/2");
}

TEST(RedisScriptsTest, ValueKeysDecodeBackToTheirCacheKeys) {
  for (const CacheKey& key :
       {CacheKey{"ns", "k"}, CacheKey{"a.b-c_1", std::string("x:y}:v\0z", 8)},
        CacheKey{"ns", ":v"}}) {
    RedisItemKeys keys = RedisKeysFor(key);
    EXPECT_THAT(CacheKeyOfValueKey(keys.value), Optional(Eq(key)))
        << keys.value;
    EXPECT_EQ(CacheKeyOfValueKey(keys.lock), std::nullopt);
    EXPECT_EQ(CacheKeyOfValueKey(keys.failure), std::nullopt);
  }
  EXPECT_EQ(CacheKeyOfValueKey("corral:{0000}:ns:k:v"),
            std::nullopt);  // Wrong hash.
  EXPECT_EQ(CacheKeyOfValueKey("someone:else:v"), std::nullopt);
  EXPECT_EQ(CacheKeyOfValueKey(RedisBreakerKey("ns")), std::nullopt);
}

TEST(RedisScriptsTest, DecodesWhatTheScriptsPublish) {
  auto fill =
      DecodeKeyMessage(std::string("F1700000000123:1700000010123:a\0:b", 33));
  ASSERT_TRUE(fill.ok()) << fill.status();
  EXPECT_EQ(fill->kind, KeyEvent::Kind::kFilled);
  EXPECT_EQ(fill->value->stored_at, absl::FromUnixMillis(1700000000123));
  EXPECT_EQ(fill->value->expires_at, absl::FromUnixMillis(1700000010123));
  EXPECT_EQ(fill->value->value, std::string("a\0:b", 4));
  auto timed = DecodeKeyMessage(
      std::string("G1700000000123:1700000010123:250:a\0:b", 37));
  ASSERT_TRUE(timed.ok()) << timed.status();
  EXPECT_EQ(timed->value->stored_at, absl::FromUnixMillis(1700000000123));
  EXPECT_EQ(timed->value->expires_at, absl::FromUnixMillis(1700000010123));
  EXPECT_EQ(timed->value->compute_time, absl::Milliseconds(250));
  EXPECT_EQ(timed->value->value, std::string("a\0:b", 4));
  EXPECT_FALSE(DecodeKeyMessage("G1:2:v").ok());
  EXPECT_FALSE(DecodeKeyMessage("G1:2:x:v").ok());
  EXPECT_THAT(DecodeKeyMessage("F1:2:"),
              IsOkAndHolds(::testing::Field(&KeyMessage::kind,
                                            KeyEvent::Kind::kFilled)));
  EXPECT_EQ(DecodeKeyMessage("R")->kind, KeyEvent::Kind::kReleased);
  EXPECT_EQ(DecodeKeyMessage("X")->kind, KeyEvent::Kind::kUpstreamFailed);
  EXPECT_FALSE(DecodeKeyMessage("").ok());
  EXPECT_FALSE(DecodeKeyMessage("F12").ok());
  EXPECT_FALSE(DecodeKeyMessage("Fx:1:v").ok());
  EXPECT_FALSE(DecodeKeyMessage("Q").ok());
}

// ---------------------------------------------------------------- Fixture

class RedisStoreTest : public ::corral::testing::RedisStoreFixture<RedisStore> {
 protected:
  void StartServer(RedisServer::Options options = {}) {
    auto server = RedisServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  static RedisOptions FastOptions(const std::string& uri) {
    auto options = ParseRedisUri(uri);
    if (!options.ok()) std::abort();
    options->connect_timeout = absl::Milliseconds(500);
    options->command_timeout = absl::Milliseconds(500);
    options->ping_interval = absl::Milliseconds(100);
    options->reconnect_backoff_min = absl::Milliseconds(20);
    options->reconnect_backoff_max = absl::Milliseconds(200);
    return *options;
  }

  void ConnectStore() {
    MakeStore(FastOptions(server_->uri()));
    ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  }

  static bool WaitUntil(const std::function<bool()>& condition,
                        absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  static void ExpectStoreUnavailable(const absl::Status& status) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_EQ(ReasonOf(status), kReasonStoreUnavailable) << status;
  }

  const CacheKey key_{"ns", "key"};
  std::unique_ptr<RedisServer> server_;
};

// ---------------------------------------------------------------- Outages

TEST_F(RedisStoreTest, NothingListeningIsAClearErrorAndOpsFailFast) {
  ClosedPort closed;  // Bound, never listening: refused, and ours alone.
  const int port = closed.port();
  MakeStore(FastOptions(absl::StrCat("redis://127.0.0.1:", port)));
  const absl::Status status =
      store_->WaitUntilConnected(absl::Milliseconds(300));
  ExpectStoreUnavailable(status);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat("cannot connect to 127.0.0.1:", port,
                                     ": Connection refused")));
  EXPECT_FALSE(store_->IsUp());

  for (int i = 0; i < 20; ++i) {
    const absl::Time start = absl::Now();
    auto got = runner_->Get(key_);
    const absl::Duration took = absl::Now() - start;
    ExpectStoreUnavailable(got.status());
    // Not the 500 ms command timeout (a plain build only: sanitizers.h).
    if (!corral::testing::kSanitized) {
      EXPECT_LT(took, absl::Milliseconds(100));
    }
  }
  EXPECT_THAT(runner_->TryLock(key_, "a", absl::Seconds(1)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(runner_->Ping(), StatusIs(absl::StatusCode::kUnavailable));
  // The store never was up: no availability report.
  EXPECT_TRUE(listener_.availability().empty());
}

TEST_F(RedisStoreTest, KilledAndRestartedServerIsReconnectedAndResubscribed) {
  StartServer();
  ConnectStore();
  ASSERT_TRUE(listener_.WaitForAvailability(true));
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, "before", absl::Seconds(10)),
              IsOkAndHolds(true));
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled));

  server_->Kill();
  ASSERT_TRUE(listener_.WaitForAvailability(false));
  EXPECT_FALSE(store_->IsUp());
  const absl::Time start = absl::Now();
  ExpectStoreUnavailable(runner_->Get(key_).status());
  if (!corral::testing::kSanitized) {
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
  }

  ASSERT_OK(server_->Restart());
  ASSERT_TRUE(listener_.WaitForAvailability(true));
  EXPECT_TRUE(store_->IsUp());
  EXPECT_EQ(listener_.availability(), (std::vector<bool>{true, false, true}));
  // The watched key is subscribed again and says so.
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));

  // Same store object, working again; the data went with the old server.
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
  ASSERT_THAT(runner_->Put(key_, "after", absl::Seconds(10)),
              IsOkAndHolds(true));
  auto filled = listener_.TakeEvent(key_, KeyEvent::Kind::kFilled);
  ASSERT_TRUE(filled.has_value());
  EXPECT_EQ(filled->value->value, "after");
}

TEST_F(RedisStoreTest, CommandsPendingWhenTheServerDiesAreAnswered) {
  StartServer();
  ConnectStore();
  // Stopped, the server leaves our commands unanswered; then it dies.
  server_->Pause();
  std::atomic<int> answered{0};
  std::atomic<int> unavailable{0};
  runner_->OnLoop([&] {
    for (int i = 0; i < 100; ++i) {
      store_->Get(key_, [&](absl::StatusOr<KeyRead> r) {
        if (!r.ok() && ReasonOf(r.status()) == kReasonStoreUnavailable) {
          ++unavailable;
        }
        ++answered;
      });
    }
  });
  runner_->OnLoop([] {});  // Whatever the loop had to do with them is done.
  EXPECT_EQ(answered.load(), 0) << "answered while the server was stopped";
  const absl::Time killed = absl::Now();
  server_->Kill();
  ASSERT_TRUE(
      WaitUntil([&] { return answered.load() == 100; }, absl::Seconds(2)));
  // By the connection reset, well before the 500 ms command timeout.
  if (!corral::testing::kSanitized) {
    EXPECT_LT(absl::Now() - killed, absl::Milliseconds(300));
  }
  EXPECT_EQ(unavailable.load(), 100);
}

TEST_F(RedisStoreTest, HungServerFailsPendingOpsWithinTheCommandTimeout) {
  StartServer();
  ConnectStore();
  ASSERT_TRUE(listener_.WaitForAvailability(true));
  server_->Pause();

  const absl::Time start = absl::Now();
  auto got = runner_->Get(key_);
  const absl::Duration took = absl::Now() - start;
  ExpectStoreUnavailable(got.status());
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("did not answer within 500ms"));
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Milliseconds(1500));  // command_timeout is 500 ms.
  EXPECT_TRUE(listener_.WaitForAvailability(false));

  // While it stays hung, reconnect attempts time out and ops fail at once.
  const absl::Time again = absl::Now();
  ExpectStoreUnavailable(runner_->Get(key_).status());
  if (!corral::testing::kSanitized) {
    EXPECT_LT(absl::Now() - again, absl::Milliseconds(100));
  }

  server_->Resume();
  ASSERT_TRUE(listener_.WaitForAvailability(true, absl::Seconds(5)));
  EXPECT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
}

TEST_F(RedisStoreTest, ShutdownAnswersEverythingAndIsFinal) {
  StartServer();
  ConnectStore();
  server_->Pause();  // Keeps the Get below in flight.
  std::promise<absl::Status> pending;
  runner_->OnLoop([&] {
    store_->Get(key_, [&](absl::StatusOr<KeyRead> r) {
      pending.set_value(r.status());
    });
  });
  store_->Shutdown();
  auto answer = pending.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(2)),
            std::future_status::ready);
  const absl::Status status = answer.get();
  ExpectStoreUnavailable(status);
  EXPECT_THAT(std::string(status.message()), HasSubstr("shut down"));
  ExpectStoreUnavailable(runner_->Get(key_).status());
  EXPECT_FALSE(store_->IsUp());
  store_->Shutdown();  // Idempotent.
  server_->Resume();
}

TEST_F(RedisStoreTest, DestroyedAfterTheLoopStoppedWithoutShutdown) {
  StartServer();
  ConnectStore();
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  loop_.Stop();
  runner_.reset();
  store_.reset();  // Frees hiredis contexts on a stopped loop.
}

// ---------------------------------------------------------------- Pub/sub

// A key unwatched and watched again before Redis answers the UNSUBSCRIBE
// (a waiter leaves as another arrives) stays subscribed: its wake-ups
// keep arriving. hiredis 0.14 drops a channel's callback when an
// "unsubscribe" confirmation arrives, even if a SUBSCRIBE of the same
// channel was sent after it, so the subscriber must not leave an
// UNSUBSCRIBE and a SUBSCRIBE of one channel in flight together.
TEST_F(RedisStoreTest, AWatchDroppedAndTakenBackAtOnceKeepsItsWakeUps) {
  StartServer();
  ConnectStore();
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  for (int round = 0; round < 50; ++round) {
    SCOPED_TRACE(round);
    // Back to back in one loop turn: no reply can come in between.
    runner_->OnLoop([this] {
      for (int i = 0; i < 20; ++i) {
        store_->Unwatch(key_);
        store_->Watch(key_);
      }
    });
    // And across loop turns, while replies are arriving.
    runner_->Unwatch(key_);
    runner_->Watch(key_);
    // Redis may run a write before the last SUBSCRIBE reaches it (another
    // connection): write until a wake-up carries this round's value.
    const std::string value = absl::StrCat("v", round);
    auto woken = [&](const KeyEvent& e) {
      return e.key == key_ && e.kind == KeyEvent::Kind::kFilled &&
             e.value.has_value() && e.value->value == value;
    };
    ASSERT_TRUE(PollUntil([&] {
      return runner_->Put(key_, value, absl::Seconds(10)).ok() &&
             listener_.TakeEvent(woken, absl::Milliseconds(50)).has_value();
    })) << "the wake-up never arrived";
  }
  // Another key on the same subscriber connection is unaffected.
  const CacheKey other{"ns", "other"};
  runner_->Watch(other);
  ASSERT_TRUE(listener_.TakeEvent(other, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(other, "x", absl::Seconds(10)), IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(other, KeyEvent::Kind::kFilled));
}

// ---------------------------------------------------------------- Throughput

TEST_F(RedisStoreTest, TenThousandConcurrentGetsAreAllAnswered) {
  StartServer();
  // The 500 ms command timeout of the other tests is about outages; 10,000
  // pipelined commands take longer than that under sanitizers (and on a
  // loaded machine), which is no outage.
  RedisOptions options = FastOptions(server_->uri());
  options.command_timeout = absl::Seconds(10);
  MakeStore(options);
  ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(30)), IsOkAndHolds(true));
  constexpr int kGets = 10000;
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  const absl::Time start = absl::Now();
  runner_->OnLoop([&] {
    for (int i = 0; i < kGets; ++i) {
      store_->Get(i % 2 == 0 ? key_ : CacheKey{"ns", absl::StrCat("k", i)},
                  [&](absl::StatusOr<KeyRead> r) {
                    if (r.ok()) ++ok;
                    ++answered;
                  });
    }
  });
  ASSERT_TRUE(
      WaitUntil([&] { return answered.load() == kGets; }, absl::Seconds(20)));
  EXPECT_EQ(ok.load(), kGets);
  std::cout << "10000 pipelined gets took " << (absl::Now() - start) << "\n";
}

// ---------------------------------------------------------------- Auth

TEST_F(RedisStoreTest, RequirePassWithThePasswordInTheUri) {
  StartServer({{"--requirepass", "s3cret"}, "s3cret"});
  MakeStore(
      FastOptions(absl::StrCat("redis://:s3cret@127.0.0.1:", server_->port())));
  ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  runner_->Watch(key_);
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
}

TEST_F(RedisStoreTest, WrongPasswordIsAClearErrorAtOnce) {
  StartServer({{"--requirepass", "s3cret"}, "s3cret"});
  MakeStore(
      FastOptions(absl::StrCat("redis://:wrong@127.0.0.1:", server_->port())));
  const absl::Time start = absl::Now();
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "waited for the timeout";
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("Redis AUTH failed: "));
  EXPECT_THAT(std::string(status.message()), HasSubstr("WRONGPASS"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("wrong")));
  // Ops say why.
  auto got = runner_->Get(key_);
  ExpectStoreUnavailable(got.status());
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("Redis AUTH failed"));
}

TEST_F(RedisStoreTest, MissingPasswordIsAClearError) {
  StartServer({{"--requirepass", "s3cret"}, "s3cret"});
  MakeStore(FastOptions(server_->uri()));
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("Redis requires a password"));
}

TEST_F(RedisStoreTest, AclUserWithAPercentEncodedPassword) {
  StartServer();
  ASSERT_THAT(server_->Command({"ACL", "SETUSER", "corral", "on", ">p@ss:w/rd",
                                "~corral:*", "&corral:*", "+@all"}),
              IsOkAndHolds(Eq("OK")));
  MakeStore(FastOptions(absl::StrCat(
      "redis://corral:p%40ss%3Aw%2Frd@127.0.0.1:", server_->port())));
  ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  runner_->Watch(key_);
  ASSERT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kWatching));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  EXPECT_TRUE(listener_.TakeEvent(key_, KeyEvent::Kind::kFilled));
  auto whoami = server_->Command({"CLIENT", "LIST"});
  ASSERT_OK(whoami.status());
  EXPECT_THAT(*whoami, HasSubstr("user=corral"));
}

TEST_F(RedisStoreTest, AclUserWithAWrongPassword) {
  StartServer();
  ASSERT_OK(server_
                ->Command({"ACL", "SETUSER", "corral", "on", ">right",
                           "~corral:*", "&corral:*", "+@all"})
                .status());
  MakeStore(FastOptions(
      absl::StrCat("redis://corral:wrong@127.0.0.1:", server_->port())));
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("Redis AUTH failed"));
}

// ---------------------------------------------------------------- Layout

TEST_F(RedisStoreTest, ScriptsRunByShaAndSurviveAScriptFlush) {
  StartServer();
  ConnectStore();
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  auto stats = server_->Command({"INFO", "commandstats"});
  ASSERT_OK(stats.status());
  EXPECT_THAT(*stats, HasSubstr("cmdstat_evalsha:"));
  EXPECT_THAT(*stats, Not(HasSubstr("cmdstat_eval:")));

  ASSERT_THAT(server_->Command({"SCRIPT", "FLUSH"}), IsOkAndHolds(Eq("OK")));
  auto got = runner_->Get(key_);
  ASSERT_OK(got.status());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "v");
  stats = server_->Command({"INFO", "commandstats"});
  ASSERT_OK(stats.status());
  EXPECT_THAT(*stats, HasSubstr("cmdstat_eval:"));  // The NOSCRIPT fallback.
  // Reloaded for what follows.
  EXPECT_THAT(runner_->Get(key_),
              IsOkAndHolds(::testing::Optional(::testing::_)));
}

// Something else wrote into corral's keyspace: the script fails inside
// Redis. That is no outage (the store is up, other keys are fine), so it must
// not read as store-unavailable, which callers retry and namespaces degrade
// on: INTERNAL, with Redis' words.
TEST_F(RedisStoreTest, AScriptErrorIsInternalNotAnOutage) {
  StartServer();
  ConnectStore();
  const std::string value_key = absl::StrCat(
      "corral:{", KeyHash(key_), "}:", key_.ns, ":", key_.key, ":v");
  ASSERT_THAT(server_->Command({"SET", value_key, "not a hash"}),
              IsOkAndHolds(Eq("OK")));

  auto got = runner_->Get(key_);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal) << got.status();
  EXPECT_NE(ReasonOf(got.status()), kReasonStoreUnavailable);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("WRONGTYPE"));
  auto put = runner_->Put(key_, "v", absl::Seconds(10));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInternal) << put.status();

  // The store stayed up: another key works, and this one once it is clean.
  EXPECT_TRUE(store_->IsUp());
  const CacheKey other{"ns", "other"};
  EXPECT_THAT(runner_->Put(other, "v", absl::Seconds(10)), IsOkAndHolds(true));
  ASSERT_THAT(server_->Command({"DEL", value_key}), IsOkAndHolds(Eq("1")));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_F(RedisStoreTest, KeysFollowTheDocumentedLayout) {
  StartServer();
  ConnectStore();
  const CacheKey key{"plant_id", std::string("ro\0se", 5)};
  const std::string prefix =
      absl::StrCat("corral:{", KeyHash(key), "}:plant_id:", key.key);
  PutOptions options;
  options.ttl = absl::Seconds(10);
  options.stale_window = absl::Seconds(20);
  ASSERT_THAT(runner_->Put(key, "petal", options), IsOkAndHolds(true));
  EXPECT_THAT(server_->Command({"HGET", prefix + ":v", "v"}),
              IsOkAndHolds(Eq("petal")));
  auto fields = server_->Command({"HMGET", prefix + ":v", "s", "e"});
  ASSERT_OK(fields.status());
  const std::vector<std::string> se = absl::StrSplit(*fields, '\n');
  ASSERT_EQ(se.size(), 2u);
  int64_t s = 0, e = 0;
  ASSERT_TRUE(absl::SimpleAtoi(se[0], &s));
  ASSERT_TRUE(absl::SimpleAtoi(se[1], &e));
  EXPECT_EQ(e - s, 10000);
  auto pttl = server_->Command({"PTTL", prefix + ":v"});
  ASSERT_OK(pttl.status());
  int64_t pttl_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*pttl, &pttl_ms));
  EXPECT_GT(pttl_ms, 29000);  // ttl + stale window
  EXPECT_LE(pttl_ms, 30000);

  auto lock = runner_->TryLock(key, "tok", absl::Seconds(30));
  ASSERT_OK(lock.status());
  EXPECT_THAT(server_->Command({"GET", prefix + ":l"}),
              IsOkAndHolds(Eq("tok")));
  EXPECT_THAT(server_->Command({"GET", prefix + ":f"}),
              IsOkAndHolds(Eq(absl::StrCat(lock->fencing_token))));
  auto fence_ttl = server_->Command({"PTTL", prefix + ":f"});
  ASSERT_OK(fence_ttl.status());
  int64_t fence_ttl_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*fence_ttl, &fence_ttl_ms));
  EXPECT_GT(fence_ttl_ms, 24 * 3600 * 1000LL);  // Days, not the lease.
  // The fencing token is Redis' time in microseconds (or just above it).
  EXPECT_GT(absl::FromUnixMicros(static_cast<int64_t>(lock->fencing_token)),
            absl::Now() - absl::Seconds(5));
}

TEST_F(RedisStoreTest, SelectsTheDatabaseFromTheUri) {
  StartServer();
  MakeStore(FastOptions(absl::StrCat(server_->uri(), "/3")));
  ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  ASSERT_THAT(runner_->Put(key_, "v", absl::Seconds(10)), IsOkAndHolds(true));
  auto keyspace = server_->Command({"INFO", "keyspace"});
  ASSERT_OK(keyspace.status());
  EXPECT_THAT(*keyspace, HasSubstr("db3:keys=1"));
  EXPECT_THAT(*keyspace, Not(HasSubstr("db0:")));
}

TEST_F(RedisStoreTest, UnknownDatabaseIsAClearError) {
  StartServer();
  MakeStore(FastOptions(absl::StrCat(server_->uri(), "/999")));
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("Redis SELECT failed"));
}

TEST_F(RedisStoreTest, AclUserWithoutScriptingIsAClearError) {
  StartServer();
  ASSERT_OK(server_
                ->Command({"ACL", "SETUSER", "corral", "on", ">pw", "~corral:*",
                           "&corral:*", "+@all", "-@scripting"})
                .status());
  MakeStore(FastOptions(
      absl::StrCat("redis://corral:pw@127.0.0.1:", server_->port())));
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("may not run SCRIPT LOAD: NOPERM"));
}

TEST_F(RedisStoreTest, AclUserWithoutChannelsIsAClearError) {
  StartServer();
  // Redis 7 gives new users no channels (acl-pubsub-default resetchannels).
  ASSERT_OK(server_
                ->Command({"ACL", "SETUSER", "corral", "on", ">pw", "~corral:*",
                           "+@all"})
                .status());
  MakeStore(FastOptions(
      absl::StrCat("redis://corral:pw@127.0.0.1:", server_->port())));
  const absl::Status status = store_->WaitUntilConnected(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("may not run PUBLISH: NOPERM"));
}

// ---------------------------------------------------------------- Read cache

// The read cache kept coherent by CLIENT TRACKING: another writer's change
// reaches it, a lost connection empties it, and a user who may not track
// gets no cache (and no refusal in the ACL LOG).
class RedisReadCacheTest : public RedisStoreTest {
 protected:
  void ConnectWithCache(const std::string& uri) {
    RedisOptions options = FastOptions(uri);
    options.read_cache.max_bytes = 1 << 20;
    MakeStore(std::move(options));
    ASSERT_OK(store_->WaitUntilConnected(absl::Seconds(5)));
  }
  const ReadCache& cache() const { return *store_->read_cache(); }
  std::string Cached(const CacheKey& key) const {
    std::shared_ptr<const CachedValue> entry = cache().Find(key);
    return entry == nullptr ? "<none>" : *entry->bytes;
  }
  // Tracking turns on shortly after the connection: read until the value
  // is cached.
  bool ReadUntilCached(const CacheKey& key, const std::string& value) {
    return WaitUntil(
        [&] {
          EXPECT_OK(runner_->Get(key).status());
          return Cached(key) == value;
        },
        absl::Seconds(3));
  }
  // A second replica: its own store on the same Redis, no cache.
  void StartOtherReplica() {
    other_ = std::make_unique<RedisStore>(loop_, FastOptions(server_->uri()));
    other_runner_ = std::make_unique<StoreRunner>(loop_, *other_);
    other_->Start();
    ASSERT_OK(other_->WaitUntilConnected(absl::Seconds(5)));
  }
  void TearDown() override {
    if (other_) other_->Shutdown();
    RedisStoreTest::TearDown();
    other_runner_.reset();
    other_.reset();
  }

  std::unique_ptr<RedisStore> other_;
  std::unique_ptr<StoreRunner> other_runner_;
};

TEST_F(RedisReadCacheTest, AnotherReplicasWritesReachTheCache) {
  StartServer();
  ConnectWithCache(server_->uri());
  StartOtherReplica();
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilCached(key_, "one")) << Cached(key_);

  ASSERT_THAT(other_runner_->Put(key_, "two", absl::Seconds(30)),
              IsOkAndHolds(true));
  EXPECT_TRUE(
      WaitUntil([&] { return Cached(key_) == "<none>"; }, absl::Seconds(2)))
      << "still cached: " << Cached(key_);
  ASSERT_TRUE(ReadUntilCached(key_, "two"));

  ASSERT_THAT(other_runner_->Delete(key_), IsOkAndHolds(true));
  EXPECT_TRUE(
      WaitUntil([&] { return Cached(key_) == "<none>"; }, absl::Seconds(2)));
  EXPECT_THAT(runner_->Get(key_), IsOkAndHolds(Eq(std::nullopt)));

  // Not through corral at all: a FLUSHALL empties every replica's cache.
  const CacheKey other_key{"ns", "other"};
  ASSERT_THAT(runner_->Put(other_key, "x", absl::Seconds(30)),
              IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilCached(other_key, "x"));
  ASSERT_OK(server_->Command({"FLUSHALL"}).status());
  EXPECT_TRUE(
      WaitUntil([&] { return cache().entries() == 0; }, absl::Seconds(2)));
}

TEST_F(RedisReadCacheTest, OwnWritesDropTheEntryBeforeTheyAreSent) {
  StartServer();
  ConnectWithCache(server_->uri());
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilCached(key_, "one"));
  ASSERT_THAT(runner_->Put(key_, "two", absl::Seconds(30)), IsOkAndHolds(true));
  EXPECT_EQ(Cached(key_),
            "<none>");  // No wait: gone before the write went out.
  ASSERT_TRUE(ReadUntilCached(key_, "two"));
  ASSERT_THAT(runner_->Delete(key_), IsOkAndHolds(true));
  EXPECT_EQ(Cached(key_), "<none>");
}

TEST_F(RedisReadCacheTest, ALostConnectionEmptiesItAndTrackingComesBack) {
  StartServer();
  ConnectWithCache(server_->uri());
  ASSERT_TRUE(listener_.WaitForAvailability(true));
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilCached(key_, "one"));

  server_->Kill();
  ASSERT_TRUE(listener_.WaitForAvailability(false));
  EXPECT_EQ(cache().entries(), 0u);  // Invalidations could be missed now.

  ASSERT_OK(server_->Restart());
  ASSERT_TRUE(listener_.WaitForAvailability(true));
  StartOtherReplica();
  ASSERT_THAT(runner_->Put(key_, "after", absl::Seconds(30)),
              IsOkAndHolds(true));
  ASSERT_TRUE(ReadUntilCached(key_, "after"));
  // Tracking was set up again on the new connections.
  ASSERT_THAT(other_runner_->Put(key_, "changed", absl::Seconds(30)),
              IsOkAndHolds(true));
  EXPECT_TRUE(
      WaitUntil([&] { return Cached(key_) == "<none>"; }, absl::Seconds(2)));
}

TEST_F(RedisReadCacheTest, AUserWhoMayNotTrackServesWithoutACache) {
  StartServer();
  // What README's ACL advice grants: corral's keys and channels only.
  ASSERT_OK(server_
                ->Command({"ACL", "SETUSER", "corral", "on", ">pw", "~corral:*",
                           "&corral:*", "+@all"})
                .status());
  ConnectWithCache(
      absl::StrCat("redis://corral:pw@127.0.0.1:", server_->port()));
  ASSERT_THAT(runner_->Put(key_, "one", absl::Seconds(30)), IsOkAndHolds(true));
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(runner_->Get(key_),
                IsOkAndHolds(Optional(Field(&StoredValue::value, "one"))));
  }
  runner_->OnLoop([] {});  // Every answer above went through the cache.
  EXPECT_EQ(cache().entries(), 0u);
  EXPECT_TRUE(store_->IsUp());
  // It asked before it tried: nothing was refused.
  EXPECT_THAT(server_->Command({"ACL", "LOG"}),
              IsOkAndHolds(Not(HasSubstr("corral"))));
}

}  // namespace
}  // namespace corral
