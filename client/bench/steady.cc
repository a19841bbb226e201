#include "client/bench/steady.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/cpp/corral_client.h"

namespace corral::bench {
namespace {

using client::LeaseMode;
using client::Source;

// What one caller saw in one call.
struct CallRecord {
  absl::Time start, end;
  bool ok = false;
  bool computed = false;
  bool refresh = false;
  bool waited = false;
  bool stale = false;
};

bool WaitedForACompute(Source source) {
  return source == Source::kPeerFill || source == Source::kCacheAfterLock ||
         source == Source::kCacheAfterTimeout;
}

}  // namespace

std::string SteadyReport::Summary() const {
  return absl::StrFormat(
      "calls=%d errors=%d computes=%d refreshes=%d max_concurrent_computes=%d "
      "waited=%d waited_after_first_fill=%d/%d (%.4f%%) stale=%d p50=%s p99=%s "
      "max=%s",
      calls, errors, computes, refreshes, max_concurrent_computes, waited,
      waited_after_first_fill, calls_after_first_fill,
      100 * WaitedFractionAfterFirstFill(), stale, absl::FormatDuration(p50),
      absl::FormatDuration(p99), absl::FormatDuration(max));
}

SteadyReport RunSteady(const SteadyOptions& options) {
  std::vector<std::unique_ptr<client::Client>> clients;
  for (const std::string& target : options.targets) {
    client::ClientOptions co;
    co.default_timeout = options.deadline;
    clients.push_back(std::make_unique<client::Client>(target, co));
  }

  std::atomic<int> running{0}, max_running{0};
  std::atomic<int64_t> next_value{0};
  absl::Mutex mu;
  std::vector<CallRecord> records;
  std::vector<absl::Time> compute_starts;
  absl::Time first_fill = absl::InfiniteFuture();
  std::string first_error;

  const absl::Time begin = absl::Now();
  const absl::Time stop = begin + options.duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < options.callers; ++i) {
    client::Client& c = *clients[i % clients.size()];
    threads.emplace_back([&, i] {
      std::vector<CallRecord> mine;
      while (absl::Now() < stop) {
        CallRecord rec;
        rec.start = absl::Now();
        client::GetOrComputeOptions go;
        go.allow_stale = options.allow_stale;
        go.worker_id = absl::StrCat("steady-", i);
        auto result = c.GetOrCompute(
            options.ns, options.key,
            [&]() -> absl::StatusOr<std::string> {
              const int now_running = ++running;
              int seen = max_running.load();
              while (now_running > seen &&
                     !max_running.compare_exchange_weak(seen, now_running)) {
              }
              {
                absl::MutexLock lock(&mu);
                compute_starts.push_back(absl::Now());
              }
              absl::SleepFor(options.compute_time);
              --running;
              return absl::StrCat("value-", next_value.fetch_add(1));
            },
            go);
        rec.end = absl::Now();
        rec.ok = result.ok();
        if (result.ok()) {
          rec.computed = result->computed;
          rec.refresh = result->lease_mode == LeaseMode::kRefresh;
          rec.waited = !result->computed && WaitedForACompute(result->source);
          rec.stale = result->stale;
          if (result->computed && result->stored) {
            absl::MutexLock lock(&mu);
            first_fill = std::min(first_fill, rec.end);
          }
        } else {
          absl::MutexLock lock(&mu);
          if (first_error.empty()) first_error = result.status().ToString();
        }
        mine.push_back(rec);
        if (options.pace > absl::ZeroDuration()) absl::SleepFor(options.pace);
      }
      absl::MutexLock lock(&mu);
      records.insert(records.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& t : threads) t.join();

  SteadyReport report;
  report.first_error = first_error;
  report.max_concurrent_computes = max_running.load();
  std::sort(compute_starts.begin(), compute_starts.end());
  for (absl::Time t : compute_starts)
    report.compute_starts.push_back(t - begin);
  std::vector<absl::Duration> latencies;
  for (const CallRecord& r : records) {
    ++report.calls;
    if (!r.ok) {
      ++report.errors;
      continue;
    }
    report.computes += r.computed ? 1 : 0;
    report.refreshes += r.computed && r.refresh ? 1 : 0;
    report.waited += r.waited ? 1 : 0;
    report.stale += r.stale ? 1 : 0;
    // Calls that started once a value existed.
    if (r.start >= first_fill) {
      ++report.calls_after_first_fill;
      report.waited_after_first_fill += r.waited ? 1 : 0;
      if (!r.computed) latencies.push_back(r.end - r.start);
    }
  }
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    const auto at = [&](double q) {
      return latencies[std::min(
          latencies.size() - 1,
          static_cast<size_t>(q * static_cast<double>(latencies.size())))];
    };
    report.p50 = at(0.5);
    report.p99 = at(0.99);
    report.max = latencies.back();
  }
  return report;
}

}  // namespace corral::bench
