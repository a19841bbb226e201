#include "client/corralctl/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace corral::ctl {
namespace {

struct CommandSpec {
  Command command;
  absl::string_view words;  // "lock acquire"
  absl::string_view usage;  // positionals and flags, after the words
  int min_args;
  int max_args;
  std::vector<absl::string_view> flags;  // Besides the global ones.
  absl::string_view help;
};

const std::vector<CommandSpec>& Specs() {
  // Built on first use and never destroyed: a constant table, not state.
  static const auto* const kSpecs = new std::vector<CommandSpec>{
      {Command::kGet,
       "get",
       "NS KEY",
       2,
       2,
       {},
       "Prints the cached value of KEY in namespace NS (raw bytes, no\n"
       "newline added). Exit 1 when it is not cached.\n"},
      {Command::kSet,
       "set",
       "NS KEY VALUE [--ttl 10s] [--lock-token T] [--release-lock]",
       3,
       3,
       {"ttl", "lock-token", "release-lock"},
       "Stores VALUE (`-` reads it from stdin) under KEY. With --lock-token\n"
       "the write is fenced: stored only while that lock is held, and it\n"
       "wakes the key's GetOrCompute waiters; --release-lock then releases\n"
       "the lock in the same call. Prints `stored`; exit 1 when not stored.\n"},
      {Command::kInvalidate,
       "invalidate",
       "NS KEY",
       2,
       2,
       {},
       "Deletes KEY from the cache. Prints existed=true|false.\n"},
      {Command::kLockAcquire,
       "lock acquire",
       "NS KEY [--ttl 30s] [--wait 15s] [--owner X]",
       2,
       2,
       {"ttl", "wait", "owner"},
       "Takes the key's lock (the one a GetOrCompute miss takes), waiting up\n"
       "to --wait (0: try once). Prints\n"
       "  acquired token=T fencing_token=N expires_at=TIME waited=D\n"
       "Exit 1 when not acquired within the wait. The lock is not renewed:\n"
       "renew it with `lock renew` before --ttl passes.\n"},
      {Command::kLockRenew,
       "lock renew",
       "NS KEY TOKEN [--ttl 30s]",
       3,
       3,
       {"ttl"},
       "Extends the lock held with TOKEN. Prints `renewed expires_at=TIME`;\n"
       "exit 1 when not renewed (the lock is no longer TOKEN's).\n"},
      {Command::kLockRelease,
       "lock release",
       "NS KEY TOKEN [--outcome success|failure]",
       3,
       3,
       {"outcome"},
       "Releases the lock held with TOKEN. --outcome feeds the namespace's\n"
       "circuit breaker. Prints `released`; exit 1 when not released.\n"},
      {Command::kHealth,
       "health",
       "[SERVICE]",
       0,
       1,
       {},
       "grpc.health.v1 check of the server (or of SERVICE). Prints the\n"
       "status; exit 1 unless SERVING.\n"},
      {Command::kBreaker,
       "breaker",
       "NS",
       1,
       1,
       {},
       "Prints the namespace's circuit breaker: state, since, retry_after,\n"
       "recent failures and successes.\n"},
      {Command::kGetOrCompute,
       "get-or-compute",
       "NS KEY --exec 'CMD' [--ttl D] [--wait D] [--lease-ttl D] "
       "[--allow-stale]",
       2,
       2,
       {"exec", "ttl", "wait", "lease-ttl", "allow-stale"},
       "Prints KEY's value; on a miss exactly one caller fleet-wide runs\n"
       "`/bin/sh -c CMD`, whose stdout becomes the value (stored with --ttl)\n"
       "and is handed to every waiting caller. If CMD exits non-zero the\n"
       "failure is reported to corral (it counts against the breaker) and\n"
       "corralctl exits 4; CMD's stderr passes through. When a refresh of a\n"
       "still-served value fails, that value is printed (exit 0) with a\n"
       "warning. --verbose prints the source and lease details on stderr.\n"
       "--timeout must cover the wait and CMD's run time.\n"},
      {Command::kHashToken,
       "hash-token",
       "",
       0,
       0,
       {},
       "Reads a bearer token from stdin (one trailing newline is ignored)\n"
       "and prints its SHA-256 as the `token_sha256` of a credential in\n"
       "corrald's config file. Makes no call. A new token, for instance:\n"
       "  token=$(openssl rand -hex 32)\n"
       "  printf %s \"$token\" | corralctl hash-token\n"},
  };
  return *kSpecs;
}

// Flags every command takes, and whether each takes a value.
bool IsGlobalFlag(absl::string_view name) {
  return name == "target" || name == "timeout" || name == "verbose" ||
         name == "help" || name == "tls-ca" || name == "tls-cert" ||
         name == "tls-key" || name == "token";
}

bool TakesValue(absl::string_view name) {
  return !(name == "verbose" || name == "help" || name == "release-lock" ||
           name == "allow-stale");
}

bool IsKnownFlag(absl::string_view name) {
  if (IsGlobalFlag(name)) return true;
  for (const CommandSpec& spec : Specs()) {
    if (std::find(spec.flags.begin(), spec.flags.end(), name) !=
        spec.flags.end()) {
      return true;
    }
  }
  return false;
}

constexpr absl::string_view kGlobalFlagsHelp =
    "Global flags (anywhere on the line):\n"
    "  --target HOST:PORT  corrald address (default $CORRAL_TARGET, else "
    "127.0.0.1:50051)\n"
    "  --timeout D         deadline of the call, retries included (default "
    "30s)\n"
    "  --verbose           details on stderr\n"
    "  --tls-ca PEM        connect over TLS, trusting this CA for the server\n"
    "                      (TLS with the system roots when only --tls-cert\n"
    "                      is given)\n"
    "  --tls-cert PEM      client certificate for mutual TLS (with --tls-key)\n"
    "  --tls-key PEM       its private key\n"
    "  --token T           bearer token (default $CORRAL_TOKEN; prefer the\n"
    "                      variable: flags show in process listings)\n"
    "  --help, -h          help for the tool or a command\n"
    "Durations: 250ms, 10s, 1m, 1h30m.\n";

constexpr absl::string_view kExitCodesHelp =
    "Exit codes:\n"
    "  0  success\n"
    "  1  negative answer: not found, not stored, not acquired, not renewed,\n"
    "     not released, not serving\n"
    "  2  usage error\n"
    "  3  the RPC failed (stderr shows the gRPC code, message and\n"
    "     corral-reason)\n"
    "  4  get-or-compute: the --exec command failed\n";

std::string CommandHelp(const CommandSpec& spec) {
  return absl::StrCat("Usage: corralctl ", spec.words, " ", spec.usage, "\n\n",
                      spec.help, "\n", kGlobalFlagsHelp, "\n", kExitCodesHelp);
}

std::string GroupHelp(absl::string_view group) {
  std::string out = absl::StrCat("Usage: corralctl ", group,
                                 " SUBCOMMAND ...\n\nSubcommands:\n");
  for (const CommandSpec& spec : Specs()) {
    if (absl::StartsWith(spec.words, absl::StrCat(group, " "))) {
      absl::StrAppend(&out, "  corralctl ", spec.words, " ", spec.usage, "\n");
    }
  }
  absl::StrAppend(&out, "\nRun 'corralctl ", group,
                  " SUBCOMMAND --help' for details.\n");
  return out;
}

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

struct RawFlag {
  std::string name;
  std::optional<std::string> value;
};

// Matches the leading positionals against the command words; returns the
// spec and how many words it used, or nullptr.
const CommandSpec* FindSpec(const std::vector<std::string>& positionals,
                            size_t* words_used) {
  for (const CommandSpec& spec : Specs()) {
    std::vector<absl::string_view> words = absl::StrSplit(spec.words, ' ');
    if (positionals.size() < words.size()) continue;
    if (std::equal(words.begin(), words.end(), positionals.begin())) {
      *words_used = words.size();
      return &spec;
    }
  }
  return nullptr;
}

bool IsGroup(absl::string_view word) { return word == "lock"; }

absl::Status ApplyFlag(const RawFlag& flag, Invocation& inv) {
  const std::string& name = flag.name;
  const std::string value = flag.value.value_or("");
  if (name == "target") {
    if (value.empty()) return UsageError("--target must not be empty");
    inv.target = value;
  } else if (name == "timeout") {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag(name, value);
    if (!d.ok()) return d.status();
    if (*d <= absl::ZeroDuration()) return UsageError("--timeout must be > 0");
    inv.timeout = *d;
  } else if (name == "verbose") {
    inv.verbose = true;
  } else if (name == "tls-ca" || name == "tls-cert" || name == "tls-key") {
    if (value.empty())
      return UsageError(absl::StrCat("--", name, " must not be empty"));
    (name == "tls-ca"     ? inv.tls_ca
     : name == "tls-cert" ? inv.tls_cert
                          : inv.tls_key) = value;
  } else if (name == "token") {
    if (value.empty()) return UsageError("--token must not be empty");
    inv.token = value;
  } else if (name == "ttl" || name == "wait" || name == "lease-ttl") {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag(name, value);
    if (!d.ok()) return d.status();
    (name == "ttl" ? inv.ttl : name == "wait" ? inv.wait : inv.lease_ttl) = *d;
  } else if (name == "lock-token") {
    inv.lock_token = value;
  } else if (name == "release-lock") {
    inv.release_lock = true;
  } else if (name == "owner") {
    inv.owner = value;
  } else if (name == "outcome") {
    if (value == "success") {
      inv.outcome = client::Outcome::kSuccess;
    } else if (value == "failure") {
      inv.outcome = client::Outcome::kFailure;
    } else if (value == "unspecified") {
      inv.outcome = client::Outcome::kUnspecified;
    } else {
      return UsageError(absl::StrCat(
          "--outcome must be success, failure or unspecified, not '", value,
          "'"));
    }
  } else if (name == "exec") {
    if (value.empty()) return UsageError("--exec must not be empty");
    inv.exec = value;
  } else if (name == "allow-stale") {
    inv.allow_stale = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag,
                                                 absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat(
        "--", flag, ": '", text, "' is not a duration (e.g. 250ms, 10s, 1m)"));
  }
  if (d < absl::ZeroDuration()) {
    return UsageError(absl::StrCat("--", flag, " must not be negative"));
  }
  return d;
}

