#include "client/bench/hot_hits.h"

#include <algorithm>
#include <memory>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/bench/probes.h"
#include "corral/v1/corral.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace corral::bench {
namespace {

namespace pb = corral::v1;

// What all callers share: when to count, when to stop, and the tallies.
struct Shared {
  absl::Time count_from, stop_at;
  absl::Mutex mu;
  int running ABSL_GUARDED_BY(mu) = 0;
  long requests ABSL_GUARDED_BY(mu) = 0;
  long errors ABSL_GUARDED_BY(mu) = 0;
  std::vector<absl::Duration> latencies ABSL_GUARDED_BY(mu);
};

// One closed-loop caller: a call in flight at a time; the next one starts
// from the previous one's completion callback. Its tallies are its own
// until it stops (callbacks of one caller never overlap).
class Caller {
 public:
  Caller(pb::Corral::Stub* stub, const HotHitsOptions& options,
         const std::string& key, Shared* shared)
      : stub_(stub), options_(options), shared_(shared) {
    get_.set_namespace_(options.ns);
    get_.set_key(key);
    auto* lookup = lookup_.mutable_lookup();
    lookup->set_namespace_(options.ns);
    lookup->set_key(key);
  }

  void Next() {
    if (absl::Now() >= shared_->stop_at) return Stop();
    if (options_.rpc == HitRpc::kGet) {
      IssueGet();
    } else {
      new Lookup(this);
    }
  }

 private:
  // One GetOrCompute call on a warm key: Lookup, Value, OK.
  class Lookup final
      : public grpc::ClientBidiReactor<pb::GetOrComputeRequest,
                                       pb::GetOrComputeResponse> {
   public:
    explicit Lookup(Caller* caller) : caller_(caller), start_(absl::Now()) {
      caller->stub_->async()->GetOrCompute(&ctx_, this);
      StartWriteLast(&caller->lookup_, grpc::WriteOptions());
      StartRead(&response_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      got_value_ =
          ok && response_.has_value() && !response_.value().value().empty();
    }
    void OnDone(const grpc::Status& status) override {
      Caller* caller = caller_;
      const bool ok = status.ok() && got_value_;
      const absl::Time start = start_;
      delete this;
      caller->Record(start, ok);
    }

   private:
    Caller* caller_;
    absl::Time start_;
    grpc::ClientContext ctx_;
    pb::GetOrComputeResponse response_;
    bool got_value_ = false;
  };

  struct GetCall {
    grpc::ClientContext ctx;
    pb::GetResponse response;
    absl::Time start = absl::Now();
  };

  void IssueGet() {
    auto* call = new GetCall;
    stub_->async()->Get(&call->ctx, &get_, &call->response,
                        [this, call](grpc::Status s) {
                          const bool ok = s.ok() && call->response.found();
                          const absl::Time start = call->start;
                          delete call;
                          Record(start, ok);
                        });
  }

  void Record(absl::Time start, bool ok) {
    const absl::Time now = absl::Now();
    if (start >= shared_->count_from && now <= shared_->stop_at) {
      if (ok) {
        ++requests_;
        latencies_.push_back(now - start);
      } else {
        ++errors_;
      }
    }
    Next();
  }

  void Stop() {
    absl::MutexLock lock(&shared_->mu);
    shared_->requests += requests_;
    shared_->errors += errors_;
    shared_->latencies.insert(shared_->latencies.end(), latencies_.begin(),
                              latencies_.end());
    --shared_->running;
  }

  pb::Corral::Stub* stub_;
  const HotHitsOptions& options_;
  Shared* shared_;
  pb::GetRequest get_;
  pb::GetOrComputeRequest lookup_;
  long requests_ = 0, errors_ = 0;
  std::vector<absl::Duration> latencies_;
};

}  // namespace

double HotHitsReport::per_second() const {
  const double s = absl::ToDoubleSeconds(measured);
  return s > 0 ? static_cast<double>(requests) / s : 0;
}

std::string HotHitsReport::Summary() const {
  return absl::StrFormat(
      "requests=%d errors=%d measured=%s req_per_s=%.0f p50=%s p99=%s",
      requests, errors, absl::FormatDuration(measured), per_second(),
      absl::FormatDuration(p50), absl::FormatDuration(p99));
}

HotHitsReport RunHotHits(const HotHitsOptions& options) {
  HotHitsReport report;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<pb::Corral::Stub>> stubs;
  for (const std::string& target : options.targets) {
    for (int i = 0; i < std::max(1, options.channels_per_target); ++i) {
      grpc::ChannelArguments args;
      args.SetInt("corral.bench.channel", i);  // One connection per channel.
      channels.push_back(grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), args));
      stubs.push_back(pb::Corral::NewStub(channels.back()));
    }
  }
  for (auto& channel : channels) {
    channel->WaitForConnected(
        absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  absl::BitGen rng;
  const std::string key = absl::StrCat("hot-", absl::Uniform<uint64_t>(rng));
  {
    pb::SetRequest set;
    set.set_namespace_(options.ns);
    set.set_key(key);
    set.set_value(std::string(
        static_cast<size_t>(std::max(1, options.value_bytes)), 'v'));
    pb::SetResponse stored;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!stubs[0]->Set(&ctx, set, &stored).ok() || !stored.stored()) {
      report.errors = 1;
      return report;
    }
  }
  Shared shared;
  const absl::Time start = absl::Now();
  shared.count_from = start + options.warmup;
  shared.stop_at = shared.count_from + options.duration;
  std::vector<std::unique_ptr<Caller>> callers;
  {
    absl::MutexLock lock(&shared.mu);
    shared.running = options.concurrency;
  }
  for (int i = 0; i < options.concurrency; ++i) {
    callers.push_back(std::make_unique<Caller>(stubs[i % stubs.size()].get(),
                                               options, key, &shared));
  }
  for (auto& c : callers) c->Next();
  absl::MutexLock lock(&shared.mu);
  shared.mu.Await(absl::Condition(
      +[](int* running) { return *running == 0; }, &shared.running));
  report.requests = shared.requests;
  report.errors = shared.errors;
  report.measured = options.duration;
  report.p50 = Quantile(shared.latencies, 0.5);
  report.p99 = Quantile(shared.latencies, 0.99);
  return report;
}

}  // namespace corral::bench
