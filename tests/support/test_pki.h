// Certificates for TLS tests, made at test time with the openssl command
// line tool (EC P-256, valid for two days) in a directory of the test's:
//
//   ASSERT_OK_AND_ASSIGN... auto pki = TestPki::Create(TempDir() + "pki");
//   corrald --tls_cert=pki->server_cert --tls_key=pki->server_key ...
#ifndef CORRAL_TESTS_SUPPORT_TEST_PKI_H_
#define CORRAL_TESTS_SUPPORT_TEST_PKI_H_

#include <string>

#include "absl/status/statusor.h"

namespace corral::testing {

struct TestPki {
  // A CA, and a server certificate it signed for 127.0.0.1 and localhost
  // (subjectAltName), usable for TLS server auth only.
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  // A client certificate the same CA signed (TLS client auth).
  std::string client_cert;
  std::string client_key;
  // Another CA, and a client certificate it signed: trusted by no server.
  std::string other_ca_cert;
  std::string other_client_cert;
  std::string other_client_key;

  // Creates `dir` (if missing) and everything above in it. Errors carry
  // openssl's output.
  static absl::StatusOr<TestPki> Create(const std::string& dir);
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_TEST_PKI_H_
