#include "client/corralctl/hash_token.h"

#include <openssl/evp.h>

#include <istream>
#include <iterator>
#include <ostream>

#include "absl/strings/escaping.h"
#include "client/corralctl/args.h"

namespace corral::ctl {

std::string TokenSha256Hex(absl::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &size, EVP_sha256(),
                 nullptr) != 1) {
    return "";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), size));
}

int HashToken(std::istream& in, std::ostream& out, std::ostream& err) {
  std::string token((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (!token.empty() && token.back() == '\n') token.pop_back();
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) {
    err << "corralctl: hash-token reads the token from stdin, and it was "
           "empty\n";
    return kExitUsage;
  }
  const std::string hash = TokenSha256Hex(token);
  if (hash.empty()) {
    err << "corralctl: SHA-256 is not available from libcrypto\n";
    return kExitRpcFailed;
  }
  out << hash << "\n";
  return kExitOk;
}

}  // namespace corral::ctl
