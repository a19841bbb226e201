// corral-bench: a load generator for corrald. See --help.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/bench/hot_hits.h"
#include "client/bench/lock_cycles.h"
#include "client/bench/probes.h"
#include "client/bench/stampede.h"
#include "client/bench/steady.h"

ABSL_FLAG(
    std::string, mode, "stampede",
    "stampede: GetOrCompute callers on cold keys; waiters: --callers wait on "
    "one key "
    "until all are waiting (corral_waiters, from --metrics), then one fill; "
    "hits: "
    "closed-loop callers on one warm key (--rpc, --concurrency, --duration_s); "
    "locks: "
    "AcquireLock+ReleaseLock cycles (--workers, --contended, --duration_s); "
    "steady: "
    "--callers threads call GetOrCompute on one hot key in a loop for "
    "--duration_s "
    "(--pace_ms between calls, --allow_stale) and count computes and waits.");
ABSL_FLAG(int, pace_ms, 10,
          "steady mode: pause between one caller's calls, in ms.");
ABSL_FLAG(bool, allow_stale, false,
          "steady mode: callers accept stale values.");
ABSL_FLAG(int, workers, 1,
          "locks mode: concurrent workers (one blocking stub each).");
ABSL_FLAG(bool, contended, false, "locks mode: all workers on one key.");
ABSL_FLAG(int, duration_s, 5, "locks and hits modes: how long to run.");
ABSL_FLAG(std::string, rpc, "get_or_compute",
          "hits mode: get or get_or_compute.");
ABSL_FLAG(int, concurrency, 16, "hits mode: closed-loop callers.");
ABSL_FLAG(int, value_bytes, 100,
          "hits mode: size of the warm value; waiters mode: size of the value "
          "filled.");
ABSL_FLAG(std::string, targets, "127.0.0.1:50051",
          "Comma-separated corrald addresses.");
ABSL_FLAG(int, callers, 1000, "Concurrent GetOrCompute callers.");
ABSL_FLAG(int, keys, 1, "Distinct cold keys the callers spread over.");
ABSL_FLAG(int, compute_ms, 200, "How long the leaseholder computes, in ms.");
ABSL_FLAG(
    int, channels, 4,
    "HTTP/2 connections per target (corrald allows 10,000 streams on each).");
ABSL_FLAG(std::string, ns, "bench", "Namespace.");
ABSL_FLAG(int, deadline_s, 60, "Per-call deadline in seconds.");
ABSL_FLAG(bool, fail, false, "Leaseholders abandon with upstream_failure.");
ABSL_FLAG(int, wait_timeout_ms, 0,
          "stampede mode: the callers' wait_timeout in ms (0: the "
          "namespace's).");
ABSL_FLAG(
    int, redis_port, 0,
    "If set, report Redis commands issued during the run (INFO commandstats "
    "diff via redis-cli on 127.0.0.1:PORT).");
ABSL_FLAG(std::string, corrald_pids, "",
          "Comma-separated corrald PIDs: report their RSS before and at peak.");
ABSL_FLAG(std::string, metrics, "",
          "waiters mode: corrald's metrics address (host:port), polled for "
          "corral_waiters.");

namespace {

namespace bench = corral::bench;

// Samples the RSS of some processes every 20 ms while alive; keeps the peak.
class RssSampler {
 public:
  explicit RssSampler(std::vector<int> pids) : pids_(std::move(pids)) {
    for (int pid : pids_) before_.push_back(bench::RssKiB(pid));
    peak_ = before_;
    thread_ = std::thread([this] {
      while (!stop_) {
        Sample();
        usleep(20'000);
      }
    });
  }
  ~RssSampler() { Stop(); }
  void Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
      Sample();
    }
  }
  const std::vector<int>& pids() const { return pids_; }
  long before(size_t i) const { return before_[i]; }
  long peak(size_t i) const { return peak_[i]; }

 private:
  void Sample() {
    for (size_t i = 0; i < pids_.size(); ++i)
      peak_[i] = std::max(peak_[i], bench::RssKiB(pids_[i]));
  }
  std::vector<int> pids_;
  std::vector<long> before_, peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<int> Pids() {
  std::vector<int> pids;
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_corrald_pids),
                                            ',', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(p, &pid)) pids.push_back(pid);
  }
  return pids;
}

std::vector<std::string> Targets() {
  return absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipEmpty());
}

int RunLocks() {
  bench::LockCyclesOptions options;
  options.targets = Targets();
  options.ns = absl::GetFlag(FLAGS_ns);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.contended = absl::GetFlag(FLAGS_contended);
  options.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  auto report = bench::RunLockCycles(options);
  std::printf("%s\n", report.Summary().c_str());
  return report.errors == 0 ? 0 : 1;
}

