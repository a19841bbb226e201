// corralctl's command line: what the user asked for, parsed and validated
// before any connection is made, so usage errors never depend on the server.
#ifndef CORRAL_CLIENT_CORRALCTL_ARGS_H_
#define CORRAL_CLIENT_CORRALCTL_ARGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cpp/types.h"

namespace corral::ctl {

// Exit codes (also in the --help text).
inline constexpr int kExitOk = 0;
// A negative answer: not found, not acquired / renewed / released / stored,
// not serving.
inline constexpr int kExitNegative = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRpcFailed = 3;
// get-or-compute: the --exec command failed (or could not start).
inline constexpr int kExitComputeFailed = 4;

inline constexpr absl::string_view kDefaultTarget = "127.0.0.1:50051";

enum class Command {
  kHelp,
  kGet,
  kSet,
  kInvalidate,
  kLockAcquire,
  kLockRenew,
  kLockRelease,
  kHealth,
  kBreaker,
  kGetOrCompute,
  kHashToken,
};

struct Invocation {
  Command command = Command::kHelp;
  std::string help;  // kHelp: the text to print on stdout.

  // Global flags.
  std::string target = std::string(kDefaultTarget);
  absl::Duration timeout = absl::Seconds(30);
  bool verbose = false;
  // TLS: used when any of the three is given (tls_ca empty: system roots).
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Bearer token; --token, else $CORRAL_TOKEN (main fills it in).
  std::string token;

  // Positional arguments after the command words (NS, KEY, ...).
  std::vector<std::string> args;

  // Command flags; unset durations mean the namespace default.
  std::optional<absl::Duration> ttl;
  std::optional<absl::Duration> wait;
  std::optional<absl::Duration> lease_ttl;
  std::string lock_token;
  bool release_lock = false;
  std::string owner;
  client::Outcome outcome = client::Outcome::kUnspecified;
  std::string exec;
  bool allow_stale = false;
};

// Parses the arguments after argv[0]. `env_target` is $CORRAL_TARGET, which
// --target overrides. Flag names may use '_' for '-' (--tls_ca). Errors are
// INVALID_ARGUMENT with a message for the user (exit code kExitUsage).
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args,
                                     std::optional<std::string> env_target);

// A duration flag: absl::ParseDuration syntax ("250ms", "10s", "1m", "1h30m"),
// not negative.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag,
                                                 absl::string_view text);

// The tool's overview (what `corralctl --help` prints).
std::string ToolHelp();

}  // namespace corral::ctl

#endif  // CORRAL_CLIENT_CORRALCTL_ARGS_H_
