// GCRA, the generic cell rate algorithm: a rate limit with a burst kept as
// one number per limit, the theoretical arrival time (TAT) of the next
// grant. The embedded store runs this function; the Redis store runs the
// same steps in Lua (redis_scripts.cc, kBudgetCharge), on Redis TIME.
#ifndef CORRAL_SERVER_CORE_GCRA_H_
#define CORRAL_SERVER_CORE_GCRA_H_

#include <cstdint>

namespace corral {

struct GcraDecision {
  bool allowed = false;
  // The TAT to keep: advanced by one period when allowed, unchanged
  // otherwise.
  int64_t tat_us = 0;
  // Refused: how long until a grant fits (exact).
  int64_t retry_after_us = 0;
};

// The period of `rate_per_second` in whole microseconds (at least 1).
int64_t GcraPeriodMicros(double rate_per_second);

// One grant asked for at `now_us` against `tat_us` (0: none kept). Up to
// `burst` grants fit at once; after that one every period. rate > 0,
// burst >= 1.
GcraDecision Gcra(int64_t tat_us, int64_t now_us, double rate_per_second,
                  uint32_t burst);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_GCRA_H_
