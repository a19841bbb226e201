#include "server/metrics/metrics.h"

#include <algorithm>
#include <string>
#include <utility>

namespace corral {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

absl::string_view StageLabel(LookupStage stage) {
  switch (stage) {
    case LookupStage::kInitial:
      return "initial";
    case LookupStage::kAfterLock:
      return "after_lock";
    case LookupStage::kAfterWait:
      return "after_wait";
    case LookupStage::kAfterTimeout:
      return "after_timeout";
    case LookupStage::kBeforeFallback:
      return "before_fallback";
  }
  return "unknown";
}

// Waits from 1 ms to 30 s: lock waits track the upstream's compute time.
Histogram::BucketBoundaries WaitBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          1,     2.5,    5,     7.5,  10,    15,   20,  30};
}

// RPC and store latencies: 50 us to 5 s.
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
}

std::string S(absl::string_view v) { return std::string(v); }

// The label values the core reports (observer.h): what a namespace's series
// can be, so that an evicted namespace's series can all be found again.
constexpr LookupStage kStages[] = {
    LookupStage::kInitial, LookupStage::kAfterLock, LookupStage::kAfterWait,
    LookupStage::kAfterTimeout, LookupStage::kBeforeFallback};
constexpr absl::string_view kLockOutcomes[] = {"acquired", "contended",
                                               "timeout", "error"};
constexpr absl::string_view kComputeModes[] = {"locked", "unlocked_timeout",
                                               "unlocked_degraded", "refresh"};
constexpr absl::string_view kComputeOutcomes[] = {
    "filled", "not_stored", "abandoned", "failed", "revoked"};
constexpr absl::string_view kRefreshTriggers[] = {"stale", "early"};
constexpr BreakerState kBreakerStates[] = {
    BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen};
// The moves breaker.h makes: closed -> open -> half_open -> closed or open.
constexpr std::pair<BreakerState, BreakerState> kBreakerMoves[] = {
    {BreakerState::kClosed, BreakerState::kOpen},
    {BreakerState::kOpen, BreakerState::kHalfOpen},
    {BreakerState::kHalfOpen, BreakerState::kClosed},
    {BreakerState::kHalfOpen, BreakerState::kOpen}};

template <typename T, typename... Args>
void RemoveSeries(prometheus::Family<T>& family,
                  const prometheus::Labels& labels, Args&&... args) {
  if (family.Has(labels))
    family.Remove(&family.Add(labels, std::forward<Args>(args)...));
}

}  // namespace

