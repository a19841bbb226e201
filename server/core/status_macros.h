// Small helpers named like abseil's internal ones (absl 20220623 does not ship
// status_macros.h), so that an abseil upgrade is a rename.
#ifndef CORRAL_SERVER_CORE_STATUS_MACROS_H_
#define CORRAL_SERVER_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CORRAL_STATUS_CONCAT_INNER_(a, b) a##b
#define CORRAL_STATUS_CONCAT_(a, b) CORRAL_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    const ::absl::Status _corral_st = (expr); \
    if (!_corral_st.ok()) return _corral_st;  \
  } while (0)

#endif  // CORRAL_SERVER_CORE_STATUS_MACROS_H_
