#include "client/cpp/errors.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace corral::client {
namespace {

constexpr absl::string_view kReasonPayload = "corral.dev/reason";
constexpr absl::string_view kRetryAfterPayload = "corral.dev/retry-after-ms";

absl::string_view View(const grpc::string_ref& ref) {
  return absl::string_view(ref.data(), ref.size());
}

std::optional<absl::string_view> Trailer(const Trailers& trailers,
                                         absl::string_view key) {
  auto it = trailers.find(grpc::string_ref(key.data(), key.size()));
  if (it == trailers.end()) return std::nullopt;
  return View(it->second);
}

}  // namespace

absl::Status StatusFromGrpc(const grpc::Status& status,
                            const Trailers& trailers) {
  if (status.ok()) return absl::OkStatus();
  absl::Status result(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
  if (auto reason = Trailer(trailers, kReasonTrailer);
      reason && !reason->empty()) {
    result = WithReason(std::move(result), *reason);
  }
  int64_t ms = 0;
  if (auto retry = Trailer(trailers, kRetryAfterTrailer);
      retry && absl::SimpleAtoi(*retry, &ms) && ms >= 0) {
    result = WithRetryAfter(std::move(result), absl::Milliseconds(ms));
  }
  return result;
}

std::string ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  return payload ? std::string(*payload) : std::string();
}

std::optional<absl::Duration> RetryAfterOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t ms = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &ms)) {
    return std::nullopt;
  }
  return absl::Milliseconds(ms);
}

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  if (status.ok()) return status;  // OK statuses cannot carry payloads.
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after) {
  if (status.ok()) return status;
  status.SetPayload(kRetryAfterPayload,
                    absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(
                        std::max(retry_after, absl::ZeroDuration())))));
  return status;
}

std::string DescribeStatus(const absl::Status& status) {
  std::string out = absl::StrCat(absl::StatusCodeToString(status.code()));
  if (!status.message().empty()) absl::StrAppend(&out, ": ", status.message());
  std::string reason = ReasonOf(status);
  std::optional<absl::Duration> retry_after = RetryAfterOf(status);
  if (!reason.empty() || retry_after) {
    absl::StrAppend(&out, " (");
    if (!reason.empty()) absl::StrAppend(&out, "corral-reason: ", reason);
    if (retry_after) {
      absl::StrAppend(&out, reason.empty() ? "" : ", ", "retry after ",
                      absl::FormatDuration(*retry_after));
    }
    absl::StrAppend(&out, ")");
  }
  return out;
}

}  // namespace corral::client