Metrics::Metrics(prometheus::Registry& registry)
    : lookups_(BuildCounter()
                   .Name("corral_lookups_total")
                   .Help("Cache reads made for GetOrCompute, by stage and "
                         "result (hit/miss).")
                   .Register(registry)),
      lock_wait_(BuildHistogram()
                     .Name("corral_lock_wait_seconds")
                     .Help("How long a caller waited, from its Lookup or "
                           "AcquireLock to its "
                           "lease, value, lock or timeout.")
                     .Register(registry)),
      lock_acquisitions_(
          BuildCounter()
              .Name("corral_lock_acquisitions_total")
              .Help("Lock acquisitions by outcome (acquired, contended, "
                    "timeout, error).")
              .Register(registry)),
      computes_(
          BuildCounter()
              .Name("corral_computes_total")
              .Help("Computes handed to workers, by lease mode and outcome.")
              .Register(registry)),
      duplicate_computes_(
          BuildCounter()
              .Name("corral_duplicate_computes_total")
              .Help("Computes started without the fleet-wide lock.")
              .Register(registry)),
      refreshes_started_(
          BuildCounter()
              .Name("corral_refreshes_started_total")
              .Help("REFRESH leases handed out, by trigger: stale (past "
                    "the TTL) or early (probabilistic early refresh). "
                    "Their ends: corral_computes_total{mode=\"refresh\"}.")
              .Register(registry)),
      stale_served_(
          BuildCounter()
              .Name("corral_stale_served_total")
              .Help("Values served past their TTL (stale-while-revalidate, "
                    "breaker open).")
              .Register(registry)),
      negative_hits_(
          BuildCounter()
              .Name("corral_negative_cache_hits_total")
              .Help("Callers answered with a remembered upstream failure "
                    "instead of a new compute.")
              .Register(registry)),
      read_cache_hits_(
          BuildCounter()
              .Name("corral_read_cache_hits_total")
              .Help("Hits (Get and GetOrCompute) answered from this "
                    "replica's read cache, without a store round trip.")
              .Register(registry)),
      budget_in_flight_(
          BuildGauge()
              .Name("corral_budget_in_flight")
              .Help("Compute-budget slots (leases and lock grants) held in "
                    "the namespace, fleet-wide, as this replica last saw "
                    "them (set at each charge, lowered at each return).")
              .Register(registry)),
      budget_waits_(
          BuildCounter()
              .Name("corral_budget_waits_total")
              .Help("Grants the compute budget held back (enforced), by "
                    "limit (in_flight, rate): the caller waited for budget "
                    "or was served a stale value.")
              .Register(registry)),
      budget_shadow_over_(
          BuildCounter()
              .Name("corral_budget_shadow_over_total")
              .Help("Grants a shadow-mode (enforce: false) budget let "
                    "through that an enforced one would have held back, "
                    "by limit.")
              .Register(registry)),
      budget_rejections_(
          BuildCounter()
              .Name("corral_budget_rejections_total")
              .Help("Callers answered RESOURCE_EXHAUSTED compute-budget "
                    "after waiting for budget up to their wait_timeout.")
              .Register(registry)),
      waiters_(
          BuildGauge()
              .Name("corral_waiters")
              .Help("Callers waiting on this replica for a lock or a value.")
              .Register(registry)),
      breaker_state_(BuildGauge()
                         .Name("corral_breaker_state")
                         .Help("1 for the breaker's current state (closed, "
                               "open, half_open), "
                               "0 for the others, as this replica sees it.")
                         .Register(registry)),
      breaker_since_(
          BuildGauge()
              .Name("corral_breaker_state_since_seconds")
              .Help(
                  "Unix time the breaker entered its current state: with "
                  "corral_breaker_state it says \"open for more than 5 min\".")
              .Register(registry)),
      breaker_transitions_(
          BuildCounter()
              .Name("corral_breaker_transitions_total")
              .Help("Breaker transitions this replica made (fleet-wide: sum).")
              .Register(registry)),
      breaker_open_seconds_(
          BuildCounter()
              .Name("corral_breaker_open_seconds_total")
              .Help("Seconds this replica saw the breaker open.")
              .Register(registry)),
      rpcs_(BuildCounter()
                .Name("corral_rpc_requests_total")
                .Help("Finished RPCs by method and gRPC status code.")
                .Register(registry)),
      rpc_latency_(BuildHistogram()
                       .Name("corral_rpc_duration_seconds")
                       .Help("RPC latency by method, from start to finish.")
                       .Register(registry)),
      store_up_(BuildGauge()
                    .Name("corral_store_up")
                    .Help("1 while the store (Redis or embedded) is reachable.")
                    .Register(registry)
                    .Add({})),
      store_op_(BuildHistogram()
                    .Name("corral_store_op_seconds")
                    .Help("Store operation latency by operation.")
                    .Register(registry)),
      replica_ack_wait_(
          BuildHistogram()
              .Name("corral_store_replica_ack_seconds")
              .Help("Seconds one WAIT for replica acknowledgements of grants "
                    "took (one WAIT covers every grant sent before it).")
              .Register(registry)
              .Add({}, LatencyBuckets())),
      replica_ack_failures_(
          BuildCounter()
              .Name("corral_store_replica_ack_failures_total")
              .Help("WAITs that ended with fewer replica acknowledgements "
                    "than --redis_min_replica_acks (their grants were "
                    "undone and answered store-unavailable).")
              .Register(registry)
              .Add({})) {
  store_up_.Set(1);
}

void Metrics::OnLookup(absl::string_view ns, LookupStage stage, bool hit) {
  lookups_
      .Add({{"namespace", S(ns)},
            {"stage", S(StageLabel(stage))},
            {"result", hit ? "hit" : "miss"}})
      .Increment();
}

