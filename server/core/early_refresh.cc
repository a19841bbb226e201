#include "server/core/early_refresh.h"

#include <cmath>

namespace corral {

bool EarlyRefreshDue(absl::Time now, double beta, const StoredValue& value,
                     double u) {
  if (beta <= 0 || value.compute_time <= absl::ZeroDuration()) return false;
  const absl::Duration head_start = value.compute_time * (beta * -std::log(u));
  return now + head_start >= value.expires_at;
}

}  // namespace corral
