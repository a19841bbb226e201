// The Prometheus /metrics endpoint: one owner for the exposer, which stops
// serving promptly (see Stop()).
#ifndef CORRAL_SERVER_APP_METRICS_ENDPOINT_H_
#define CORRAL_SERVER_APP_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace corral::app {

class MetricsEndpoint {
 public:
  // Serves `registry` on `address` (host:port; port 0 picks a free one), or
  // nothing when `address` is "off"; it keeps `registry` alive. UNAVAILABLE
  // when it cannot bind; the message is corrald's exit-1 line.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address,
      std::shared_ptr<prometheus::Collectable> registry);

  // Stop()s.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // host:port as bound (the port picked when 0 was asked for), or "off".
  const std::string& bound() const { return bound_; }

  // Scrapes also collect `collectable` until Remove() or Stop(), while the
  // caller keeps it alive (it is held weakly). No-ops after Stop().
  void Add(const std::shared_ptr<prometheus::Collectable>& collectable);
  void Remove(const std::shared_ptr<prometheus::Collectable>& collectable);

  // Stops serving: once it returns, no scrape runs or starts. Idempotent.
  // civetweb's listener thread sees the stop only when its poll() returns,
  // which an idle endpoint does once every 2 s; Stop() connects to the
  // listener meanwhile so that it returns in milliseconds.
  void Stop();

 private:
  MetricsEndpoint(std::shared_ptr<prometheus::Collectable> registry,
                  std::unique_ptr<prometheus::Exposer> exposer,
                  std::string bound);

  const std::shared_ptr<prometheus::Collectable> registry_;

  std::unique_ptr<prometheus::Exposer> exposer_;  // Null when off or stopped.
  std::string bound_;
};

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_METRICS_ENDPOINT_H_
