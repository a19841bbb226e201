// corrald: the corral server. See --help. Its flags are defined here, so
// that --help lists them (abseil's short help shows this file's flags); the
// server itself is in server/app/.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/app/options.h"
#include "server/app/run.h"

ABSL_FLAG(std::string, listen_address, "",
          "gRPC address to serve on, host:port (default 127.0.0.1:50051). Port "
          "0 picks a "
          "free port (the ready line says which).");
ABSL_FLAG(
    std::string, metrics_address, "",
    "Prometheus /metrics address, host:port (default 127.0.0.1:9464); \"off\" "
    "disables it. Port 0 picks a free port.");
ABSL_FLAG(
    std::string, redis, "",
    "Redis to coordinate through: redis://[user[:password]@]host:port[/db], or "
    "a "
    "master found through Redis Sentinel: redis-sentinel://[user[:password]@]"
    "host:port[,host:port...]/MASTER_NAME[?db=N&sentinel_password=...], or a "
    "Redis Cluster: redis-cluster://[user[:password]@]host:port[,host:port...] "
    "(seed nodes). Unset: "
    "the embedded in-memory store (one replica only). Keep the password out of "
    "the process listing: leave it out of the URI and use "
    "--redis_password_file "
    "or $CORRAL_REDIS_PASSWORD (with an ACL user, redis://user@host:port).");
ABSL_FLAG(
    int, redis_min_replica_acks, -1,
    "Replicas that must hold a grant (a lock, a GetOrCompute lease, a fenced "
    "Set/Fill) before it is answered (Redis WAIT); if they do not within "
    "--redis_replica_ack_timeout the grant is undone and answered as "
    "store-unavailable. -1: 1 for redis-sentinel:// and redis-cluster:// "
    "URIs, 0 for redis://.");
ABSL_FLAG(
    absl::Duration, redis_replica_ack_timeout, absl::Milliseconds(500),
    "How long one WAIT for --redis_min_replica_acks may take (under 2s, the "
    "store's hung-server timeout).");
ABSL_FLAG(std::string, redis_password_file, "",
          "File holding the Redis password (one trailing newline is ignored); "
          "used when "
          "the --redis URI has none. Overrides $CORRAL_REDIS_PASSWORD.");
ABSL_FLAG(
    std::string, tls_cert, "",
    "PEM certificate chain to serve gRPC over TLS (with --tls_key). Unset: "
    "plaintext, which is only safe on a loopback address.");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert (unencrypted).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle for mutual TLS: every client must present a "
          "certificate that "
          "chains to it. Needs --tls_cert and --tls_key.");
ABSL_FLAG(
    std::string, config, "",
    "Configuration file (textproto, or JSON if it ends in .json), schema "
    "corral.v1.ServerConfig in proto/corral/v1/config.proto. Flags given on "
    "the "
    "command line override its listen_address, metrics_address and redis.");
ABSL_FLAG(std::string, log_level, "info",
          "Log threshold: debug, info, warning, error.");
ABSL_FLAG(
    std::string, log_key_file, "",
    "File holding the key (at least 16 bytes) that log lines hash cache keys "
    "under (HMAC-SHA-256), so that keys cannot be guessed back from the logs. "
    "Give every replica the same file so their logs name a key alike. Unset "
    "(and "
    "no log_key_file in --config): a random key per process, with a warning.");
ABSL_FLAG(
    int64_t, read_cache_mb, 64,
    "MiB of recently read values to answer hits from without asking the store "
    "(0: off). With --redis it is kept coherent by Redis' client-side caching "
    "(CLIENT TRACKING, Redis >= 7): a write by another replica reaches it one "
    "invalidation message later. Off by itself, with a warning, where Redis "
    "cannot track. The clients' near cache does not need it: with 0, reads "
    "are still tracked for it.");

namespace {

constexpr char kUsage[] =
    "corrald: fleet-wide cache-stampede protection as a gRPC service.\n"
    "\n"
    "On a cache miss exactly one caller, fleet-wide, computes the value while "
    "the\n"
    "others wait and receive it when it lands. State lives in Redis (--redis), "
    "so\n"
    "replicas are interchangeable; without --redis an embedded store serves "
    "one\n"
    "replica.\n"
    "\n"
    "Usage: corrald [--listen_address=HOST:PORT] "
    "[--metrics_address=HOST:PORT|off]\n"
    "               [--redis=redis://HOST:PORT[/DB] | "
    "redis-sentinel://HOST:PORT,.../NAME |\n"
    "                        redis-cluster://HOST:PORT,...]\n"
    "               [--redis_password_file=FILE]\n"
    "               [--tls_cert=PEM --tls_key=PEM [--tls_client_ca=PEM]]\n"
    "               [--config=FILE] [--log_level=LEVEL] [--log_key_file=FILE]\n"
    "\n"
    "Security: --tls_* serve TLS or mutual TLS; the config file's "
    "`credentials`\n"
    "require a bearer token on every call (health and reflection stay open).\n"
    "Without either, anyone who can reach the port can do anything: keep such "
    "a\n"
    "server on loopback (it warns otherwise).\n"
    "\n"
    "It logs one `corrald ready ...` line when serving and stops cleanly on "
    "SIGTERM\n"
    "or SIGINT. Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or "
    "config.";

corral::app::CommandLine FlagValues() {
  corral::app::CommandLine flags;
  flags.listen_address = absl::GetFlag(FLAGS_listen_address);
  flags.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  flags.redis = absl::GetFlag(FLAGS_redis);
  flags.redis_min_replica_acks = absl::GetFlag(FLAGS_redis_min_replica_acks);
  flags.redis_replica_ack_timeout =
      absl::GetFlag(FLAGS_redis_replica_ack_timeout);
  flags.redis_password_file = absl::GetFlag(FLAGS_redis_password_file);
  flags.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  flags.tls_key = absl::GetFlag(FLAGS_tls_key);
  flags.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  flags.config = absl::GetFlag(FLAGS_config);
  flags.log_level = absl::GetFlag(FLAGS_log_level);
  flags.log_key_file = absl::GetFlag(FLAGS_log_key_file);
  flags.read_cache_mb = absl::GetFlag(FLAGS_read_cache_mb);
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with mutex deadlock detection on: a cycle
  // search on every lock, 3-5 % of corrald's CPU in profiles
  // (tests/bench/PROFILE.md). Lock-order bugs are for the test builds to find.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    corral::app::Die(
        2, absl::StrCat("unexpected argument \"", rest[1], "\" (see --help)"));
  }
  return corral::app::Run(FlagValues());
}
