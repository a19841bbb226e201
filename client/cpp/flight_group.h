// In-process single flight for GetOrCompute: concurrent calls for one key
// share one call's result. Internal to the library.
#ifndef CORRAL_CLIENT_CPP_FLIGHT_GROUP_H_
#define CORRAL_CLIENT_CPP_FLIGHT_GROUP_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/cpp/types.h"

namespace corral::client::internal {

class FlightGroup {
 public:
  // One shared call. The leader Publish()es once; followers Wait().
  class Flight {
   public:
    // Nullopt when `deadline` passed first.
    std::optional<absl::StatusOr<GetOrComputeResult>> Wait(
        absl::Time deadline) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
      if (!done_) return std::nullopt;
      return result_;
    }

   private:
    friend class FlightGroup;
    absl::Mutex mu_;
    bool done_ ABSL_GUARDED_BY(mu_) = false;
    absl::StatusOr<GetOrComputeResult> result_ ABSL_GUARDED_BY(mu_) =
        absl::UnknownError("not finished");
  };

  // The key's flight, and whether the caller leads it (must Publish).
  std::shared_ptr<Flight> Join(const std::string& key, bool* leader) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Flight>& flight = flights_[key];
    *leader = flight == nullptr;
    if (*leader) flight = std::make_shared<Flight>();
    return flight;
  }

  // Ends the key's flight: callers that arrive from now on start another.
  void Publish(const std::string& key, const std::shared_ptr<Flight>& flight,
               absl::StatusOr<GetOrComputeResult> result) {
    {
      absl::MutexLock lock(&mu_);
      auto it = flights_.find(key);
      if (it != flights_.end() && it->second == flight) flights_.erase(it);
    }
    absl::MutexLock lock(&flight->mu_);
    flight->result_ = std::move(result);
    flight->done_ = true;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace corral::client::internal

#endif  // CORRAL_CLIENT_CPP_FLIGHT_GROUP_H_
