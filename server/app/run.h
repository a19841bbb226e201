// corrald from resolved flags to a clean stop: the parts in options.h,
// secrets.h, metrics_endpoint.h, store_factory.h, store_health.h and
// grpc_server.h, wired in order.
#ifndef CORRAL_SERVER_APP_RUN_H_
#define CORRAL_SERVER_APP_RUN_H_

#include "absl/strings/string_view.h"
#include "server/app/options.h"

namespace corral::app {

// Prints "corrald: MESSAGE" on stderr and exits with `code`: 1 for a runtime
// failure, 2 for bad flags or config (see --help).
[[noreturn]] void Die(int code, absl::string_view message);

// Serves until SIGTERM or SIGINT, then drains and returns 0. Startup
// failures Die(). Call from the main thread before any other thread starts
// (it blocks the stop signals for all threads).
int Run(const CommandLine& flags);

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_RUN_H_
