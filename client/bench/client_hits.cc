#include "client/bench/client_hits.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/cpp/corral_client.h"

namespace corral::bench {
namespace {

absl::Duration Percentile(std::vector<absl::Duration>& sorted, double p) {
  if (sorted.empty()) return absl::ZeroDuration();
  const size_t i = std::min(sorted.size() - 1,
                            static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i];
}

std::string StatsText(const client::ClientStats& s) {
  return absl::StrCat("client_get_rpcs=", s.get_rpcs,
                      " client_streams=", s.get_or_compute_streams,
                      " shared=", s.shared_calls, " near_hits=", s.near_hits,
                      " near_planted=", s.near_planted,
                      " near_invalidations=", s.near_invalidations,
                      " near_resets=", s.near_resets);
}

}  // namespace

std::string ClientHitsReport::Summary() const {
  const double secs = absl::ToDoubleSeconds(measured);
  return absl::StrFormat(
      "requests=%d errors=%d req_per_s=%.0f p50_us=%.0f p99_us=%.0f %s",
      requests, errors, secs > 0 ? requests / secs : 0.0,
      absl::ToDoubleMicroseconds(p50), absl::ToDoubleMicroseconds(p99),
      StatsText(stats));
}

ClientHitsReport RunClientHits(const ClientHitsOptions& options) {
  client::ClientOptions copts;
  copts.near_cache = options.near_cache;
  copts.default_timeout = absl::Seconds(60);
  client::Client c(options.target, copts);
  if (options.near_cache) c.WaitNearCacheReady(absl::Seconds(10));
  const std::string key =
      absl::StrCat("client-hits-", absl::ToUnixNanos(absl::Now()));
  const std::string value(options.value_bytes, 'v');
  ClientHitsReport report;
  if (!c.Set(options.ns, key, value).ok()) {
    report.errors = 1;
    return report;
  }
  const absl::Time count_from = absl::Now() + options.warmup;
  const absl::Time stop_at = count_from + options.duration;
  absl::Mutex mu;
  std::vector<absl::Duration> latencies;
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < options.concurrency; ++t) {
      threads.emplace_back([&] {
        std::vector<absl::Duration> mine;
        long requests = 0, errors = 0;
        auto compute = [&]() -> absl::StatusOr<std::string> { return value; };
        while (true) {
          const absl::Time start = absl::Now();
          if (start >= stop_at) break;
          bool good;
          if (options.get_or_compute) {
            auto r = c.GetOrCompute(options.ns, key, compute);
            good = r.ok() && r->value.size() == value.size();
          } else {
            auto r = c.Get(options.ns, key);
            good = r.ok() && r->found;
          }
          if (start < count_from) continue;
          const absl::Duration took = absl::Now() - start;
          if (good) {
            ++requests;
            // Keep the sample bounded: one latency in 16.
            if ((requests & 15) == 0) mine.push_back(took);
          } else {
            ++errors;
          }
        }
        absl::MutexLock lock(&mu);
        report.requests += requests;
        report.errors += errors;
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : threads) t.join();
  }
  report.measured = options.duration;
  std::sort(latencies.begin(), latencies.end());
  report.p50 = Percentile(latencies, 0.50);
  report.p99 = Percentile(latencies, 0.99);
  report.stats = c.stats();
  return report;
}

std::string ClientStampedeReport::Summary() const {
  return absl::StrFormat(
      "computes=%d ok=%d errors=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f %s",
      computes, ok, errors, absl::ToDoubleMilliseconds(p50),
      absl::ToDoubleMilliseconds(p99), absl::ToDoubleMilliseconds(max),
      StatsText(stats));
}

ClientStampedeReport RunClientStampede(const ClientStampedeOptions& options) {
  client::ClientOptions copts;
  copts.near_cache = options.near_cache;
  copts.default_timeout = absl::Seconds(60);
  client::Client c(options.target, copts);
  if (options.near_cache) c.WaitNearCacheReady(absl::Seconds(10));
  const std::string key =
      absl::StrCat("client-stampede-", absl::ToUnixNanos(absl::Now()));
  std::atomic<int> computes{0};
  ClientStampedeReport report;
  absl::Mutex mu;
  std::vector<absl::Duration> latencies;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < options.callers; ++i) {
      threads.emplace_back([&] {
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        const absl::Time start = absl::Now();
        auto r = c.GetOrCompute(options.ns, key,
                                [&]() -> absl::StatusOr<std::string> {
                                  computes.fetch_add(1);
                                  absl::SleepFor(options.compute_time);
                                  return std::string(100, 'v');
                                });
        const absl::Duration took = absl::Now() - start;
        absl::MutexLock lock(&mu);
        latencies.push_back(took);
        if (r.ok()) {
          ++report.ok;
        } else {
          ++report.errors;
        }
      });
    }
    while (ready.load() < options.callers) std::this_thread::yield();
    go.store(true);
    for (auto& t : threads) t.join();
  }
  std::sort(latencies.begin(), latencies.end());
  report.computes = computes.load();
  report.p50 = Percentile(latencies, 0.50);
  report.p99 = Percentile(latencies, 0.99);
  report.max = latencies.empty() ? absl::ZeroDuration() : latencies.back();
  report.stats = c.stats();
  return report;
}

std::string CoherenceReport::Summary() const {
  return absl::StrFormat(
      "rounds=%d not_seen=%d not_near=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f",
      rounds, not_seen, not_near, absl::ToDoubleMilliseconds(p50),
      absl::ToDoubleMilliseconds(p99), absl::ToDoubleMilliseconds(max));
}

CoherenceReport RunCoherence(const CoherenceOptions& options) {
  client::ClientOptions reader_options;
  reader_options.default_timeout = absl::Seconds(10);
  client::Client reader(options.reader_target, reader_options);
  reader.WaitNearCacheReady(absl::Seconds(10));
  client::ClientOptions writer_options;
  writer_options.near_cache = false;
  writer_options.default_timeout = absl::Seconds(10);
  client::Client writer(options.writer_target, writer_options);
  const std::string key =
      absl::StrCat("coherence-", absl::ToUnixNanos(absl::Now()));
  CoherenceReport report;
  std::vector<absl::Duration> seen;
  for (int i = 0; i < options.rounds; ++i) {
    const std::string value = absl::StrCat("v", i);
    if (!writer.Set(options.ns, key, value).ok()) {
      ++report.not_seen;
      continue;
    }
    // Until the reader holds it in its near cache.
    bool near = false;
    const absl::Time near_by = absl::Now() + absl::Seconds(2);
    while (!near && absl::Now() < near_by) {
      auto got = reader.Get(options.ns, key);
      near = got.ok() && got->found && got->value.value == value &&
             got->value.source == client::Source::kNearCache;
    }
    if (!near) ++report.not_near;
    const std::string next = absl::StrCat("w", i);
    const absl::Time start = absl::Now();
    if (!writer.Set(options.ns, key, next).ok()) {
      ++report.not_seen;
      continue;
    }
    bool ok = false;
    while (absl::Now() - start < absl::Seconds(5)) {
      auto got = reader.Get(options.ns, key);
      if (got.ok() && got->found && got->value.value == next) {
        ok = true;
        break;
      }
    }
    if (!ok) {
      ++report.not_seen;
      continue;
    }
    seen.push_back(absl::Now() - start);
  }
  report.rounds = options.rounds;
  std::sort(seen.begin(), seen.end());
  report.p50 = Percentile(seen, 0.50);
  report.p99 = Percentile(seen, 0.99);
  report.max = seen.empty() ? absl::ZeroDuration() : seen.back();
  return report;
}

}  // namespace corral::bench
