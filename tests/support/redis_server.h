// A real redis-server for one test: started on a free port with no
// persistence, in its own temporary directory, and killed with the fixture.
// Lets tests stop, kill, hang (SIGSTOP) and restart it on the same port.
//
// Talks to the server through a tiny blocking RESP client over a raw socket,
// so hiredis stays inside server/store (STYLE.md #4).
//
// Not thread-safe: use from the test thread. The child gets
// PR_SET_PDEATHSIG(SIGKILL), so a crashed test leaves no redis-server
// behind; the thread that calls Start()/Restart() must therefore live as long
// as the server (the gtest main thread does).
#ifndef CORRAL_TESTS_SUPPORT_REDIS_SERVER_H_
#define CORRAL_TESTS_SUPPORT_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace corral::testing {

class RedisServer {
 public:
  struct Options {
    // Extra redis-server arguments, e.g. {"--requirepass", "secret"}.
    std::vector<std::string> args;
    // Password Command() authenticates with (the default user's).
    std::string admin_password;
  };

  // Starts redis-server (CORRAL_REDIS_SERVER or /usr/bin/redis-server) and
  // waits until it answers.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start() {
    return Start(Options{});
  }
  // A sentinel: redis-server redis.conf --sentinel, with `config_text` (the
  // `sentinel monitor ...` lines) written to redis.conf in its directory
  // once (the sentinel rewrites it; a Restart() keeps what it wrote).
  static absl::StatusOr<std::unique_ptr<RedisServer>> StartSentinel(
      std::string config_text);

  // Kills the server (SIGKILL, also when paused) and removes its
  // directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // SIGTERM and wait for the exit.
  void Stop();
  // SIGKILL and wait: an abrupt crash, connections reset.
  void Kill();
  // Starts it again on the same port (stopping it first if running); the
  // data is gone (no persistence).
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a hung server. Connections stay open, nothing answers.
  void Pause();
  void Resume();

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // redis://127.0.0.1:<port> (no credentials).
  std::string uri() const;

  // Sends one command on a fresh connection and waits (up to 5 s) for the
  // reply: simple strings, bulk strings and integers as text, nil as
  // "(nil)", arrays as their elements joined by '\n'; an error reply is an
  // INTERNAL status with Redis' message.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& args);

 private:
  RedisServer(Options options, std::string dir, int port);
  static absl::StatusOr<std::unique_ptr<RedisServer>> StartWith(
      Options options, std::string sentinel_config);
  absl::Status Spawn();
  absl::Status WaitUntilAnswering(absl::Duration timeout);
  void Signal(int signo, bool wait);
  std::string LogTail() const;

  const Options options_;
  const std::string dir_;
  const int port_;
  std::string sentinel_config_;  // Non-empty: a sentinel.
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_REDIS_SERVER_H_
