// A minimal HTTP/1.0 GET for tests (metrics endpoints, Prometheus' API).
#ifndef CORRAL_TESTS_SUPPORT_HTTP_GET_H_
#define CORRAL_TESTS_SUPPORT_HTTP_GET_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace corral::testing {

// GETs http://<host:port><path>; answers the body of a 200 response.
absl::StatusOr<std::string> HttpGet(const std::string& host_port,
                                    const std::string& path);

// The value of one sample in Prometheus text format: the line of metric
// `name` whose labels include every `labels` pair (others may be present).
// NOT_FOUND when there is none.
absl::StatusOr<double> MetricValue(
    absl::string_view exposition, absl::string_view name,
    const std::map<std::string, std::string>& labels = {});

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_HTTP_GET_H_