void Metrics::OnWaitEnded(absl::string_view ns, absl::Duration waited) {
  lock_wait_.Add({{"namespace", S(ns)}}, WaitBuckets())
      .Observe(absl::ToDoubleSeconds(waited));
}

void Metrics::OnLockAcquisition(absl::string_view ns,
                                absl::string_view outcome) {
  lock_acquisitions_.Add({{"namespace", S(ns)}, {"outcome", S(outcome)}})
      .Increment();
}

void Metrics::OnCompute(absl::string_view ns, absl::string_view mode,
                        absl::string_view outcome) {
  computes_
      .Add({{"namespace", S(ns)}, {"mode", S(mode)}, {"outcome", S(outcome)}})
      .Increment();
}

void Metrics::OnDuplicateCompute(absl::string_view ns) {
  duplicate_computes_.Add({{"namespace", S(ns)}}).Increment();
}

void Metrics::OnRefreshStarted(absl::string_view ns,
                               absl::string_view trigger) {
  refreshes_started_.Add({{"namespace", S(ns)}, {"trigger", S(trigger)}})
      .Increment();
}

void Metrics::OnBudgetCharge(absl::string_view ns, uint32_t in_flight,
                             absl::string_view over_limit, bool enforced) {
  budget_in_flight_.Add({{"namespace", S(ns)}}).Set(in_flight);
  if (over_limit.empty()) return;
  (enforced ? budget_waits_ : budget_shadow_over_)
      .Add({{"namespace", S(ns)}, {"limit", S(over_limit)}})
      .Increment();
}

void Metrics::OnBudgetReturned(absl::string_view ns) {
  prometheus::Gauge& g = budget_in_flight_.Add({{"namespace", S(ns)}});
  if (g.Value() >= 1) g.Decrement();
}

void Metrics::OnBudgetRejected(absl::string_view ns) {
  budget_rejections_.Add({{"namespace", S(ns)}}).Increment();
}

void Metrics::OnReadCacheHit(absl::string_view ns) {
  read_cache_hits_.Add({{"namespace", S(ns)}}).Increment();
}

std::vector<prometheus::MetricFamily> ReadCacheGauges::Collect() const {
  if (cache_ == nullptr) return {};
  auto gauge = [](std::string name, std::string help, double value) {
    prometheus::MetricFamily family;
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = prometheus::MetricType::Gauge;
    family.metric.emplace_back().gauge.value = value;
    return family;
  };
  return {
      gauge("corral_read_cache_entries", "Values in this replica's read cache.",
            static_cast<double>(cache_->entries())),
      gauge(
          "corral_read_cache_bytes",
          "Bytes this replica's read cache holds (values, keys, bookkeeping); "
          "at most --read_cache_mb.",
          static_cast<double>(cache_->bytes()))};
}

void Metrics::OnStaleServed(absl::string_view ns) {
  stale_served_.Add({{"namespace", S(ns)}}).Increment();
}

void Metrics::OnNegativeHit(absl::string_view ns) {
  negative_hits_.Add({{"namespace", S(ns)}}).Increment();
}

void Metrics::OnWaitersChanged(absl::string_view ns, int delta) {
  waiters_.Add({{"namespace", S(ns)}}).Increment(delta);
}

void Metrics::OnBreakerState(absl::string_view ns, BreakerState state,
                             absl::Time since) {
  const std::string n(ns);
  for (BreakerState s :
       {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
    breaker_state_.Add({{"namespace", n}, {"state", S(BreakerStateName(s))}})
        .Set(s == state ? 1 : 0);
  }
  breaker_since_.Add({{"namespace", n}})
      .Set(absl::ToDoubleSeconds(since - absl::UnixEpoch()));
  // Time in OPEN accrues while open; measured from when it opened or from
  // the last report, whichever is later.
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&breaker_mu_);
  auto [it, inserted] = open_accounted_.try_emplace(n, now);
  if (state == BreakerState::kOpen) {
    const absl::Time from = std::max(it->second, since);
    if (now > from) {
      breaker_open_seconds_.Add({{"namespace", n}})
          .Increment(absl::ToDoubleSeconds(now - from));
    }
  } else {
    breaker_open_seconds_.Add(
        {{"namespace", n}});  // Exported as 0 from the start.
  }
  it->second = now;
}

