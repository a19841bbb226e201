// The health service's "corral.v1.Corral" entry, which follows the store.
// The overall ("") entry says the process serves; it does, degraded or not.
#ifndef CORRAL_SERVER_APP_STORE_HEALTH_H_
#define CORRAL_SERVER_APP_STORE_HEALTH_H_

#include <atomic>

#include "grpcpp/health_check_service_interface.h"

namespace corral::app {

// The health-service name that tracks the store.
inline constexpr char kCorralServiceName[] = "corral.v1.Corral";

// Holds the store's reachability from before the gRPC server exists (the
// store may report while it starts) and publishes it once one is attached.
// Thread-safe.
class StoreHealth {
 public:
  explicit StoreHealth(bool up) : up_(up) {}

  // The store became reachable (or not). Any thread; does not block.
  void Set(bool up);
  // Publishes the current state on `health`, and every later Set(). Call
  // once; `health` must outlive this object or its last Set().
  void Attach(grpc::HealthCheckServiceInterface* health);

  bool up() const { return up_.load(); }

 private:
  std::atomic<grpc::HealthCheckServiceInterface*> health_{nullptr};
  std::atomic<bool> up_;
};

}  // namespace corral::app

#endif  // CORRAL_SERVER_APP_STORE_HEALTH_H_
