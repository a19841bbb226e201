#include "server/core/value_view.h"

#include <algorithm>
#include <utility>

namespace corral {

ValueView ViewOf(const StoredValue& value, Source source, absl::Time now,
                 std::shared_ptr<const std::string> bytes) {
  ValueView view;
  view.value = bytes ? std::move(bytes)
                     : std::make_shared<const std::string>(value.value);
  view.source = source;
  view.age = std::max(absl::ZeroDuration(), now - value.stored_at);
  view.ttl_remaining = std::max(absl::ZeroDuration(), value.expires_at - now);
  view.stale = value.expires_at <= now;
  return view;
}

}  // namespace corral
