// Who may call what: the bearer tokens of the config's `credentials`, each
// granting rights in some namespaces. No gRPC here (call_auth.h applies it to
// calls), so the rules are tested on their own.
//
// Tokens are never stored or logged: a credential holds the SHA-256 of its
// token, a presented token is hashed and compared with every credential's
// hash in constant time.
#ifndef CORRAL_SERVER_RPC_AUTH_H_
#define CORRAL_SERVER_RPC_AUTH_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "corral/v1/config.pb.h"

namespace corral::rpc {

// What a call needs (Credential.Right in config.proto).
enum class Right { kRead, kCompute, kLock, kAdmin };

// "read", "compute", "lock", "admin".
absl::string_view RightName(Right right);

using Sha256Digest = std::array<uint8_t, 32>;
Sha256Digest Sha256(absl::string_view data);
// 64 lowercase hex digits, as `token_sha256` in the config.
std::string Sha256Hex(absl::string_view data);

// The verdict on one call.
struct AuthDecision {
  // OK, or the error to finish the call with: UNAUTHENTICATED (corral-reason
  // unauthenticated) or PERMISSION_DENIED (permission-denied).
  absl::Status status;
  // Why it was refused, a metrics label: "" when allowed, else
  // "missing_token", "malformed_header", "unknown_token",
  // "namespace_denied" or "right_denied".
  absl::string_view denial;
  // The credential the token matched ("" when none did, or when open).
  std::string credential;
};

// Immutable after construction; safe to share across threads.
class Authorizer {
 public:
  // Open: no credentials, every call is allowed.
  Authorizer() = default;

  // Validates the credentials: names (1..64 of [A-Za-z0-9_.-], unique),
  // token_sha256 (64 hex digits, unique), namespaces (valid names or "*", at
  // least one), rights (at least one). Errors are INVALID_ARGUMENT
  // "config: credentials[i] (name): ..." and never quote a hash.
  static absl::StatusOr<Authorizer> Create(
      const google::protobuf::RepeatedPtrField<corral::v1::Credential>&
          credentials);

  // Whether any call is allowed without a token (no credentials).
  bool open() const { return credentials_.empty(); }
  size_t size() const { return credentials_.size(); }

  // Decides whether a caller may use `right` in namespace `ns`.
  // `authorization` is the call's `authorization` header ("Bearer TOKEN";
  // nullopt when absent). Always allowed when open().
  AuthDecision Decide(std::optional<absl::string_view> authorization,
                      absl::string_view ns, Right right) const;

 private:
  struct Credential {
    std::string name;
    Sha256Digest token_sha256;
    bool all_namespaces = false;
    std::vector<std::string> namespaces;
    uint32_t rights = 0;  // Bit (1 << Right).
  };

  // The credential whose hash matches `token`, or nullptr. Compares against
  // every credential, so the time taken does not depend on which matched.
  const Credential* Match(absl::string_view token) const;

  std::vector<Credential> credentials_;
};

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_AUTH_H_
