// corral-bench: a load generator for corrald. See --help.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/bench/lock_cycles.h"
#include "client/bench/stampede.h"

ABSL_FLAG(std::string, mode, "stampede",
          "stampede: GetOrCompute callers on cold keys; locks: AcquireLock+ReleaseLock "
          "cycles (--workers, --contended, --duration_s).");
ABSL_FLAG(int, workers, 1, "locks mode: concurrent workers (one blocking stub each).");
ABSL_FLAG(bool, contended, false, "locks mode: all workers on one key.");
ABSL_FLAG(int, duration_s, 5, "locks mode: how long to run.");
ABSL_FLAG(std::string, targets, "127.0.0.1:50051", "Comma-separated corrald addresses.");
ABSL_FLAG(int, callers, 1000, "Concurrent GetOrCompute callers.");
ABSL_FLAG(int, keys, 1, "Distinct cold keys the callers spread over.");
ABSL_FLAG(int, compute_ms, 200, "How long the leaseholder computes, in ms.");
ABSL_FLAG(int, channels, 4, "HTTP/2 connections per target.");
ABSL_FLAG(std::string, ns, "bench", "Namespace.");
ABSL_FLAG(int, deadline_s, 60, "Per-call deadline in seconds.");
ABSL_FLAG(bool, fail, false, "Leaseholders abandon with upstream_failure.");
ABSL_FLAG(int, redis_port, 0,
          "If set, report Redis commands issued during the run (INFO commandstats "
          "diff via redis-cli on 127.0.0.1:PORT).");
ABSL_FLAG(std::string, corrald_pids, "",
          "Comma-separated corrald PIDs: report their RSS before and at peak.");

namespace {

// calls= per command from `redis-cli INFO commandstats`.
std::map<std::string, long> CommandStats(int port) {
  std::map<std::string, long> stats;
  std::string cmd = absl::StrCat("redis-cli -p ", port, " INFO commandstats");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return stats;
  char line[1024];
  while (fgets(line, sizeof line, pipe) != nullptr) {
    // cmdstat_evalsha:calls=12,usec=...
    std::string l(line);
    if (l.rfind("cmdstat_", 0) != 0) continue;
    auto colon = l.find(':');
    auto calls = l.find("calls=");
    if (colon == std::string::npos || calls == std::string::npos) continue;
    long n = 0;
    (void)absl::SimpleAtoi(l.substr(calls + 6, l.find(',', calls) - calls - 6), &n);
    stats[l.substr(8, colon - 8)] = n;
  }
  pclose(pipe);
  return stats;
}

long RssKiB(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      long kib = 0;
      std::istringstream(line.substr(6)) >> kib;
      return kib;
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "corral-bench: N concurrent GetOrCompute callers on K cold keys; the leaseholder\n"
      "computes for C ms and fills. Reports computes, caller latency p50/p99/max,\n"
      "Redis commands issued (--redis_port) and corrald RSS (--corrald_pids).\n"
      "Example: corral-bench --targets=127.0.0.1:50051 --callers=10000 --keys=1 "
      "--compute_ms=200");
  absl::ParseCommandLine(argc, argv);

  if (absl::GetFlag(FLAGS_mode) == "locks") {
    corral::bench::LockCyclesOptions lock_options;
    lock_options.targets =
        absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipEmpty());
    lock_options.ns = absl::GetFlag(FLAGS_ns);
    lock_options.workers = absl::GetFlag(FLAGS_workers);
    lock_options.contended = absl::GetFlag(FLAGS_contended);
    lock_options.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
    auto report = corral::bench::RunLockCycles(lock_options);
    std::printf("%s\n", report.Summary().c_str());
    return report.errors == 0 ? 0 : 1;
  }
  if (absl::GetFlag(FLAGS_mode) != "stampede") {
    std::fprintf(stderr, "corral-bench: --mode must be stampede or locks\n");
    return 2;
  }
  corral::bench::StampedeOptions options;
  options.targets = absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipEmpty());
  options.callers = absl::GetFlag(FLAGS_callers);
  options.keys = absl::GetFlag(FLAGS_keys);
  options.compute_time = absl::Milliseconds(absl::GetFlag(FLAGS_compute_ms));
  options.channels_per_target = absl::GetFlag(FLAGS_channels);
  options.ns = absl::GetFlag(FLAGS_ns);
  options.deadline = absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  options.fail_compute = absl::GetFlag(FLAGS_fail);
  absl::BitGen rng;
  options.key_prefix = absl::StrCat("bench-", absl::Uniform<uint64_t>(rng), "-");
  if (options.callers <= 0 || options.keys <= 0 || options.targets.empty()) {
    std::fprintf(stderr, "corral-bench: --callers, --keys and --targets must be set\n");
    return 2;
  }

  std::vector<int> pids;
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_corrald_pids), ',',
                                            absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(p, &pid)) pids.push_back(pid);
  }
  std::vector<long> rss_before, rss_peak;
  for (int pid : pids) {
    rss_before.push_back(RssKiB(pid));
    rss_peak.push_back(rss_before.back());
  }
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling) {
      for (size_t i = 0; i < pids.size(); ++i) rss_peak[i] = std::max(rss_peak[i], RssKiB(pids[i]));
      usleep(20'000);
    }
  });

  const int redis_port = absl::GetFlag(FLAGS_redis_port);
  std::map<std::string, long> before;
  if (redis_port > 0) before = CommandStats(redis_port);

  corral::bench::StampedeReport report = corral::bench::RunStampede(options);
  sampling = false;
  sampler.join();

  std::printf("%s\n", report.Summary().c_str());
  if (redis_port > 0) {
    std::map<std::string, long> after = CommandStats(redis_port);
    long total = 0;
    std::string detail;
    for (const auto& [cmd, n] : after) {
      long d = n - (before.count(cmd) ? before[cmd] : 0);
      if (cmd == "info" || d == 0) continue;
      total += d;
      absl::StrAppend(&detail, " ", cmd, "=", d);
    }
    std::printf("redis_commands=%ld per_caller=%.4f:%s\n", total,
                static_cast<double>(total) / options.callers, detail.c_str());
  }
  for (size_t i = 0; i < pids.size(); ++i) {
    std::printf("corrald pid=%d rss_before_kib=%ld rss_peak_kib=%ld per_caller_bytes=%.0f\n",
                pids[i], rss_before[i], rss_peak[i],
                1024.0 * static_cast<double>(rss_peak[i] - rss_before[i]) /
                    (static_cast<double>(options.callers) / static_cast<double>(pids.size())));
  }
  return report.ok() == options.callers ? 0 : 1;
}
