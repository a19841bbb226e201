#include "tests/support/corrald_process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace corral::testing {
namespace {

namespace fs = std::filesystem;

// Kept in step with the line corrald prints (server/main).
constexpr char kReadyPattern[] =
    "corrald ready listen=([^ ]+) metrics=([^ ]+) store=([^ ]+)";

}  // namespace

std::string BuildPath(absl::string_view relative_path) {
  if (const char* dir = std::getenv("CORRAL_BUILD_DIR"); dir && *dir) {
    return (fs::path(dir) / std::string(relative_path)).string();
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty();
         dir = dir.parent_path()) {
      fs::path candidate = dir / std::string(relative_path);
      if (fs::exists(candidate, ec)) return candidate.string();
      if (dir == dir.root_path()) break;
    }
  }
  // Not found: return the name so that the error says what was looked for.
  return std::string(relative_path);
}

std::string CorraldPath() { return BuildPath("server/corrald"); }
std::string CorralctlPath() { return BuildPath("client/corralctl/corralctl"); }

absl::StatusOr<ReadyLine> ParseReadyLine(absl::string_view line) {
  const LineRegex re(kReadyPattern);
  std::vector<std::string> groups;
  if (!re.Matches(line, &groups) || groups.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a corrald ready line: '", line, "'"));
  }
  return ReadyLine{groups[0], groups[1], groups[2]};
}

absl::StatusOr<std::unique_ptr<CorraldProcess>> CorraldProcess::Start(
    CorraldOptions options) {
  SubprocessOptions sub;
  sub.argv = {options.binary.empty() ? CorraldPath() : options.binary,
              absl::StrCat("--listen_address=", options.listen_address),
              absl::StrCat("--metrics_address=", options.metrics_address)};
  sub.argv.insert(sub.argv.end(), options.args.begin(), options.args.end());
  sub.env = options.env;
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(sub));
  if (!process.ok()) return process.status();
  absl::StatusOr<std::string> line = (*process)->WaitForLine(
      kReadyPattern, options.ready_timeout, Subprocess::Stream::kStderr);
  if (!line.ok()) {
    const bool running = (*process)->Running();
    return absl::Status(line.status().code(),
                        absl::StrCat("corrald did not become ready (",
                                     running ? "still running" : "exited",
                                     "): ", line.status().message()));
  }
  absl::StatusOr<ReadyLine> ready = ParseReadyLine(*line);
  if (!ready.ok()) return ready.status();
  return std::unique_ptr<CorraldProcess>(
      new CorraldProcess(*std::move(process), *std::move(ready)));
}

absl::StatusOr<int> CorraldProcess::Terminate(absl::Duration timeout) {
  if (process_->Running()) {
    absl::Status signalled = process_->Signal(SIGTERM);
    if (!signalled.ok() && process_->Running()) return signalled;
  }
  absl::StatusOr<ExitStatus> status = process_->Wait(timeout);
  if (!status.ok()) {
    Kill();
    return absl::DeadlineExceededError(
        absl::StrCat("corrald ignored SIGTERM for ",
                     absl::FormatDuration(timeout), "; killed it\n", Log()));
  }
  if (!status->exited) {
    return absl::InternalError(absl::StrCat(
        "corrald died on SIGTERM: ", status->ToString(), "\n", Log()));
  }
  return status->code;
}

void CorraldProcess::Kill() {
  if (process_->Signal(SIGKILL).ok()) {
    process_->Wait(absl::Seconds(30)).IgnoreError();
  }
}

std::string CorraldProcess::Log() const {
  return absl::StrCat(process_->Stderr(), process_->Stdout());
}

absl::StatusOr<CommandResult> CorraldProcess::Corralctl(
    std::vector<std::string> args, const std::string& stdin_data,
    absl::Duration timeout) const {
  args.insert(args.begin(), absl::StrCat("--target=", target()));
  return RunCorralctl(args, stdin_data, timeout);
}

absl::StatusOr<CommandResult> RunCommand(
    std::vector<std::string> argv, const std::string& stdin_data,
    absl::Duration timeout,
    std::vector<std::pair<std::string, std::string>> env) {
  SubprocessOptions sub;
  sub.argv = std::move(argv);
  sub.env = std::move(env);
  sub.stdin_data = stdin_data;
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(sub));
  if (!process.ok()) return process.status();
  absl::StatusOr<ExitStatus> status = (*process)->Wait(timeout);
  if (!status.ok()) return status.status();  // The destructor kills it.
  CommandResult result;
  result.exit_code = status->exited ? status->code : 128 + status->signal;
  result.stdout_text = (*process)->Stdout();
  result.stderr_text = (*process)->Stderr();
  return result;
}

absl::StatusOr<CommandResult> RunCorralctl(
    const std::vector<std::string>& args, const std::string& stdin_data,
    absl::Duration timeout,
    std::vector<std::pair<std::string, std::string>> env) {
  std::vector<std::string> argv = {CorralctlPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(std::move(argv), stdin_data, timeout, std::move(env));
}

}  // namespace corral::testing
