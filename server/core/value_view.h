// A stored value as a caller sees it (age, TTL left, staleness at `now`).
#ifndef CORRAL_SERVER_CORE_VALUE_VIEW_H_
#define CORRAL_SERVER_CORE_VALUE_VIEW_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "server/core/store.h"
#include "server/core/types.h"

namespace corral {

// `bytes`: the value's bytes when already shared with other callers (null:
// copied from `value`). Any thread.
ValueView ViewOf(const StoredValue& value, Source source, absl::Time now,
                 std::shared_ptr<const std::string> bytes = nullptr);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_VALUE_VIEW_H_
