// corral-baseline: the stampede without corral (plain cache-aside, or the
// seed's client-side Redis lock), one Redis connection per caller. See --help.
#include <sys/resource.h>

#include <cstdio>
#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "client/bench/probes.h"
#include "client/bench/redis_baseline.h"

ABSL_FLAG(std::string, mode, "client-lock",
          "cache-aside: GET, on a miss compute and SET, no coordination; "
          "client-lock: the "
          "seed's python-redis-lock pattern (SET NX PX lock, double-check GET, "
          "compute, SET, "
          "compare-and-delete release that signals one BLPOP waiter).");
ABSL_FLAG(std::string, redis_host, "127.0.0.1", "Redis host.");
ABSL_FLAG(int, redis_port, 6379,
          "Redis port (redis-cli reads INFO commandstats there too).");
ABSL_FLAG(int, callers, 1000, "Concurrent callers, one Redis connection each.");
ABSL_FLAG(int, compute_ms, 200, "How long a compute takes, in ms.");
ABSL_FLAG(int, lock_wait_s, 15,
          "client-lock: the lock wait (BLPOP timeout), seconds.");
ABSL_FLAG(int, connect_parallel, 256,
          "Connections opened at once during setup.");
ABSL_FLAG(int, deadline_s, 120, "Give up on callers after this long.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "corral-baseline: N callers on one cold key straight against Redis, each "
      "with its own\n"
      "connection (opened before the stampede starts). Reports computes, "
      "caller latency\n"
      "p50/p99/max and the Redis commands the stampede issued (INFO "
      "commandstats delta).\n"
      "Example: corral-baseline --mode=client-lock --redis_port=6379 "
      "--callers=10000");
  absl::ParseCommandLine(argc, argv);
  // One descriptor per caller: take all the soft limit may grow to.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  corral::bench::BaselineOptions options;
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "cache-aside") {
    options.pattern = corral::bench::BaselinePattern::kCacheAside;
  } else if (mode == "client-lock") {
    options.pattern = corral::bench::BaselinePattern::kClientLock;
  } else {
    std::fprintf(
        stderr, "corral-baseline: --mode must be cache-aside or client-lock\n");
    return 2;
  }
  options.host = absl::GetFlag(FLAGS_redis_host);
  options.port = absl::GetFlag(FLAGS_redis_port);
  options.callers = absl::GetFlag(FLAGS_callers);
  options.compute_time = absl::Milliseconds(absl::GetFlag(FLAGS_compute_ms));
  options.lock_wait = absl::Seconds(absl::GetFlag(FLAGS_lock_wait_s));
  options.connect_parallel = absl::GetFlag(FLAGS_connect_parallel);
  options.deadline = absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  if (options.callers <= 0 || options.connect_parallel <= 0) {
    std::fprintf(
        stderr,
        "corral-baseline: --callers and --connect_parallel must be > 0\n");
    return 2;
  }
  std::map<std::string, long> before;
  const auto report = corral::bench::RunRedisBaseline(options, [&] {
    before = corral::bench::RedisCommandStats(options.port);
  });
  const auto after = corral::bench::RedisCommandStats(options.port);
  std::printf("mode=%s %s\n", mode.c_str(), report.Summary().c_str());
  std::printf("%s\n",
              corral::bench::FormatCommandDelta(
                  corral::bench::CommandDelta(before, after), report.callers)
                  .c_str());
  return report.errors == 0 && report.connect_failures == 0 ? 0 : 1;
}
