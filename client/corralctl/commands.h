// Runs one parsed corralctl command against a server.
#ifndef CORRAL_CLIENT_CORRALCTL_COMMANDS_H_
#define CORRAL_CLIENT_CORRALCTL_COMMANDS_H_

#include <functional>
#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "client/corralctl/args.h"
#include "client/cpp/corral_client.h"

namespace corral::ctl {

// Where a command reads and writes; tests substitute string streams and a
// fake shell.
struct Io {
  std::istream& in;   // `set ... -` reads the value from here.
  std::ostream& out;  // Values and results (raw bytes).
  std::ostream& err;  // Messages.
  // get-or-compute's --exec runner (RunShell in corralctl).
  std::function<absl::StatusOr<std::string>(const std::string&)> run_shell;
  // `out` is a terminal: a value without a final newline gets one, so the
  // prompt does not run on after it. Piped output stays byte for byte.
  bool out_is_terminal = false;
};

// Runs `inv` (not kHelp) and returns the process exit code (kExit*).
int RunCommand(const Invocation& inv, client::Client& client, Io& io);

}  // namespace corral::ctl

#endif  // CORRAL_CLIENT_CORRALCTL_COMMANDS_H_
