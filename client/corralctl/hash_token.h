// `corralctl hash-token`: what an operator puts in a credential's
// token_sha256 (see proto/corral/v1/config.proto).
#ifndef CORRAL_CLIENT_CORRALCTL_HASH_TOKEN_H_
#define CORRAL_CLIENT_CORRALCTL_HASH_TOKEN_H_

#include <iosfwd>
#include <string>

#include "absl/strings/string_view.h"

namespace corral::ctl {

// SHA-256 of `token`, 64 lowercase hex digits.
std::string TokenSha256Hex(absl::string_view token);

// Reads the token from `in` (one trailing newline, or CRLF, is not part of
// it) and prints its hash on `out`. Returns the exit code: kExitUsage, with
// a message on `err`, when there is no token.
int HashToken(std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace corral::ctl

#endif  // CORRAL_CLIENT_CORRALCTL_HASH_TOKEN_H_
