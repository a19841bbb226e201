#include "server/rpc/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/core/errors.h"
#include "server/core/validation.h"

namespace corral::rpc {
namespace {

using ProtoCredential = corral::v1::Credential;

constexpr size_t kMaxCredentialName = 64;

absl::Status CredentialError(int index, absl::string_view name,
                             absl::string_view problem) {
  const std::string who =
      name.empty() ? absl::StrCat("credentials[", index, "]")
                   : absl::StrCat("credentials[", index, "] (", name, ")");
  return absl::InvalidArgumentError(
      absl::StrCat("config: ", who, ": ", problem));
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-' || c == '.';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// False unless `hex` is exactly 64 hex digits.
bool ParseDigest(absl::string_view hex, Sha256Digest* out) {
  if (hex.size() != out->size() * 2) return false;
  for (size_t i = 0; i < out->size(); ++i) {
    const int hi = HexDigit(hex[2 * i]);
    const int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::optional<Right> RightOf(ProtoCredential::Right right) {
  switch (right) {
    case ProtoCredential::READ:
      return Right::kRead;
    case ProtoCredential::COMPUTE:
      return Right::kCompute;
    case ProtoCredential::LOCK:
      return Right::kLock;
    case ProtoCredential::ADMIN:
      return Right::kAdmin;
    default:
      return std::nullopt;
  }
}

uint32_t Bit(Right right) { return 1u << static_cast<int>(right); }

AuthDecision Unauthenticated(absl::string_view denial,
                             absl::string_view message) {
  AuthDecision d;
  d.status =
      WithReason(absl::UnauthenticatedError(message), kReasonUnauthenticated);
  d.denial = denial;
  return d;
}

}  // namespace

absl::string_view RightName(Right right) {
  switch (right) {
    case Right::kRead:
      return "read";
    case Right::kCompute:
      return "compute";
    case Right::kLock:
      return "lock";
    case Right::kAdmin:
      return "admin";
  }
  return "unknown";
}

Sha256Digest Sha256(absl::string_view data) {
  Sha256Digest digest;
  unsigned int size = 0;
  // One-shot EVP digest: cannot fail for SHA-256 short of memory exhaustion.
  const int ok = EVP_Digest(data.data(), data.size(), digest.data(), &size,
                            EVP_sha256(), nullptr);
  if (ok != 1 || size != digest.size()) std::abort();
  return digest;
}

std::string Sha256Hex(absl::string_view data) {
  const Sha256Digest digest = Sha256(data);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::StatusOr<Authorizer> Authorizer::Create(
    const google::protobuf::RepeatedPtrField<ProtoCredential>& credentials) {
  Authorizer authorizer;
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < credentials.size(); ++i) {
    const ProtoCredential& in = credentials.Get(i);
    Credential c;
    c.name = in.name();
    if (c.name.empty() || c.name.size() > kMaxCredentialName ||
        !std::all_of(c.name.begin(), c.name.end(), IsNameChar)) {
      return CredentialError(i, "", "name must be 1..64 of [A-Za-z0-9_.-]");
    }
    if (!names.insert(c.name).second) {
      return CredentialError(i, c.name, "the name is used twice");
    }
    if (!ParseDigest(in.token_sha256(), &c.token_sha256)) {
      return CredentialError(
          i, c.name,
          absl::StrCat(
              "token_sha256 must be the SHA-256 of the token as 64 hex digits "
              "(`corralctl hash-token` prints it); it has ",
              in.token_sha256().size(), " characters",
              in.token_sha256().size() == 64 ? ", not all hex digits" : ""));
    }
    for (const Credential& other : authorizer.credentials_) {
      if (other.token_sha256 == c.token_sha256) {
        return CredentialError(
            i, c.name,
            absl::StrCat("has the same token as \"", other.name, "\""));
      }
    }
    if (in.namespaces().empty()) {
      return CredentialError(i, c.name,
                             "lists no namespaces (\"*\" means all)");
    }
    for (const std::string& ns : in.namespaces()) {
      if (ns == "*") {
        c.all_namespaces = true;
        continue;
      }
      if (absl::Status s = ValidateNamespace("namespaces", ns); !s.ok()) {
        return CredentialError(i, c.name, s.message());
      }
      c.namespaces.push_back(ns);
    }
    if (in.rights().empty()) {
      return CredentialError(i, c.name,
                             "grants no rights (READ, COMPUTE, LOCK, ADMIN)");
    }
    for (int right : in.rights()) {
      std::optional<Right> r =
          RightOf(static_cast<ProtoCredential::Right>(right));
      if (!r.has_value()) {
        return CredentialError(
            i, c.name, absl::StrCat("rights: ", right, " is not a right"));
      }
      c.rights |= Bit(*r);
    }
    authorizer.credentials_.push_back(std::move(c));
  }
  return authorizer;
}

const Authorizer::Credential* Authorizer::Match(absl::string_view token) const {
  const Sha256Digest presented = Sha256(token);
  const Credential* match = nullptr;
  for (const Credential& c : credentials_) {
    // No early exit: every hash is compared, in constant time each.
    const bool equal = CRYPTO_memcmp(presented.data(), c.token_sha256.data(),
                                     presented.size()) == 0;
    if (equal) match = &c;
  }
  return match;
}

AuthDecision Authorizer::Decide(std::optional<absl::string_view> authorization,
                                absl::string_view ns, Right right) const {
  if (open()) return AuthDecision{};
  if (!authorization.has_value() || authorization->empty()) {
    return Unauthenticated("missing_token",
                           "this server requires a token: send metadata "
                           "`authorization: Bearer <token>`");
  }
  // RFC 6750: the scheme is case-insensitive; one space, then the token.
  absl::string_view token = *authorization;
  if (!absl::StartsWithIgnoreCase(token, "Bearer ")) {
    return Unauthenticated(
        "malformed_header",
        "the authorization metadata must read `Bearer <token>`");
  }
  token.remove_prefix(7);
  token = absl::StripAsciiWhitespace(token);
  const Credential* who = token.empty() ? nullptr : Match(token);
  if (who == nullptr) {
    return Unauthenticated("unknown_token",
                           "the token is not valid on this server");
  }
  AuthDecision d;
  d.credential = who->name;
  const bool ns_ok = who->all_namespaces ||
                     std::find(who->namespaces.begin(), who->namespaces.end(),
                               ns) != who->namespaces.end();
  if (!ns_ok) {
    d.denial = "namespace_denied";
    d.status = WithReason(absl::PermissionDeniedError(absl::StrCat(
                              "credential \"", who->name,
                              "\" may not use namespace \"", ns, "\"")),
                          kReasonPermissionDenied);
    return d;
  }
  if ((who->rights & Bit(right)) == 0) {
    d.denial = "right_denied";
    d.status =
        WithReason(absl::PermissionDeniedError(absl::StrCat(
                       "credential \"", who->name, "\" lacks the ",
                       RightName(right), " right in namespace \"", ns, "\"")),
                   kReasonPermissionDenied);
    return d;
  }
  return d;
}

}  // namespace corral::rpc
