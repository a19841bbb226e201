// corralctl: the command line client of corral. See `corralctl --help`.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/corralctl/args.h"
#include "client/corralctl/commands.h"
#include "client/corralctl/hash_token.h"
#include "client/corralctl/shell.h"
#include "client/cpp/corral_client.h"
#include "client/cpp/credentials.h"

int main(int argc, char** argv) {
  using corral::ctl::Invocation;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const char* env_target = std::getenv("CORRAL_TARGET");
  absl::StatusOr<Invocation> inv = corral::ctl::ParseArgs(
      args, env_target ? std::optional<std::string>(env_target) : std::nullopt);
  if (!inv.ok()) {
    std::cerr << "corralctl: " << inv.status().message()
              << "\nRun 'corralctl --help' for usage.\n";
    return corral::ctl::kExitUsage;
  }
  if (inv->command == corral::ctl::Command::kHelp) {
    std::cout << inv->help;
    return corral::ctl::kExitOk;
  }

  corral::ctl::Io io{std::cin, std::cout, std::cerr, corral::ctl::RunShell,
                     isatty(STDOUT_FILENO) == 1};
  if (inv->command == corral::ctl::Command::kHashToken) {
    return corral::ctl::HashToken(io.in, io.out, io.err);
  }

  corral::client::ClientOptions options;
  options.default_timeout = inv->timeout;
  options.worker_id = absl::StrCat("corralctl/", ::getpid());
  // An operator's tool and the deployments' health probes: every command
  // asks corrald. A near cache would open a NearCache stream per run (a
  // probe every few seconds, without a token on servers that require one).
  options.near_cache = false;
  options.token = inv->token;
  if (options.token.empty()) {
    // From the environment, so that it stays out of process listings.
    if (const char* token = std::getenv("CORRAL_TOKEN"); token != nullptr) {
      options.token = token;
    }
  }
  if (!inv->tls_ca.empty() || !inv->tls_cert.empty()) {
    auto tls = corral::client::TlsCredentialsFromFiles(
        {inv->tls_ca, inv->tls_cert, inv->tls_key});
    if (!tls.ok()) {
      std::cerr << "corralctl: " << tls.status().message() << "\n";
      return corral::ctl::kExitUsage;
    }
    options.credentials = *std::move(tls);
  }
  corral::client::Client client(inv->target, options);
  return corral::ctl::RunCommand(*inv, client, io);
}
