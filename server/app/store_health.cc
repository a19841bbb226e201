#include "server/app/store_health.h"

namespace corral::app {

void StoreHealth::Set(bool up) {
  up_ = up;
  if (auto* health = health_.load())
    health->SetServingStatus(kCorralServiceName, up);
}

void StoreHealth::Attach(grpc::HealthCheckServiceInterface* health) {
  health_ = health;
  health->SetServingStatus(kCorralServiceName, up_.load());
}

}  // namespace corral::app
