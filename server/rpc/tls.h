// corrald's transport security: server credentials from PEM files, checked
// up front so that a wrong file is a clear startup error rather than a
// failed bind or a handshake that never succeeds.
#ifndef CORRAL_SERVER_RPC_TLS_H_
#define CORRAL_SERVER_RPC_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"

namespace corral::rpc {

// PEM file paths, as the --tls_* flags give them; empty means not given.
struct ServerTlsFiles {
  std::string cert;       // Certificate chain, leaf first.
  std::string key;        // Its private key.
  std::string client_ca;  // CA bundle that client certificates must chain to.
};

// How the listener is secured, for the startup log.
enum class TransportSecurity { kPlaintext, kTls, kMutualTls };

struct ServerTransport {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  TransportSecurity security = TransportSecurity::kPlaintext;
};

// Plaintext when no file is given; TLS with cert and key; mutual TLS
// (client certificates required, verified against client_ca) with all
// three. Reads and checks every file: readable, PEM, the key matches the
// certificate, the certificate is currently valid. Errors are
// INVALID_ARGUMENT naming the flag (--tls_cert, --tls_key, --tls_client_ca).
absl::StatusOr<ServerTransport> MakeServerTransport(
    const ServerTlsFiles& files);

// Whether a listen address (host:port, [v6]:port, unix:PATH) accepts
// connections from this host only: 127.0.0.0/8, ::1, localhost, or a Unix
// socket. Wildcards and other names are not.
bool IsLoopbackAddress(absl::string_view listen_address);

// "plaintext", "tls", "mtls".
absl::string_view TransportSecurityName(TransportSecurity security);

}  // namespace corral::rpc

#endif  // CORRAL_SERVER_RPC_TLS_H_
