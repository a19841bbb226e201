#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace corral::testing {
namespace {

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// The test's environment with `additions` applied, as "K=V" strings.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& additions) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    bool replaced = false;
    for (const auto& [key, value] : additions) {
      if (absl::StartsWith(entry, absl::StrCat(key, "="))) replaced = true;
    }
    if (!replaced) out.emplace_back(entry);
  }
  for (const auto& [key, value] : additions) {
    out.push_back(absl::StrCat(key, "=", value));
  }
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Lines of `text`; the unterminated tail counts only once output is closed.
std::vector<absl::string_view> Lines(absl::string_view text, bool closed) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && (!closed || lines.back().empty())) lines.pop_back();
  return lines;
}

// Runs in the forked child: only async-signal-safe calls until execve.
[[noreturn]] void ExecChild(pid_t parent, int stdin_fd, int stdout_fd,
                            int stderr_fd, int error_fd, char** argv,
                            char** envp) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // The parent died already.
  // Dispositions set to "ignore" and blocked signals survive execve; a
  // server under test must see SIGTERM / SIGPIPE as usual.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
    ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 ||
      ::dup2(stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(stderr_fd, STDERR_FILENO) < 0) {
    int err = errno;
    (void)!::write(error_fd, &err, sizeof(err));
    ::_exit(127);
  }
  ::execve(argv[0], argv, envp);
  int err = errno;
  (void)!::write(error_fd, &err, sizeof(err));
  ::_exit(127);
}

}  // namespace

LineRegex::LineRegex(absl::string_view pattern) {
  // Anchored: the whole line must match, as with std::regex_match.
  const std::string anchored = absl::StrCat("^(", pattern, ")$");
  compiled_ = ::regcomp(&regex_, anchored.c_str(), REG_EXTENDED) == 0;
}

LineRegex::~LineRegex() {
  if (compiled_) ::regfree(&regex_);
}

bool LineRegex::Matches(absl::string_view line,
                        std::vector<std::string>* groups) const {
  if (!compiled_) return false;
  const std::string text(line);  // regexec wants a C string.
  regmatch_t match[10];
  if (::regexec(&regex_, text.c_str(), 10, match, 0) != 0) return false;
  if (groups != nullptr) {
    groups->clear();
    // match[1] is the anchoring group; the caller's groups start at 2.
    for (int i = 2; i < 10 && match[i].rm_so >= 0; ++i) {
      groups->push_back(
          text.substr(match[i].rm_so, match[i].rm_eo - match[i].rm_so));
    }
  }
  return true;
}