void Metrics::OnBreakerTransition(absl::string_view ns, BreakerState from,
                                  BreakerState to) {
  breaker_transitions_
      .Add({{"namespace", S(ns)},
            {"from", S(BreakerStateName(from))},
            {"to", S(BreakerStateName(to))}})
      .Increment();
}

void Metrics::OnNamespaceFirstUse(absl::string_view ns) {
  // Counters whose label sets are known are exported at 0 from the start.
  const std::string n(ns);
  duplicate_computes_.Add({{"namespace", n}});
  for (const auto& [from, to] : kBreakerMoves) {
    breaker_transitions_.Add({{"namespace", n},
                              {"from", S(BreakerStateName(from))},
                              {"to", S(BreakerStateName(to))}});
  }
}

void Metrics::OnNamespaceEvicted(absl::string_view ns) {
  const std::string n(ns);
  for (LookupStage stage : kStages) {
    for (const char* result : {"hit", "miss"}) {
      RemoveSeries(lookups_, {{"namespace", n},
                              {"stage", S(StageLabel(stage))},
                              {"result", result}});
    }
  }
  RemoveSeries(lock_wait_, {{"namespace", n}}, WaitBuckets());
  for (absl::string_view outcome : kLockOutcomes) {
    RemoveSeries(lock_acquisitions_,
                 {{"namespace", n}, {"outcome", S(outcome)}});
  }
  for (absl::string_view mode : kComputeModes) {
    for (absl::string_view outcome : kComputeOutcomes) {
      RemoveSeries(
          computes_,
          {{"namespace", n}, {"mode", S(mode)}, {"outcome", S(outcome)}});
    }
  }
  for (absl::string_view trigger : kRefreshTriggers) {
    RemoveSeries(refreshes_started_,
                 {{"namespace", n}, {"trigger", S(trigger)}});
  }
  for (auto* family : {&duplicate_computes_, &stale_served_, &negative_hits_,
                       &read_cache_hits_, &breaker_open_seconds_}) {
    RemoveSeries(*family, {{"namespace", n}});
  }
  RemoveSeries(waiters_, {{"namespace", n}});
  RemoveSeries(budget_in_flight_, {{"namespace", n}});
  RemoveSeries(budget_rejections_, {{"namespace", n}});
  for (const char* limit : {"in_flight", "rate"}) {
    RemoveSeries(budget_waits_, {{"namespace", n}, {"limit", limit}});
    RemoveSeries(budget_shadow_over_, {{"namespace", n}, {"limit", limit}});
  }
  RemoveSeries(breaker_since_, {{"namespace", n}});
  for (BreakerState state : kBreakerStates) {
    RemoveSeries(breaker_state_,
                 {{"namespace", n}, {"state", S(BreakerStateName(state))}});
    for (BreakerState to : kBreakerStates) {
      RemoveSeries(breaker_transitions_, {{"namespace", n},
                                          {"from", S(BreakerStateName(state))},
                                          {"to", S(BreakerStateName(to))}});
    }
  }
  absl::MutexLock lock(&breaker_mu_);
  open_accounted_.erase(n);
}

void Metrics::OnRpc(absl::string_view method, absl::string_view code,
                    absl::Duration latency) {
  rpcs_.Add({{"method", S(method)}, {"code", S(code)}}).Increment();
  rpc_latency_.Add({{"method", S(method)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::SetStoreUp(bool up) { store_up_.Set(up ? 1 : 0); }

void Metrics::OnReplicaAck(absl::Duration waited, bool acked) {
  replica_ack_wait_.Observe(absl::ToDoubleSeconds(waited));
  if (!acked) replica_ack_failures_.Increment();
}

void Metrics::OnStoreOp(absl::string_view op, absl::Duration latency) {
  store_op_.Add({{"op", S(op)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

}  // namespace corral
