// Probabilistic early refresh (XFetch: Vattani, Chierichetti, Lowenstein,
// VLDB 2015; docs/ARCHITECTURE.md, section 2, Step 10): a fresh value is
// refreshed before it expires with a probability that rises as its expiry
// nears and with the time its compute took, so that a hot key is refreshed
// by one caller instead of missed by all at once.
#ifndef CORRAL_SERVER_CORE_EARLY_REFRESH_H_
#define CORRAL_SERVER_CORE_EARLY_REFRESH_H_

#include "absl/time/time.h"
#include "server/core/store.h"

namespace corral {

// Whether `value` is due for an early refresh at `now` with the draw `u`,
// uniform in (0, 1]: now - compute_time * beta * ln(u) >= expiry. Never
// with beta <= 0 (disabled) or an unknown compute time. Any thread.
bool EarlyRefreshDue(absl::Time now, double beta, const StoredValue& value,
                     double u);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_EARLY_REFRESH_H_