std::string ExitStatus::ToString() const {
  if (exited) return absl::StrCat("exit ", code);
  return absl::StrCat("signal ", signal, " (", ::strsignal(signal), ")");
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    SubprocessOptions options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("empty argv");
  // Everything the child needs is built before fork: after it, a
  // multi-threaded parent's child may only make async-signal-safe calls.
  std::vector<std::string> env = MergedEnvironment(options.env);
  std::vector<char*> envp = CStrings(env);
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv = CStrings(args);

  int out_pipe[2], err_pipe[2], exec_error_pipe[2], in_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  if (::pipe2(exec_error_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  if (options.stdin_data) {
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  } else {
    in_pipe[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_pipe[0] < 0) return ErrnoError("open /dev/null");
  }

  auto process = std::unique_ptr<Subprocess>(new Subprocess());
  if (::pipe2(process->wake_fds_, O_CLOEXEC) != 0) return ErrnoError("pipe");

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    ExecChild(parent, in_pipe[0], out_pipe[1], err_pipe[1], exec_error_pipe[1],
              argv.data(), envp.data());
  }
  // Also from the parent, so that a kill of the group right after Start
  // cannot race the child's own setpgid.
  ::setpgid(pid, pid);
  process->pid_ = pid;
  CloseFd(in_pipe[0]);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  CloseFd(exec_error_pipe[1]);

  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_error_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  CloseFd(exec_error_pipe[0]);
  process->stdout_fd_ = out_pipe[0];
  process->stderr_fd_ = err_pipe[0];
  if (n > 0) {
    CloseFd(in_pipe[1]);
    // The destructor reaps the child (which already _exit'ed).
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot execute ", options.argv[0], ": ", std::strerror(exec_errno)));
  }
  if (in_pipe[1] >= 0) ::fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  process->io_thread_ =
      std::thread([p = process.get(), fd = in_pipe[1],
                   data = options.stdin_data.value_or("")]() mutable {
        p->IoLoop(fd, std::move(data));
      });
  return process;
}

void Subprocess::IoLoop(int stdin_fd, std::string stdin_data) {
  // A child that exits without reading its stdin must not SIGPIPE the test.
  sigset_t pipe_set;
  ::sigemptyset(&pipe_set);
  ::sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  size_t written = 0;
  if (stdin_fd >= 0 && stdin_data.empty()) CloseFd(stdin_fd);
  char buffer[65536];
  while (stdout_fd_ >= 0 || stderr_fd_ >= 0) {
    pollfd fds[4];
    int nfds = 0;
    fds[nfds++] = {wake_fds_[0], POLLIN, 0};
    const int out_index = stdout_fd_ >= 0 ? nfds : -1;
    if (stdout_fd_ >= 0) fds[nfds++] = {stdout_fd_, POLLIN, 0};
    const int err_index = stderr_fd_ >= 0 ? nfds : -1;
    if (stderr_fd_ >= 0) fds[nfds++] = {stderr_fd_, POLLIN, 0};
    const int in_index = stdin_fd >= 0 ? nfds : -1;
    if (stdin_fd >= 0) fds[nfds++] = {stdin_fd, POLLOUT, 0};
    if (::poll(fds, nfds, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;  // Stop requested.
    for (int index : {out_index, err_index}) {
      if (index < 0 || fds[index].revents == 0) continue;
      int& fd = index == out_index ? stdout_fd_ : stderr_fd_;
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      absl::MutexLock lock(&mu_);
      if (n <= 0) {
        CloseFd(fd);
      } else {
        (index == out_index ? stdout_ : stderr_).append(buffer, n);
      }
      ++generation_;
    }
    if (in_index >= 0 && fds[in_index].revents != 0) {
      const ssize_t n = ::write(stdin_fd, stdin_data.data() + written,
                                stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
          written == stdin_data.size()) {
        CloseFd(stdin_fd);
      }
    }
  }
  CloseFd(stdin_fd);
  absl::MutexLock lock(&mu_);
  output_closed_ = true;
  ++generation_;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    // The whole group: grandchildren (`sh -c 'server &'`) must go too.
    ::kill(-pid_, SIGKILL);
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      int wstatus = 0;
      while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (wake_fds_[1] >= 0) (void)!::write(wake_fds_[1], "x", 1);
  if (io_thread_.joinable()) io_thread_.join();
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(wake_fds_[0]);
  CloseFd(wake_fds_[1]);
}

absl::StatusOr<std::string> Subprocess::WaitForLine(absl::string_view pattern,
                                                    absl::Duration timeout,
                                                    Stream stream) {
  const LineRegex re(pattern);
  if (!re.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad regex /", pattern, "/"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    const uint64_t seen = generation_;
    for (Stream s : {Stream::kStdout, Stream::kStderr}) {
      if (stream != Stream::kEither && stream != s) continue;
      const std::string& text = s == Stream::kStdout ? stdout_ : stderr_;
      for (absl::string_view line : Lines(text, output_closed_)) {
        if (re.Matches(line)) {
          return std::string(line);
        }
      }
    }
    if (output_closed_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no line matching /", pattern, "/ before the output closed\n",
          "--- stdout ---\n", stdout_, "\n--- stderr ---\n", stderr_));
    }
    auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return generation_ != seen;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no line matching /", pattern, "/ within ",
                       absl::FormatDuration(timeout), "\n--- stdout ---\n",
                       stdout_, "\n--- stderr ---\n", stderr_));
    }
  }
}

absl::Status Subprocess::Signal(int sig) {
  if (TryReap()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "process ", pid_, " already ended (", exit_status_->ToString(), ")"));
  }
  if (::kill(pid_, sig) != 0) return ErrnoError("kill");
  return absl::OkStatus();
}

bool Subprocess::TryReap() {
  if (exit_status_) return true;
  int wstatus = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &wstatus, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitStatus status;
  if (r == pid_ && WIFEXITED(wstatus)) {
    status.exited = true;
    status.code = WEXITSTATUS(wstatus);
  } else if (r == pid_ && WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
  }
  exit_status_ = status;
  return true;
}

bool Subprocess::Running() { return !TryReap(); }

absl::StatusOr<ExitStatus> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // Polling keeps reaping on the owner thread, so Signal() can never hit a
  // recycled pid; 2 ms is far below anything a test measures.
  while (!TryReap()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ",
                       absl::FormatDuration(timeout), "\n", DescribeOutput()));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  // Output still in the pipes belongs to the result. A grandchild holding
  // them open could delay EOF forever, so this wait is bounded too.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&output_closed_),
                        std::max(deadline, absl::Now() + absl::Seconds(1)));
  return *exit_status_;
}

std::string Subprocess::Stdout() const {
  absl::MutexLock lock(&mu_);
  return stdout_;
}

std::string Subprocess::Stderr() const {
  absl::MutexLock lock(&mu_);
  return stderr_;
}

std::string Subprocess::DescribeOutput() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat("--- stdout ---\n", stdout_, "\n--- stderr ---\n",
                      stderr_);
}

}  // namespace corral::testing
