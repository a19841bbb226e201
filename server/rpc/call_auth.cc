#include "server/rpc/call_auth.h"

#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "server/core/log.h"

namespace corral::rpc {
namespace {

std::optional<absl::string_view> AuthorizationOf(
    const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

CallAuthorizer::CallAuthorizer(const Authorizer& authorizer,
                               prometheus::Registry& registry)
    : authorizer_(authorizer),
      failures_(
          prometheus::BuildCounter()
              .Name("corral_auth_failures_total")
              .Help(
                  "Calls refused by token authentication or authorization, by "
                  "reason (missing_token, malformed_header, unknown_token, "
                  "namespace_denied, right_denied).")
              .Register(registry)) {}

absl::Status CallAuthorizer::Check(const grpc::ServerContextBase& ctx,
                                   absl::string_view method,
                                   absl::string_view ns, Right right) const {
  if (authorizer_.open()) return absl::OkStatus();
  AuthDecision d = authorizer_.Decide(AuthorizationOf(ctx), ns, right);
  if (d.status.ok()) return absl::OkStatus();
  failures_.Add({{"reason", std::string(d.denial)}}).Increment();
  // Anyone can send bad tokens, so those are debug-level noise; a known
  // credential reaching past its grant is worth an operator's eye.
  const LogLevel level =
      d.credential.empty() ? LogLevel::kDebug : LogLevel::kInfo;
  CORRAL_LOG(level, "auth_denied", "method=", method,
             " ns=", absl::CHexEscape(ns), " right=", RightName(right),
             " reason=", d.denial,
             " credential=", d.credential.empty() ? "-" : d.credential,
             " peer=", ctx.peer());
  return d.status;
}

bool CallAuthorizer::Allows(const grpc::ServerContextBase& ctx,
                            absl::string_view ns, Right right) const {
  if (authorizer_.open()) return true;
  return authorizer_.Decide(AuthorizationOf(ctx), ns, right).status.ok();
}

bool CallAuthorizer::Authenticated(const grpc::ServerContextBase& ctx,
                                   absl::string_view method) const {
  if (authorizer_.open()) return true;
  // A namespace no credential can name: a known token is refused only for
  // the namespace or the right, never as unknown.
  AuthDecision d = authorizer_.Decide(AuthorizationOf(ctx), "", Right::kRead);
  if (d.status.ok() || !d.credential.empty()) return true;
  failures_.Add({{"reason", std::string(d.denial)}}).Increment();
  CORRAL_LOG(LogLevel::kDebug, "auth_denied", "method=", method,
             " reason=", d.denial, " peer=", ctx.peer());
  return false;
}

}  // namespace corral::rpc