int RunSteadyMode() {
  bench::SteadyOptions options;
  options.targets = Targets();
  options.ns = absl::GetFlag(FLAGS_ns);
  options.key = absl::StrCat("steady-", absl::ToUnixNanos(absl::Now()));
  options.callers = absl::GetFlag(FLAGS_callers);
  options.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  options.compute_time = absl::Milliseconds(absl::GetFlag(FLAGS_compute_ms));
  options.pace = absl::Milliseconds(absl::GetFlag(FLAGS_pace_ms));
  options.allow_stale = absl::GetFlag(FLAGS_allow_stale);
  options.deadline = absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  const auto report = bench::RunSteady(options);
  std::printf("ns=%s %s\n", options.ns.c_str(), report.Summary().c_str());
  if (!report.first_error.empty())
    std::printf("first error: %s\n", report.first_error.c_str());
  return report.errors == 0 && report.calls > 0 ? 0 : 1;
}

int RunHits() {
  bench::HotHitsOptions options;
  options.targets = Targets();
  options.channels_per_target = absl::GetFlag(FLAGS_channels);
  options.ns = absl::GetFlag(FLAGS_ns);
  const std::string rpc = absl::GetFlag(FLAGS_rpc);
  if (rpc == "get") {
    options.rpc = bench::HitRpc::kGet;
  } else if (rpc != "get_or_compute") {
    std::fprintf(stderr, "corral-bench: --rpc must be get or get_or_compute\n");
    return 2;
  }
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  options.value_bytes = absl::GetFlag(FLAGS_value_bytes);
  const int redis_port = absl::GetFlag(FLAGS_redis_port);
  std::map<std::string, long> before;
  if (redis_port > 0) before = bench::RedisCommandStats(redis_port);
  const auto report = bench::RunHotHits(options);
  std::printf("rpc=%s concurrency=%d %s\n", rpc.c_str(), options.concurrency,
              report.Summary().c_str());
  if (redis_port > 0) {
    // Per answered request (the warm-up's requests are in the numerator too).
    std::printf("%s\n", bench::FormatCommandDelta(
                            bench::CommandDelta(
                                before, bench::RedisCommandStats(redis_port)),
                            report.requests)
                            .c_str());
  }
  return report.errors == 0 && report.requests > 0 ? 0 : 1;
}

bench::StampedeOptions StampedeFlags() {
  bench::StampedeOptions options;
  options.targets = Targets();
  options.callers = absl::GetFlag(FLAGS_callers);
  options.keys = absl::GetFlag(FLAGS_keys);
  options.compute_time = absl::Milliseconds(absl::GetFlag(FLAGS_compute_ms));
  options.channels_per_target = absl::GetFlag(FLAGS_channels);
  options.ns = absl::GetFlag(FLAGS_ns);
  options.deadline = absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  options.fail_compute = absl::GetFlag(FLAGS_fail);
  if (absl::GetFlag(FLAGS_wait_timeout_ms) > 0) {
    options.wait_timeout =
        absl::Milliseconds(absl::GetFlag(FLAGS_wait_timeout_ms));
  }
  absl::BitGen rng;
  options.key_prefix =
      absl::StrCat("bench-", absl::Uniform<uint64_t>(rng), "-");
  return options;
}