std::string ToolHelp() {
  std::string out =
      "corralctl: talk to a corral server (cache, locks, breaker, health).\n\n"
      "Usage: corralctl [global flags] COMMAND ARGS [flags]\n\nCommands:\n";
  for (const CommandSpec& spec : Specs()) {
    absl::StrAppend(&out, "  ", spec.words, " ", spec.usage, "\n");
  }
  absl::StrAppend(&out,
                  "\nValues are read and written as raw bytes; "
                  "messages go to stderr.\n"
                  "Run 'corralctl COMMAND --help' for details.\n\n",
                  kGlobalFlagsHelp, "\n", kExitCodesHelp);
  return out;
}

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args,
                                     std::optional<std::string> env_target) {
  std::vector<std::string> positionals;
  std::vector<RawFlag> flags;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || !absl::StartsWith(arg, "-")) {
      positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h") {
      flags.push_back({"help", std::nullopt});
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      // Single-dash words are values ("-5"), not flags.
      positionals.push_back(arg);
      continue;
    }
    RawFlag flag;
    absl::string_view body = absl::string_view(arg).substr(2);
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      flag.name = std::string(body.substr(0, eq));
      flag.value = std::string(body.substr(eq + 1));
    } else {
      flag.name = std::string(body);
    }
    std::replace(flag.name.begin(), flag.name.end(), '_', '-');
    if (!IsKnownFlag(flag.name)) {
      return UsageError(absl::StrCat("unknown flag --", flag.name));
    }
    if (TakesValue(flag.name) && !flag.value) {
      if (i + 1 >= args.size()) {
        return UsageError(absl::StrCat("--", flag.name, " needs a value"));
      }
      flag.value = args[++i];
    } else if (!TakesValue(flag.name) && flag.value) {
      return UsageError(absl::StrCat("--", flag.name, " takes no value"));
    }
    flags.push_back(std::move(flag));
  }

  Invocation inv;
  if (env_target && !env_target->empty()) inv.target = *env_target;
  const bool help_flag =
      std::any_of(flags.begin(), flags.end(),
                  [](const RawFlag& f) { return f.name == "help"; });

  // `corralctl help [COMMAND...]` is the same as `COMMAND --help`.
  const bool help_word = !positionals.empty() && positionals[0] == "help";
  if (help_word) positionals.erase(positionals.begin());
  if (help_flag || help_word) {
    inv.command = Command::kHelp;
    size_t used = 0;
    if (positionals.empty()) {
      inv.help = ToolHelp();
    } else if (const CommandSpec* spec = FindSpec(positionals, &used)) {
      inv.help = CommandHelp(*spec);
    } else if (IsGroup(positionals[0])) {
      inv.help = GroupHelp(positionals[0]);
    } else {
      return UsageError(absl::StrCat("unknown command '", positionals[0], "'"));
    }
    return inv;
  }

  if (positionals.empty()) return UsageError("missing command");
  size_t used = 0;
  const CommandSpec* spec = FindSpec(positionals, &used);
  if (spec == nullptr) {
    if (IsGroup(positionals[0])) {
      return UsageError(
          positionals.size() == 1
              ? absl::StrCat("'", positionals[0], "' needs a subcommand")
              : absl::StrCat("unknown command '", positionals[0], " ",
                             positionals[1], "'"));
    }
    return UsageError(absl::StrCat("unknown command '", positionals[0], "'"));
  }
  inv.command = spec->command;
  inv.args.assign(positionals.begin() + used, positionals.end());
  const int n = static_cast<int>(inv.args.size());
  if (n < spec->min_args || n > spec->max_args) {
    return UsageError(
        absl::StrCat("usage: corralctl ", spec->words, " ", spec->usage));
  }
  for (const RawFlag& flag : flags) {
    const bool allowed = IsGlobalFlag(flag.name) ||
                         std::find(spec->flags.begin(), spec->flags.end(),
                                   flag.name) != spec->flags.end();
    if (!allowed) {
      return UsageError(
          absl::StrCat("'", spec->words, "' does not take --", flag.name));
    }
    if (absl::Status s = ApplyFlag(flag, inv); !s.ok()) return s;
  }
  if (inv.command == Command::kGetOrCompute && inv.exec.empty()) {
    return UsageError("get-or-compute needs --exec 'CMD'");
  }
  if (inv.release_lock && inv.lock_token.empty()) {
    return UsageError("--release-lock needs --lock-token");
  }
  if (inv.tls_cert.empty() != inv.tls_key.empty()) {
    return UsageError("--tls-cert and --tls-key must be given together");
  }
  return inv;
}

}  // namespace corral::ctl
