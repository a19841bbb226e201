// Real corrald and corralctl processes for end-to-end tests.
//
//   ASSERT_OK_AND_ASSIGN... auto corrald = CorraldProcess::Start();
//   corral::client::Client client((*corrald)->target());
//   auto r = (*corrald)->Corralctl({"get", "ns", "key"});
//
// corrald binds port 0 for gRPC and metrics and prints, on stderr, once:
//   corrald ready listen=127.0.0.1:43123 metrics=127.0.0.1:39411 store=embedded
// which Start() waits for and parses.
#ifndef CORRAL_TESTS_SUPPORT_CORRALD_PROCESS_H_
#define CORRAL_TESTS_SUPPORT_CORRALD_PROCESS_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/support/process.h"

namespace corral::testing {

// The build tree: $CORRAL_BUILD_DIR (ctest sets it), else the nearest
// ancestor of the test binary's directory that holds `relative_path`.
std::string BuildPath(absl::string_view relative_path);
std::string CorraldPath();    // <build>/server/corrald
std::string CorralctlPath();  // <build>/client/corralctl/corralctl

struct ReadyLine {
  std::string listen;   // "127.0.0.1:43123"
  std::string metrics;  // "127.0.0.1:39411"
  std::string store;    // "embedded" or "redis://host:port/db"
};
// Parses corrald's ready line (the whole line, without newline).
absl::StatusOr<ReadyLine> ParseReadyLine(absl::string_view line);

struct CorraldOptions {
  // Extra flags, e.g. "--redis=redis://127.0.0.1:PORT", "--config=FILE".
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string listen_address = "127.0.0.1:0";
  std::string metrics_address = "127.0.0.1:0";
  absl::Duration ready_timeout = absl::Seconds(30);
  // Empty: CorraldPath(). Tests of this harness point it at a fake.
  std::string binary;
};

struct CommandResult {
  // The exit code, or 128 + signal number when killed by a signal.
  int exit_code = -1;
  std::string stdout_text;
  std::string stderr_text;
};

class CorraldProcess {
 public:
  // Starts corrald and waits for its ready line. Errors carry its output.
  static absl::StatusOr<std::unique_ptr<CorraldProcess>> Start(
      CorraldOptions options = {});

  // gRPC target ("127.0.0.1:43123").
  const std::string& target() const { return ready_.listen; }
  const std::string& metrics_address() const { return ready_.metrics; }
  const std::string& store() const { return ready_.store; }

  // SIGTERM, then waits for a clean exit: its exit code. If it is still
  // running after `timeout` it is SIGKILLed and this is DEADLINE_EXCEEDED;
  // death by a signal is INTERNAL. Messages carry the log.
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(15));
  // SIGKILL (a crash, as far as peers and Redis are concerned) and reap.
  void Kill();
  bool Running() { return process_->Running(); }

  // Everything corrald wrote so far (stderr, then stdout).
  std::string Log() const;
  Subprocess& process() { return *process_; }

  // Runs corralctl with --target=target() prepended.
  absl::StatusOr<CommandResult> Corralctl(
      std::vector<std::string> args, const std::string& stdin_data = "",
      absl::Duration timeout = absl::Seconds(60)) const;

 private:
  CorraldProcess(std::unique_ptr<Subprocess> process, ReadyLine ready)
      : process_(std::move(process)), ready_(std::move(ready)) {}

  std::unique_ptr<Subprocess> process_;
  ReadyLine ready_;
};

// Runs `corralctl args...` to completion. Fails only when it cannot be run
// or exceeds `timeout` (then it is killed); its exit code is in the result.
absl::StatusOr<CommandResult> RunCorralctl(
    const std::vector<std::string>& args, const std::string& stdin_data = "",
    absl::Duration timeout = absl::Seconds(60),
    std::vector<std::pair<std::string, std::string>> env = {});

// The same for any program (argv[0] a path).
absl::StatusOr<CommandResult> RunCommand(
    std::vector<std::string> argv, const std::string& stdin_data = "",
    absl::Duration timeout = absl::Seconds(60),
    std::vector<std::pair<std::string, std::string>> env = {});

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_CORRALD_PROCESS_H_
