// corral's C++ client in one include, for code built against an installed
// corral (find_package(corral) and corral::client) or inside this tree:
//
//   #include <corral/client.h>
//
//   corral::client::Client client("127.0.0.1:50051");
//   auto value = client.GetOrCompute("plant_id", key, compute);
//
// Client, GetOrCompute and its options and results (corral_client.h), the
// per-key LockGuard (lock_guard.h), credentials, error helpers such as
// ReasonOf and RetryAfterOf (errors.h) and the retry policy (retry.h).
#ifndef CORRAL_CLIENT_H_
#define CORRAL_CLIENT_H_

#include "client/cpp/corral_client.h"
#include "client/cpp/credentials.h"
#include "client/cpp/errors.h"
#include "client/cpp/lock_guard.h"
#include "client/cpp/retry.h"
#include "client/cpp/types.h"

#endif  // CORRAL_CLIENT_H_
