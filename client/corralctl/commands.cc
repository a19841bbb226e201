#include "client/corralctl/commands.h"

#include <istream>
#include <iterator>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/corralctl/hash_token.h"
#include "client/cpp/errors.h"

namespace corral::ctl {
namespace {

using client::Client;

std::string FormatInstant(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

void WriteValue(Io& io, const std::string& bytes) {
  io.out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (io.out_is_terminal && (bytes.empty() || bytes.back() != '\n'))
    io.out << '\n';
  io.out.flush();
}

int RpcFailed(Io& io, absl::string_view what, const absl::Status& status) {
  io.err << "corralctl: " << what
         << " failed: " << client::DescribeStatus(status) << "\n";
  return kExitRpcFailed;
}

int Negative(Io& io, absl::string_view message) {
  io.err << message << "\n";
  return kExitNegative;
}

int Get(const Invocation& inv, Client& client, Io& io) {
  auto result = client.Get(inv.args[0], inv.args[1]);
  if (!result.ok()) return RpcFailed(io, "get", result.status());
  if (!result->found) return Negative(io, "not found");
  WriteValue(io, result->value.value);
  if (inv.verbose) {
    io.err << "source=" << client::SourceName(result->value.source)
           << " age=" << absl::FormatDuration(result->value.age)
           << " ttl_remaining="
           << absl::FormatDuration(result->value.ttl_remaining)
           << " stale=" << (result->value.stale ? "true" : "false") << "\n";
  }
  return kExitOk;
}

int Set(const Invocation& inv, Client& client, Io& io) {
  std::string value = inv.args[2];
  if (value == "-") {
    value.assign(std::istreambuf_iterator<char>(io.in),
                 std::istreambuf_iterator<char>());
  }
  client::SetOptions set;
  set.ttl = inv.ttl;
  set.lock_token = inv.lock_token;
  set.release_lock = inv.release_lock;
  auto result = client.Set(inv.args[0], inv.args[1], value, set);
  if (!result.ok()) return RpcFailed(io, "set", result.status());
  if (!result->stored) return Negative(io, "not stored");
  io.out << "stored\n";
  return kExitOk;
}

int Invalidate(const Invocation& inv, Client& client, Io& io) {
  auto result = client.Invalidate(inv.args[0], inv.args[1]);
  if (!result.ok()) return RpcFailed(io, "invalidate", result.status());
  io.out << "existed=" << (result->existed ? "true" : "false") << "\n";
  return kExitOk;
}

int LockAcquire(const Invocation& inv, Client& client, Io& io) {
  client::AcquireLockOptions options;
  options.ttl = inv.ttl;
  options.wait_timeout = inv.wait;
  options.owner = inv.owner;
  auto result = client.AcquireLock(inv.args[0], inv.args[1], options);
  if (!result.ok()) return RpcFailed(io, "lock acquire", result.status());
  if (!result->acquired) {
    return Negative(io,
                    absl::StrCat("not acquired (waited ",
                                 absl::FormatDuration(result->waited), ")"));
  }
  io.out << "acquired token=" << result->token
         << " fencing_token=" << result->fencing_token
         << " expires_at=" << FormatInstant(result->expires_at)
         << " waited=" << absl::FormatDuration(result->waited) << "\n";
  return kExitOk;
}

int LockRenew(const Invocation& inv, Client& client, Io& io) {
  auto result =
      client.RenewLock(inv.args[0], inv.args[1], inv.args[2], inv.ttl);
  if (!result.ok()) return RpcFailed(io, "lock renew", result.status());
  if (!result->renewed) return Negative(io, "not renewed");
  io.out << "renewed expires_at=" << FormatInstant(result->expires_at) << "\n";
  return kExitOk;
}

int LockRelease(const Invocation& inv, Client& client, Io& io) {
  auto result =
      client.ReleaseLock(inv.args[0], inv.args[1], inv.args[2], inv.outcome);
  if (!result.ok()) return RpcFailed(io, "lock release", result.status());
  if (!result->released) return Negative(io, "not released");
  io.out << "released\n";
  return kExitOk;
}

int Health(const Invocation& inv, Client& client, Io& io) {
  auto result = client.CheckHealth(inv.args.empty() ? "" : inv.args[0]);
  if (!result.ok()) return RpcFailed(io, "health", result.status());
  io.out << client::HealthStatusName(*result) << "\n";
  return *result == client::HealthStatus::kServing ? kExitOk : kExitNegative;
}

int Breaker(const Invocation& inv, Client& client, Io& io) {
  auto result = client.GetBreaker(inv.args[0]);
  if (!result.ok()) return RpcFailed(io, "breaker", result.status());
  io.out << "namespace=" << result->ns
         << " state=" << client::BreakerStateName(result->state)
         << " since=" << FormatInstant(result->since)
         << " retry_after=" << absl::FormatDuration(result->retry_after)
         << " recent_failures=" << result->recent_failures
         << " recent_successes=" << result->recent_successes << "\n";
  return kExitOk;
}

int GetOrCompute(const Invocation& inv, Client& client, Io& io) {
  client::GetOrComputeOptions options;
  options.ttl = inv.ttl;
  options.wait_timeout = inv.wait;
  options.lease_ttl = inv.lease_ttl;
  options.allow_stale = inv.allow_stale;
  options.timeout = inv.timeout;
  bool compute_failed = false;
  auto result = client.GetOrCompute(
      inv.args[0], inv.args[1],
      [&]() -> absl::StatusOr<std::string> {
        absl::StatusOr<std::string> value = io.run_shell(inv.exec);
        compute_failed = !value.ok();
        return value;
      },
      options);
  if (!result.ok()) {
    if (compute_failed) {
      io.err << "corralctl: --exec command failed: "
             << result.status().message() << "\n";
      return kExitComputeFailed;
    }
    return RpcFailed(io, "get-or-compute", result.status());
  }
  WriteValue(io, result->value);
  if (!result->refresh_error.ok()) {
    io.err << "corralctl: warning: refresh failed ("
           << result->refresh_error.message()
           << "); printed the current value\n";
  }
  if (inv.verbose) {
    io.err << "source=" << client::SourceName(result->source)
           << " stale=" << (result->stale ? "true" : "false")
           << " age=" << absl::FormatDuration(result->age)
           << " computed=" << (result->computed ? "true" : "false");
    if (result->computed) {
      io.err << " lease_mode=" << client::LeaseModeName(result->lease_mode)
             << " fencing_token=" << result->fencing_token
             << " stored=" << (result->stored ? "true" : "false");
      if (!result->not_stored_reason.empty()) {
        io.err << " not_stored_reason=\"" << result->not_stored_reason << "\"";
      }
    }
    io.err << " attempts=" << result->attempts << "\n";
  }
  return kExitOk;
}

}  // namespace

int RunCommand(const Invocation& inv, client::Client& client, Io& io) {
  switch (inv.command) {
    case Command::kGet:
      return Get(inv, client, io);
    case Command::kSet:
      return Set(inv, client, io);
    case Command::kInvalidate:
      return Invalidate(inv, client, io);
    case Command::kLockAcquire:
      return LockAcquire(inv, client, io);
    case Command::kLockRenew:
      return LockRenew(inv, client, io);
    case Command::kLockRelease:
      return LockRelease(inv, client, io);
    case Command::kHealth:
      return Health(inv, client, io);
    case Command::kBreaker:
      return Breaker(inv, client, io);
    case Command::kGetOrCompute:
      return GetOrCompute(inv, client, io);
    case Command::kHashToken:
      return HashToken(io.in, io.out, io.err);
    case Command::kHelp:
      io.out << inv.help;
      return kExitOk;
  }
  return kExitUsage;
}

}  // namespace corral::ctl
