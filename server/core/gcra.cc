#include "server/core/gcra.h"

#include <algorithm>
#include <cmath>

namespace corral {

int64_t GcraPeriodMicros(double rate_per_second) {
  return std::max<int64_t>(1, std::llround(1e6 / rate_per_second));
}

GcraDecision Gcra(int64_t tat_us, int64_t now_us, double rate_per_second,
                  uint32_t burst) {
  const int64_t period = GcraPeriodMicros(rate_per_second);
  // How far ahead of now the TAT may run: burst - 1 periods.
  const int64_t tolerance = period * (static_cast<int64_t>(burst) - 1);
  const int64_t tat = std::max(tat_us, now_us);
  GcraDecision d;
  if (tat - now_us > tolerance) {
    d.allowed = false;
    d.tat_us = tat_us;
    d.retry_after_us = tat - now_us - tolerance;
    return d;
  }
  d.allowed = true;
  d.tat_us = tat + period;
  return d;
}

}  // namespace corral