// W callers on one key; the fill is held back until corrald reports W-1
// waiters, so the RSS taken then is W-1 waiting callers' worth.
int RunWaiters() {
  bench::StampedeOptions options = StampedeFlags();
  options.keys = 1;
  options.compute_time = absl::ZeroDuration();
  // Nobody gives up waiting before the fill: the namespace's default wait
  // (15 s) is shorter than opening 50,000 calls can take.
  options.wait_timeout = options.deadline;
  const std::string filled(
      static_cast<size_t>(absl::GetFlag(FLAGS_value_bytes)), 'v');
  options.value_for = [&filled](int) { return filled; };
  const std::string metrics = absl::GetFlag(FLAGS_metrics);
  const std::vector<int> pids = Pids();
  if (metrics.empty() || pids.size() != 1 || options.targets.size() != 1) {
    std::fprintf(
        stderr,
        "corral-bench: waiters mode needs --metrics, one --corrald_pids "
        "and one --targets\n");
    return 2;
  }
  const std::string label = absl::StrCat("namespace=\"", options.ns, "\"");
  const double waiters_before =
      bench::ScrapeMetric(metrics, "corral_waiters", label).value_or(0);
  const long rss_before = bench::RssKiB(pids[0]);
  absl::Notification gate;
  options.fill_gate = &gate;
  bench::StampedeReport report;
  std::thread run([&] { report = bench::RunStampede(options); });
  const int want = options.callers - 1;
  const absl::Time start = absl::Now();
  double waiting = 0;
  while (absl::Now() - start < absl::Seconds(300)) {
    waiting =
        bench::ScrapeMetric(metrics, "corral_waiters", label).value_or(0) -
        waiters_before;
    if (waiting >= want) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Duration to_wait = absl::Now() - start;
  absl::SleepFor(absl::Milliseconds(300));  // Let allocations settle.
  const long rss_waiting = bench::RssKiB(pids[0]);
  RssSampler fan_out({pids[0]});  // The peak while the value goes out.
  gate.Notify();
  run.join();
  fan_out.Stop();

  absl::Time fill_sent, last_done;
  std::vector<absl::Duration> fill_to_waiter;
  for (const auto& c : report.callers) {
    if (c.computed) fill_sent = c.fill_sent;
  }
  for (const auto& c : report.callers) {
    if (c.computed || !c.status.ok()) continue;
    last_done = std::max(last_done, c.done);
    fill_to_waiter.push_back(c.done - fill_sent);
  }
  std::printf("%s\n", report.Summary().c_str());
  std::printf(
      "%s\n",
      absl::StrFormat(
          "waiters=%.0f of %d (after %s) corrald pid=%d rss_before_kib=%d "
          "rss_waiting_kib=%d kib_per_waiter=%.2f fill_to_waiter p50=%s p99=%s "
          "fill_to_last=%s value_bytes=%d rss_peak_during_fill_kib=%d",
          waiting, want, absl::FormatDuration(to_wait), pids[0], rss_before,
          rss_waiting,
          static_cast<double>(rss_waiting - rss_before) /
              std::max(1.0, waiting),
          absl::FormatDuration(bench::Quantile(fill_to_waiter, 0.5)),
          absl::FormatDuration(bench::Quantile(fill_to_waiter, 0.99)),
          absl::FormatDuration(last_done - fill_sent), filled.size(),
          fan_out.peak(0))
          .c_str());
  return report.ok() == options.callers && report.computes() == 1 &&
                 waiting >= want
             ? 0
             : 1;
}

// How the computes spread over time: how many ran at once at most (lease
// received to fill sent), and how many started per second between the first
// and the last lease.
std::string ComputeTimeline(const bench::StampedeReport& report) {
  std::vector<std::pair<absl::Time, int>> edges;
  absl::Time first = absl::InfiniteFuture(), last = absl::InfinitePast();
  int computes = 0, locked = 0;
  for (const auto& c : report.callers) {
    if (!c.computed) continue;
    ++computes;
    if (c.lease_mode == 1) ++locked;
    edges.emplace_back(c.lease_received, +1);
    edges.emplace_back(c.fill_sent, -1);
    first = std::min(first, c.lease_received);
    last = std::max(last, c.lease_received);
  }
  std::sort(edges.begin(), edges.end());  // An end before a start at a tie.
  int now = 0, peak = 0;
  for (const auto& [t, d] : edges) peak = std::max(peak, now += d);
  const double span = computes > 1 ? absl::ToDoubleSeconds(last - first) : 0;
  return absl::StrFormat(
      "computes=%d locked=%d unlocked=%d peak_concurrent_computes=%d "
      "lease_span=%.3fs computes_per_s=%.3f",
      computes, locked, computes - locked, peak, span,
      span > 0 ? (computes - 1) / span : 0.0);
}

int RunStampedeMode() {
  bench::StampedeOptions options = StampedeFlags();
  if (options.callers <= 0 || options.keys <= 0 || options.targets.empty()) {
    std::fprintf(stderr,
                 "corral-bench: --callers, --keys and --targets must be set\n");
    return 2;
  }
  RssSampler rss(Pids());
  const int redis_port = absl::GetFlag(FLAGS_redis_port);
  std::map<std::string, long> before;
  if (redis_port > 0) before = bench::RedisCommandStats(redis_port);
  bench::StampedeReport report = bench::RunStampede(options);
  rss.Stop();
  std::printf("%s\n", report.Summary().c_str());
  std::printf("%s\n", ComputeTimeline(report).c_str());
  if (redis_port > 0) {
    std::printf("%s\n", bench::FormatCommandDelta(
                            bench::CommandDelta(
                                before, bench::RedisCommandStats(redis_port)),
                            options.callers)
                            .c_str());
  }
  const auto& pids = rss.pids();
  for (size_t i = 0; i < pids.size(); ++i) {
    std::printf(
        "corrald pid=%d rss_before_kib=%ld rss_peak_kib=%ld "
        "per_caller_bytes=%.0f\n",
        pids[i], rss.before(i), rss.peak(i),
        1024.0 * static_cast<double>(rss.peak(i) - rss.before(i)) /
            (static_cast<double>(options.callers) /
             static_cast<double>(pids.size())));
  }
  return report.ok() == options.callers ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // As in corrald: Debian's abseil checks lock order on every mutex lock,
  // gRPC's included. A load generator that pays for that takes CPU from the
  // server it shares the machine with.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "corral-bench: load for corrald. Default mode: N concurrent GetOrCompute "
      "callers on K\n"
      "cold keys; the leaseholder computes for C ms and fills. Reports "
      "computes, caller\n"
      "latency p50/p99/max, Redis commands issued (--redis_port) and corrald "
      "RSS\n"
      "(--corrald_pids). Other modes: waiters, hits, locks, steady (see "
      "--mode).\n"
      "Example: corral-bench --targets=127.0.0.1:50051 --callers=10000 "
      "--keys=1 "
      "--compute_ms=200");
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "locks") return RunLocks();
  if (mode == "hits") return RunHits();
  if (mode == "steady") return RunSteadyMode();
  if (mode == "waiters") return RunWaiters();
  if (mode == "stampede") return RunStampedeMode();
  std::fprintf(stderr,
               "corral-bench: --mode must be stampede, waiters, hits, locks or "
               "steady\n");
  return 2;
}
