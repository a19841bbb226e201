// Runs get-or-compute's --exec command.
#ifndef CORRAL_CLIENT_CORRALCTL_SHELL_H_
#define CORRAL_CLIENT_CORRALCTL_SHELL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace corral::ctl {

// Runs `/bin/sh -c command` and returns its stdout (binary-safe). Its stdin
// and stderr are corralctl's. A non-zero exit or a death by signal is an
// error (UNKNOWN) saying which; so is a command that cannot be started.
absl::StatusOr<std::string> RunShell(absl::string_view command);

}  // namespace corral::ctl

#endif  // CORRAL_CLIENT_CORRALCTL_SHELL_H_
