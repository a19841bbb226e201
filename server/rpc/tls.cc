#include "server/rpc/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/file.h"

namespace corral::rpc {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::Status FlagError(absl::string_view flag, absl::string_view path,
                       absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", path, ": ", problem));
}

absl::StatusOr<std::string> ReadPem(absl::string_view flag,
                                    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadWholeFile(path);
  if (!pem.ok()) return FlagError(flag, path, "cannot be read");
  if (!absl::StrContains(*pem, "-----BEGIN ")) {
    return FlagError(flag, path, "is not a PEM file");
  }
  return pem;
}

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate in `pem`, or null.
Cert FirstCert(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  return Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

absl::Status CheckValidNow(absl::string_view flag, const std::string& path,
                           X509* cert) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return FlagError(flag, path, "the certificate is not valid yet");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return FlagError(flag, path, "the certificate has expired");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerTransport> MakeServerTransport(
    const ServerTlsFiles& files) {
  ServerTransport out;
  if (files.cert.empty() && files.key.empty()) {
    if (!files.client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key (mutual TLS is TLS "
          "first)");
    }
    out.credentials = grpc::InsecureServerCredentials();
    return out;
  }
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  absl::StatusOr<std::string> cert_pem = ReadPem("tls_cert", files.cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadPem("tls_key", files.key);
  if (!key_pem.ok()) return key_pem.status();

  Cert cert = FirstCert(*cert_pem);
  if (cert == nullptr)
    return FlagError("tls_cert", files.cert, "holds no PEM certificate");
  if (absl::Status s = CheckValidNow("tls_cert", files.cert, cert.get());
      !s.ok())
    return s;
  Bio key_bio = MemoryBio(*key_pem);
  Key key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return FlagError("tls_key", files.key,
                     "holds no unencrypted PEM private key (encrypted keys are "
                     "not supported)");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return FlagError(
        "tls_key", files.key,
        absl::StrCat("is not the private key of the certificate in ",
                     files.cert));
  }

  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key_pem, *cert_pem});
  out.security = TransportSecurity::kTls;
  if (!files.client_ca.empty()) {
    absl::StatusOr<std::string> ca_pem =
        ReadPem("tls_client_ca", files.client_ca);
    if (!ca_pem.ok()) return ca_pem.status();
    if (FirstCert(*ca_pem) == nullptr) {
      return FlagError("tls_client_ca", files.client_ca,
                       "holds no PEM certificate");
    }
    options.pem_root_certs = *ca_pem;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    out.security = TransportSecurity::kMutualTls;
  }
  out.credentials = grpc::SslServerCredentials(options);
  if (out.credentials == nullptr) {
    return absl::InvalidArgumentError("gRPC refused the TLS configuration");
  }
  return out;
}

bool IsLoopbackAddress(absl::string_view listen_address) {
  if (absl::StartsWith(listen_address, "unix:") ||
      absl::StartsWith(listen_address, "unix-abstract:")) {
    return true;
  }
  absl::string_view host = listen_address;
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':');
             colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  const std::string text(host);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

absl::string_view TransportSecurityName(TransportSecurity security) {
  switch (security) {
    case TransportSecurity::kPlaintext:
      return "plaintext";
    case TransportSecurity::kTls:
      return "tls";
    case TransportSecurity::kMutualTls:
      return "mtls";
  }
  return "unknown";
}

}  // namespace corral::rpc
