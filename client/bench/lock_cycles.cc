#include "client/bench/lock_cycles.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "corral/v1/corral.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace corral::bench {

namespace pb = corral::v1;

std::string LockCyclesReport::Summary() const {
  return absl::StrFormat(
      "cycles=%d errors=%d elapsed=%s cycles_per_s=%.0f p50=%s p99=%s", cycles,
      errors, absl::FormatDuration(elapsed),
      static_cast<double>(cycles) / absl::ToDoubleSeconds(elapsed),
      absl::FormatDuration(p50), absl::FormatDuration(p99));
}

LockCyclesReport RunLockCycles(const LockCyclesOptions& options) {
  absl::BitGen rng;
  const std::string prefix =
      absl::StrCat("locks-", absl::Uniform<uint64_t>(rng), "-");
  std::atomic<long> cycles{0}, errors{0};
  absl::Mutex mu;
  std::vector<absl::Duration> samples;
  const absl::Time start = absl::Now();
  const absl::Time end = start + options.duration;
  std::vector<std::thread> threads;
  for (int w = 0; w < options.workers; ++w) {
    threads.emplace_back([&, w] {
      grpc::ChannelArguments args;
      args.SetInt("corral.bench.channel", w);
      auto channel =
          grpc::CreateCustomChannel(options.targets[w % options.targets.size()],
                                    grpc::InsecureChannelCredentials(), args);
      auto stub = pb::Corral::NewStub(channel);
      pb::AcquireLockRequest acquire;
      acquire.set_namespace_(options.ns);
      acquire.set_key(options.contended ? prefix : absl::StrCat(prefix, w));
      acquire.mutable_ttl()->set_seconds(10);
      acquire.mutable_wait_timeout()->set_seconds(options.contended ? 10 : 0);
      std::vector<absl::Duration> mine;
      while (absl::Now() < end) {
        const absl::Time t0 = absl::Now();
        grpc::ClientContext c1;
        pb::AcquireLockResponse got;
        if (!stub->AcquireLock(&c1, acquire, &got).ok() || !got.acquired()) {
          ++errors;
          continue;
        }
        pb::ReleaseLockRequest release;
        release.set_namespace_(options.ns);
        release.set_key(acquire.key());
        release.set_token(got.token());
        release.set_outcome(pb::OUTCOME_SUCCESS);
        grpc::ClientContext c2;
        pb::ReleaseLockResponse released;
        if (!stub->ReleaseLock(&c2, release, &released).ok() ||
            !released.released()) {
          ++errors;
          continue;
        }
        ++cycles;
        mine.push_back(absl::Now() - t0);
      }
      absl::MutexLock lock(&mu);
      samples.insert(samples.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  LockCyclesReport report;
  report.elapsed = absl::Now() - start;
  report.cycles = cycles;
  report.errors = errors;
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    report.p50 = samples[samples.size() / 2];
    report.p99 =
        samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  }
  return report;
}

}  // namespace corral::bench
