// Out-of-process measurements the benchmark tools share: Redis command
// counts, a process's RSS, a Prometheus gauge, latency percentiles. They
// shell out to redis-cli and curl so that the load generators need no
// second Redis or HTTP client.
#ifndef CORRAL_CLIENT_BENCH_PROBES_H_
#define CORRAL_CLIENT_BENCH_PROBES_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace corral::bench {

// calls= per command from `redis-cli -p PORT INFO commandstats` (commands
// run inside Lua scripts are counted too). Empty when redis-cli fails.
std::map<std::string, long> RedisCommandStats(int port);

// after - before, leaving out the commands a probe itself sends (INFO,
// CONFIG) and commands that did not change.
std::map<std::string, long> CommandDelta(
    const std::map<std::string, long>& before,
    const std::map<std::string, long>& after);

// "redis_commands=T per_caller=T/n: cmd=k ..." for a delta.
std::string FormatCommandDelta(const std::map<std::string, long>& delta,
                               long callers);

// VmRSS of `pid` in KiB, or -1.
long RssKiB(int pid);

// The sum of the samples of `metric` (any labels, or only series whose label
// text contains `label_filter`) scraped from http://ADDRESS/metrics.
std::optional<double> ScrapeMetric(const std::string& address,
                                   const std::string& metric,
                                   const std::string& label_filter = "");

// The q-quantile (q in [0, 1]) of `samples`, which it sorts. Zero if empty.
absl::Duration Quantile(std::vector<absl::Duration>& samples, double q);

}  // namespace corral::bench

#endif  // CORRAL_CLIENT_BENCH_PROBES_H_
