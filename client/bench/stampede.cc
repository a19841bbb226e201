#include "client/bench/stampede.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "corral/v1/corral.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace corral::bench {
namespace {

namespace pb = corral::v1;

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

// Runs delayed tasks on one thread: computes sleep here, not in gRPC's
// callback threads.
class TimerThread {
 public:
  TimerThread() : thread_([this] { Loop(); }) {}
  ~TimerThread() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  void RunAt(absl::Time when, std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    tasks_.emplace(when, std::move(task));
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      absl::Time next = tasks_.empty() ? absl::Now() + absl::Milliseconds(50)
                                       : tasks_.begin()->first;
      mu_.AwaitWithDeadline(
          absl::Condition(&stop_),
          std::min(next, absl::Now() + absl::Milliseconds(50)));
      while (!tasks_.empty() && tasks_.begin()->first <= absl::Now()) {
        auto task = std::move(tasks_.begin()->second);
        tasks_.erase(tasks_.begin());
        mu_.Unlock();
        task();
        mu_.Lock();
      }
    }
  }
  absl::Mutex mu_;
  std::multimap<absl::Time, std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class Caller final : public grpc::ClientBidiReactor<pb::GetOrComputeRequest,
                                                    pb::GetOrComputeResponse> {
 public:
  Caller(pb::Corral::Stub* stub, const StampedeOptions& options, int key,
         TimerThread* timers, CallerResult* result,
         std::function<void()> on_done)
      : options_(options),
        key_(key),
        timers_(timers),
        result_(result),
        on_done_(std::move(on_done)) {
    result_->key = key;
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    auto* lookup = first_.mutable_lookup();
    lookup->set_namespace_(options.ns);
    lookup->set_key(absl::StrCat(options.key_prefix, key));
    if (options.wait_timeout)
      SetDuration(*options.wait_timeout, lookup->mutable_wait_timeout());
    if (options.lease_ttl)
      SetDuration(*options.lease_ttl, lookup->mutable_lease_ttl());
    start_ = absl::Now();
    stub->async()->GetOrCompute(&ctx_, this);
    StartWrite(&first_);
    StartRead(&response_);
    StartCall();
  }

  void OnWriteDone(bool) override {}

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    switch (response_.msg_case()) {
      case pb::GetOrComputeResponse::kValue:
        result_->value = response_.value().value();
        result_->source = response_.value().source();
        break;
      case pb::GetOrComputeResponse::kFilled:
        result_->stored = response_.filled().stored();
        break;
      case pb::GetOrComputeResponse::kLease: {
        result_->computed = true;
        result_->lease_mode = response_.lease().mode();
        result_->lease_received = absl::Now();
        result_->fencing_token = response_.lease().fencing_token();
        // The hold keeps the reactor alive until the compute has written,
        // even if the call ends first.
        AddHold();
        timers_->RunAt(absl::Now() + options_.compute_time,
                       [this] { CompleteWhenOpen(); });
        StartRead(&response_);
        break;
      }
      default:
        break;
    }
  }

  void OnDone(const grpc::Status& status) override {
    result_->done = absl::Now();
    result_->latency = result_->done - start_;
    result_->status =
        absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                     status.error_message());
    const auto& trailers = ctx_.GetServerTrailingMetadata();
    if (auto it = trailers.find("corral-reason"); it != trailers.end()) {
      result_->reason = std::string(it->second.data(), it->second.size());
    }
    auto on_done = std::move(on_done_);
    delete this;
    on_done();
  }

 private:
  // On the timer thread: fills once the gate (if any) is open, polling it.
  void CompleteWhenOpen() {
    if (options_.fill_gate != nullptr &&
        !options_.fill_gate->HasBeenNotified()) {
      timers_->RunAt(absl::Now() + absl::Milliseconds(1),
                     [this] { CompleteWhenOpen(); });
      return;
    }
    Complete();
    RemoveHold();
  }

  void Complete() {
    result_->fill_sent = absl::Now();
    if (options_.fail_compute) {
      second_.mutable_abandon()->set_upstream_failure(true);
      second_.mutable_abandon()->set_reason("bench: upstream failed");
    } else {
      std::string value = options_.value_for ? options_.value_for(key_)
                                             : absl::StrCat("value-", key_);
      result_->value = value;
      second_.mutable_fill()->set_value(std::move(value));
    }
    StartWrite(&second_);
  }

  const StampedeOptions& options_;
  const int key_;
  TimerThread* timers_;
  CallerResult* result_;
  std::function<void()> on_done_;
  grpc::ClientContext ctx_;
  pb::GetOrComputeRequest first_, second_;
  pb::GetOrComputeResponse response_;
  absl::Time start_;
};

}  // namespace

