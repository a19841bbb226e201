#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tests/support/free_port.h"

namespace corral::testing {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr absl::Duration kReplyTimeout = absl::Seconds(5);

std::string RedisServerBinary() {
  const char* env = std::getenv("CORRAL_REDIS_SERVER");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/redis-server";
}

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A blocking RESP2 client for one request at a time: enough for tests.
class RespConnection {
 public:
  static absl::StatusOr<std::unique_ptr<RespConnection>> Open(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoError("socket");
    auto conn = std::unique_ptr<RespConnection>(new RespConnection(fd));
    timeval tv = absl::ToTimeval(kReplyTimeout);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return ErrnoError(absl::StrCat("connect to 127.0.0.1:", port));
    }
    return conn;
  }

  ~RespConnection() { ::close(fd_); }

  absl::Status Send(const std::vector<std::string>& args) {
    std::string out = absl::StrCat("*", args.size(), "\r\n");
    for (const std::string& arg : args) {
      absl::StrAppend(&out, "$", arg.size(), "\r\n", arg, "\r\n");
    }
    size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n =
          ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError("send");
      sent += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // One reply, rendered as described in RedisServer::Command.
  absl::StatusOr<std::string> Read() {
    absl::StatusOr<std::string> line = ReadLine();
    if (!line.ok()) return line.status();
    if (line->empty()) return absl::InternalError("empty RESP line");
    const char type = (*line)[0];
    const std::string rest = line->substr(1);
    switch (type) {
      case '+':
      case ':':
        return rest;
      case '-':
        return absl::InternalError(rest);
      case '$': {
        int64_t len = 0;
        if (!absl::SimpleAtoi(rest, &len))
          return absl::InternalError("bad bulk");
        if (len < 0) return std::string("(nil)");
        std::string data;
        absl::Status s = ReadExact(static_cast<size_t>(len) + 2, &data);
        if (!s.ok()) return s;
        data.resize(static_cast<size_t>(len));
        return data;
      }
      case '*': {
        int64_t n = 0;
        if (!absl::SimpleAtoi(rest, &n))
          return absl::InternalError("bad array");
        if (n < 0) return std::string("(nil)");
        std::vector<std::string> parts;
        for (int64_t i = 0; i < n; ++i) {
          absl::StatusOr<std::string> part = Read();
          // An error inside an array is shown, not raised.
          parts.push_back(part.ok() ? *part
                                    : std::string(part.status().message()));
        }
        return absl::StrJoin(parts, "\n");
      }
      default:
        return absl::InternalError(absl::StrCat("unknown RESP type ", rest));
    }
  }

 private:
  explicit RespConnection(int fd) : fd_(fd) {}

  absl::Status Fill() {
    char chunk[16384];
    ssize_t n;
    do {
      n = ::recv(fd_, chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return absl::UnavailableError("connection closed");
    if (n < 0) return ErrnoError("recv");
    buf_.append(chunk, static_cast<size_t>(n));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReadLine() {
    size_t end;
    while ((end = buf_.find("\r\n", pos_)) == std::string::npos) {
      absl::Status s = Fill();
      if (!s.ok()) return s;
    }
    std::string line = buf_.substr(pos_, end - pos_);
    pos_ = end + 2;
    return line;
  }

  absl::Status ReadExact(size_t n, std::string* out) {
    while (buf_.size() - pos_ < n) {
      absl::Status s = Fill();
      if (!s.ok()) return s;
    }
    *out = buf_.substr(pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  const int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    Options options) {
  return StartWith(std::move(options), "");
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::StartSentinel(
    std::string config_text) {
  return StartWith(Options{}, std::move(config_text));
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::StartWith(
    Options options, std::string sentinel_config) {
  absl::Status last;
  // The port was free a moment ago; another process may take it before
  // redis-server binds, so try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    char dir[] = "/tmp/corral-redis-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return ErrnoError("mkdtemp");
    std::unique_ptr<RedisServer> server(
        new RedisServer(options, dir, PickFreePort()));
    server->sentinel_config_ = sentinel_config;
    last = server->Spawn();
    if (last.ok()) return server;
  }
  return last;
}

RedisServer::RedisServer(Options options, std::string dir, int port)
    : options_(std::move(options)), dir_(std::move(dir)), port_(port) {}

RedisServer::~RedisServer() {
  Signal(SIGKILL, /*wait=*/true);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::uri() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

absl::Status RedisServer::Spawn() {
  std::vector<std::string> args = {RedisServerBinary()};
  if (!sentinel_config_.empty()) {
    const std::string config = dir_ + "/redis.conf";
    if (!std::filesystem::exists(config)) {
      std::ofstream out(config);
      out << sentinel_config_;
      if (!out.good())
        return absl::InternalError(absl::StrCat("cannot write ", config));
    }
    args.push_back(config);
    args.push_back("--sentinel");
  }
  args.insert(args.end(),
              {"--port", absl::StrCat(port_), "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", "--dir", dir_,
               "--logfile", dir_ + "/redis.log"});
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only (the parent has threads).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
      ::dup2(devnull, STDERR_FILENO);
    }
    // Do not inherit the test's sockets (hiredis' are not CLOEXEC): a
    // client socket held open by the child would hide a close from Redis.
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (devnull >= 0) ::close(devnull);
  pid_ = pid;
  paused_ = false;
  absl::Status ready = WaitUntilAnswering(kStartTimeout);
  if (!ready.ok()) Signal(SIGKILL, /*wait=*/true);
  return ready;
}

absl::Status RedisServer::WaitUntilAnswering(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("redis-server on port ", port_,
                       " exited during startup: ", LogTail()));
    }
    auto conn = RespConnection::Open(port_);
    if (conn.ok() && (*conn)->Send({"PING"}).ok()) {
      // PONG, or NOAUTH with --requirepass: either way it answers.
      auto reply = (*conn)->Read();
      if (reply.status().code() == absl::StatusCode::kInternal) {
        return absl::OkStatus();
      }
      // The port was picked free, then closed: under ctest -j another
      // test's redis-server may have taken it, and answer in ours' place
      // (which then fails to bind and exits, seen by waitpid above).
      if (reply.ok() && (*conn)->Send({"INFO", "server"}).ok()) {
        auto info = (*conn)->Read();
        if (info.ok() &&
            absl::StrContains(*info, absl::StrCat("process_id:", pid_, "\r"))) {
          return absl::OkStatus();
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "redis-server on port ", port_, " did not answer: ", LogTail()));
}

void RedisServer::Signal(int signo, bool wait) {
  if (pid_ <= 0) return;
  // A stopped process acts on SIGTERM only once continued. Not for SIGKILL:
  // continued, it could still answer what it holds before dying.
  if (paused_ && signo == SIGTERM) ::kill(pid_, SIGCONT);
  ::kill(pid_, signo);
  if (!wait) return;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  pid_ = -1;
  paused_ = false;
}

void RedisServer::Stop() { Signal(SIGTERM, /*wait=*/true); }

void RedisServer::Kill() { Signal(SIGKILL, /*wait=*/true); }

absl::Status RedisServer::Restart() {
  Stop();
  return Spawn();
}

void RedisServer::Pause() {
  if (pid_ <= 0 || paused_) return;
  ::kill(pid_, SIGSTOP);
  paused_ = true;
}

void RedisServer::Resume() {
  if (pid_ <= 0 || !paused_) return;
  ::kill(pid_, SIGCONT);
  paused_ = false;
}

absl::StatusOr<std::string> RedisServer::Command(
    const std::vector<std::string>& args) {
  auto conn = RespConnection::Open(port_);
  if (!conn.ok()) return conn.status();
  if (!options_.admin_password.empty()) {
    absl::Status sent = (*conn)->Send({"AUTH", options_.admin_password});
    if (!sent.ok()) return sent;
    auto auth = (*conn)->Read();
    if (!auth.ok()) return auth.status();
  }
  absl::Status sent = (*conn)->Send(args);
  if (!sent.ok()) return sent;
  return (*conn)->Read();
}

std::string RedisServer::LogTail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  if (text.size() > 600) text = text.substr(text.size() - 600);
  return text.empty() ? "(no log)" : text;
}

}  // namespace corral::testing
