// A child process for end-to-end tests: argv in, stdout/stderr captured,
// waited on with timeouts, and never left behind.
//
// The child runs in its own process group and gets SIGKILL if the thread
// that started it dies (PR_SET_PDEATHSIG), so a crashed test does not leak
// servers; the destructor SIGKILLs the whole group and reaps the child.
#ifndef CORRAL_TESTS_SUPPORT_PROCESS_H_
#define CORRAL_TESTS_SUPPORT_PROCESS_H_

#include <regex.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace corral::testing {

// A POSIX extended regex matched against whole lines.
class LineRegex {
 public:
  explicit LineRegex(absl::string_view pattern);
  ~LineRegex();
  LineRegex(const LineRegex&) = delete;
  LineRegex& operator=(const LineRegex&) = delete;

  bool ok() const { return compiled_; }
  // Whether all of `line` matches; fills `groups` with the parenthesized
  // subexpressions (up to 8) when given.
  bool Matches(absl::string_view line,
               std::vector<std::string>* groups = nullptr) const;

 private:
  regex_t regex_;
  bool compiled_ = false;
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // Normal exit: see code.
  int code = -1;
  int signal = 0;  // Killed by this signal when !exited.

  bool success() const { return exited && code == 0; }
  std::string ToString() const;  // "exit 0", "signal 9 (Killed)"
};

struct SubprocessOptions {
  std::vector<std::string> argv;  // argv[0] is the program's path.
  // Added to (or replacing in) the test's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Written to the child's stdin, which is then closed. Unset: /dev/null.
  std::optional<std::string> stdin_data;
};

class Subprocess {
 public:
  enum class Stream { kStdout, kStderr, kEither };

  // Starts the child. Fails when the program cannot be executed.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      SubprocessOptions options);

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // SIGKILLs the process group (unless it was reaped) and reaps the child.
  ~Subprocess();

  // The first complete line (since the start) of `stream` that fully matches
  // the POSIX extended regex `pattern`, without its newline. (POSIX regex,
  // not std::regex: GCC 12 reports false maybe-uninitialized warnings in
  // <regex> under the sanitizer build.) Fails with
  // DEADLINE_EXCEEDED after `timeout`, or FAILED_PRECONDITION as soon as the
  // child closed its output without printing one; either way the message
  // carries the output captured so far.
  absl::StatusOr<std::string> WaitForLine(absl::string_view pattern,
                                          absl::Duration timeout,
                                          Stream stream = Stream::kEither);

  // Sends `sig` to the child (not its group). FAILED_PRECONDITION once it
  // has been reaped.
  absl::Status Signal(int sig);

  // Waits for the child to end and reaps it; then waits (within the same
  // timeout) for its output to be fully read. DEADLINE_EXCEEDED if it is
  // still running after `timeout`. Repeatable once it ended.
  absl::StatusOr<ExitStatus> Wait(absl::Duration timeout);

  // Whether the child has not ended yet (reaps it if it has).
  bool Running();

  pid_t pid() const { return pid_; }
  std::string Stdout() const;
  std::string Stderr() const;
  // Both streams, for failure messages.
  std::string DescribeOutput() const;

 private:
  Subprocess() = default;
  void IoLoop(int stdin_fd, std::string stdin_data);
  // Non-blocking reap; true once the child is reaped.
  bool TryReap();

  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_status_;  // Owner thread only.
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // Wakes IoLoop to stop early.
  std::thread io_thread_;

  mutable absl::Mutex mu_;
  std::string stdout_ ABSL_GUARDED_BY(mu_);
  std::string stderr_ ABSL_GUARDED_BY(mu_);
  bool output_closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // Bumped on any change.
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_PROCESS_H_