int StampedeReport::computes() const {
  return static_cast<int>(
      std::count_if(callers.begin(), callers.end(),
                    [](const CallerResult& c) { return c.computed; }));
}

int StampedeReport::ok() const {
  return static_cast<int>(
      std::count_if(callers.begin(), callers.end(),
                    [](const CallerResult& c) { return c.status.ok(); }));
}

absl::Duration StampedeReport::Percentile(double q) const {
  if (callers.empty()) return absl::ZeroDuration();
  std::vector<absl::Duration> v;
  v.reserve(callers.size());
  for (const auto& c : callers) v.push_back(c.latency);
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string StampedeReport::Summary() const {
  std::map<std::string, int> outcomes;
  for (const auto& c : callers) {
    std::string k =
        c.status.ok() ? "OK"
                      : absl::StrCat(absl::StatusCodeToString(c.status.code()),
                                     c.reason.empty() ? "" : "/", c.reason);
    ++outcomes[k];
  }
  std::string out = absl::StrFormat(
      "callers=%d computes=%d elapsed=%s latency p50=%s p99=%s max=%s "
      "outcomes:",
      callers.size(), computes(), absl::FormatDuration(elapsed),
      absl::FormatDuration(Percentile(0.5)),
      absl::FormatDuration(Percentile(0.99)),
      absl::FormatDuration(Percentile(1.0)));
  for (const auto& [k, n] : outcomes) absl::StrAppend(&out, " ", k, "=", n);
  // How the callers that got a Value were served.
  static constexpr const char* kSources[] = {"unspecified",         "cache",
                                             "cache_after_lock",    "peer_fill",
                                             "cache_after_timeout", "stale"};
  std::map<std::string, int> sources;
  for (const auto& c : callers) {
    if (c.status.ok() && !c.computed && c.source >= 0 && c.source <= 5)
      ++sources[kSources[c.source]];
  }
  absl::StrAppend(&out, " served_by:");
  for (const auto& [k, n] : sources) absl::StrAppend(&out, " ", k, "=", n);
  return out;
}

StampedeReport RunStampede(const StampedeOptions& options) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<pb::Corral::Stub>> stubs;
  for (const std::string& target : options.targets) {
    for (int i = 0; i < std::max(1, options.channels_per_target); ++i) {
      grpc::ChannelArguments args;
      // A distinct argument per channel keeps each on its own connection.
      args.SetInt("corral.bench.channel", i);
      args.SetMaxReceiveMessageSize(64 << 20);
      channels.push_back(grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), args));
      stubs.push_back(pb::Corral::NewStub(channels.back()));
    }
  }
  // Connected before the clock starts, as a worker's long-lived channel is.
  for (auto& channel : channels) {
    channel->WaitForConnected(
        absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  StampedeReport report;
  report.callers.resize(options.callers);
  TimerThread timers;
  absl::Mutex mu;
  int remaining = options.callers;
  const absl::Time start = absl::Now();
  for (int i = 0; i < options.callers; ++i) {
    if (options.spread > absl::ZeroDuration() && i > 0)
      absl::SleepFor(options.spread);
    // Callers of one key land on every target: the fleet-wide case.
    pb::Corral::Stub* stub = stubs[i % stubs.size()].get();
    report.callers[i].target = static_cast<int>(
        (i % stubs.size()) / std::max(1, options.channels_per_target));
    new Caller(stub, options, i % std::max(1, options.keys), &timers,
               &report.callers[i], [&] {
                 absl::MutexLock lock(&mu);
                 --remaining;
               });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* r) { return *r == 0; }, &remaining));
  }
  report.elapsed = absl::Now() - start;
  return report;
}

}  // namespace corral::bench
