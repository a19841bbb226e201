// Names shared by the coordination core's parts (the Coordinator façade,
// the flight table, sessions, lock waiters): a call's id and the callback
// that answers a unary call. Kept here so that no part includes
// coordinator.h (docs/ARCHITECTURE.md, section 2).
#ifndef CORRAL_SERVER_CORE_CALL_H_
#define CORRAL_SERVER_CORE_CALL_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace corral {

// Identifies one GetOrCompute stream or one AcquireLock wait on this
// replica. Both come from one counter, so an id names one call of either
// kind. 0 is never an id.
using CallId = uint64_t;

// Answers a unary call: a value or an error, exactly once.
template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_CALL_H_
