// corral's Prometheus metrics (names and labels as in docs/OPERATIONS.md,
// "Metrics and recording rules"). One object per process, built on a
// registry that is passed in. Thread-safe.
#ifndef CORRAL_SERVER_METRICS_METRICS_H_
#define CORRAL_SERVER_METRICS_METRICS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/core/observer.h"
#include "server/core/read_cache.h"

namespace corral {

class Metrics final : public CoordinatorObserver {
 public:
  explicit Metrics(prometheus::Registry& registry);

  // CoordinatorObserver.
  void OnLookup(absl::string_view ns, LookupStage stage, bool hit) override;
  void OnWaitEnded(absl::string_view ns, absl::Duration waited) override;
  void OnLockAcquisition(absl::string_view ns,
                         absl::string_view outcome) override;
  void OnCompute(absl::string_view ns, absl::string_view mode,
                 absl::string_view outcome) override;
  void OnDuplicateCompute(absl::string_view ns) override;
  void OnWaitersChanged(absl::string_view ns, int delta) override;
  void OnBreakerState(absl::string_view ns, BreakerState state,
                      absl::Time since) override;
  void OnBreakerTransition(absl::string_view ns, BreakerState from,
                           BreakerState to) override;
  void OnRefreshStarted(absl::string_view ns,
                        absl::string_view trigger) override;
  void OnStaleServed(absl::string_view ns) override;
  void OnNegativeHit(absl::string_view ns) override;
  void OnReadCacheHit(absl::string_view ns) override;
  void OnBudgetCharge(absl::string_view ns, uint32_t in_flight,
                      absl::string_view over_limit, bool enforced) override;
  void OnBudgetReturned(absl::string_view ns) override;
  void OnBudgetRejected(absl::string_view ns) override;
  void OnNamespaceFirstUse(absl::string_view ns) override;
  void OnNamespaceEvicted(absl::string_view ns) override;

  // One finished RPC: its method, gRPC status code name and latency.
  void OnRpc(absl::string_view method, absl::string_view code,
             absl::Duration latency);
  // Store health and latency, from the MeasuredStore.
  void SetStoreUp(bool up);
  void OnStoreOp(absl::string_view op, absl::Duration latency);
  // One WAIT for replica acknowledgements of grants (Redis store with
  // min_replica_acks > 0): how long it took and whether enough replicas
  // acknowledged in time.
  void OnReplicaAck(absl::Duration waited, bool acked);

 private:
  prometheus::Family<prometheus::Counter>& lookups_;
  prometheus::Family<prometheus::Histogram>& lock_wait_;
  prometheus::Family<prometheus::Counter>& lock_acquisitions_;
  prometheus::Family<prometheus::Counter>& computes_;
  prometheus::Family<prometheus::Counter>& duplicate_computes_;
  prometheus::Family<prometheus::Counter>& refreshes_started_;
  prometheus::Family<prometheus::Counter>& stale_served_;
  prometheus::Family<prometheus::Counter>& negative_hits_;
  prometheus::Family<prometheus::Counter>& read_cache_hits_;
  prometheus::Family<prometheus::Gauge>& budget_in_flight_;
  prometheus::Family<prometheus::Counter>& budget_waits_;
  prometheus::Family<prometheus::Counter>& budget_shadow_over_;
  prometheus::Family<prometheus::Counter>& budget_rejections_;
  prometheus::Family<prometheus::Gauge>& waiters_;
  prometheus::Family<prometheus::Gauge>& breaker_state_;
  prometheus::Family<prometheus::Gauge>& breaker_since_;
  prometheus::Family<prometheus::Counter>& breaker_transitions_;
  prometheus::Family<prometheus::Counter>& breaker_open_seconds_;
  // When each namespace's time-in-open was last accounted for.
  absl::Mutex breaker_mu_;
  absl::flat_hash_map<std::string, absl::Time> open_accounted_
      ABSL_GUARDED_BY(breaker_mu_);
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_latency_;
  prometheus::Gauge& store_up_;
  prometheus::Family<prometheus::Histogram>& store_op_;
  prometheus::Histogram& replica_ack_wait_;
  prometheus::Counter& replica_ack_failures_;
};

// corral_read_cache_entries and corral_read_cache_bytes, read from the
// cache when Prometheus scrapes (register it with the exposer).
class ReadCacheGauges final : public prometheus::Collectable {
 public:
  // `cache` may be null (no read cache: nothing is exported); it must
  // outlive this object.
  explicit ReadCacheGauges(const ReadCache* cache) : cache_(cache) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const ReadCache* const cache_;
};

}  // namespace corral

#endif  // CORRAL_SERVER_METRICS_METRICS_H_
