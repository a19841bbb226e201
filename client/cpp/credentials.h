// Transport security and caller identity for the C++ client:
//
//   corral::client::ClientOptions options;
//   auto tls = corral::client::TlsCredentialsFromFiles(
//       {"ca.pem", "client.pem", "client.key"});  // ca, cert, key
//   if (!tls.ok()) return tls.status();
//   options.credentials = *tls;
//   options.token = token;  // Bearer token, e.g. from $CORRAL_TOKEN.
//   corral::client::Client client("corral.internal:50051", options);
#ifndef CORRAL_CLIENT_CPP_CREDENTIALS_H_
#define CORRAL_CLIENT_CPP_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace corral::client {

// PEM file paths; empty means not given.
struct TlsFiles {
  // Roots that the server's certificate must chain to. Empty: the system's
  // roots (or $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
  std::string ca;
  // This client's certificate chain and key, for servers that require
  // mutual TLS. Both or neither.
  std::string cert;
  std::string key;
};

// TLS channel credentials from PEM files. Errors name the file that cannot
// be read, or say that cert and key must come together.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
TlsCredentialsFromFiles(const TlsFiles& files);

// An interceptor factory that adds `authorization: Bearer <token>` to every
// call of a channel. Client does this itself when ClientOptions::token is
// set; use it for channels you build yourself. It works on plaintext
// channels too, where gRPC's call credentials would refuse to send.
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
BearerTokenInterceptor(std::string token);

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_CREDENTIALS_H_
