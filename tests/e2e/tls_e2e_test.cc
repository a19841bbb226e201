// TLS and mutual TLS between real corrald and real clients (the C++ client
// and corralctl), with certificates the openssl tool makes at test time:
// handshakes that must succeed, clients that must be refused, and startup
// errors for files that cannot work.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/corral_client.h"
#include "client/cpp/credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/corrald_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_pki.h"

namespace corral::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class TlsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        absl::StrCat(::testing::TempDir(), "/corral-tls-e2e-", getpid()));
    auto pki = TestPki::Create(*dir_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*std::move(pki));
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(*dir_, ignored);
    delete dir_;
    delete pki_;
  }

  static std::unique_ptr<CorraldProcess> StartCorrald(
      std::vector<std::string> args) {
    CorraldOptions options;
    options.args = std::move(args);
    auto p = CorraldProcess::Start(options);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  // A client of `target` over TLS with `files` (or plaintext when null).
  static std::unique_ptr<client::Client> ClientFor(
      const std::string& target, const client::TlsFiles* files) {
    client::ClientOptions options;
    options.default_timeout = absl::Seconds(5);
    options.retry.max_attempts = 1;
    if (files != nullptr) {
      auto creds = client::TlsCredentialsFromFiles(*files);
      EXPECT_TRUE(creds.ok()) << creds.status();
      options.credentials = *creds;
    }
    return std::make_unique<client::Client>(target, options);
  }

  // A Set and Get round trip: OK, or the first failure.
  static absl::Status RoundTrip(client::Client& c) {
    auto set = c.Set("tls", "k", "v");
    if (!set.ok()) return set.status();
    auto got = c.Get("tls", "k");
    if (!got.ok()) return got.status();
    if (!got->found || got->value.value != "v")
      return absl::InternalError("wrong value");
    return absl::OkStatus();
  }

  // Runs corrald with `args` expecting it to refuse to start.
  static CommandResult ExpectStartupError(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        CorraldPath(), "--listen_address=127.0.0.1:0", "--metrics_address=off"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunCommand(argv, "", absl::Seconds(20));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 2) << r->stderr_text;
    EXPECT_THAT(r->stderr_text, Not(HasSubstr("corrald ready")));
    return *r;
  }

  static std::string* dir_;
  static TestPki* pki_;
};
std::string* TlsE2E::dir_ = nullptr;
TestPki* TlsE2E::pki_ = nullptr;

TEST_F(TlsE2E, ServesTlsClientsAndRefusesPlaintextAndUntrustingClients) {
  auto corrald = StartCorrald({absl::StrCat("--tls_cert=", pki_->server_cert),
                               absl::StrCat("--tls_key=", pki_->server_key)});
  ASSERT_NE(corrald, nullptr);
  EXPECT_THAT(corrald->Log(), HasSubstr("security transport=tls auth=open"));

  client::TlsFiles trusting{pki_->ca_cert, "", ""};
  EXPECT_OK(RoundTrip(*ClientFor(corrald->target(), &trusting)));
  // The same server under its DNS name (the certificate names both).
  const std::string port =
      corrald->target().substr(corrald->target().rfind(':') + 1);
  EXPECT_OK(RoundTrip(*ClientFor(absl::StrCat("localhost:", port), &trusting)));

  // Plaintext against a TLS port: no handshake, no answer.
  EXPECT_THAT(RoundTrip(*ClientFor(corrald->target(), nullptr)),
              StatusIs(absl::StatusCode::kUnavailable));
  // A client that trusts another CA refuses the server's certificate.
  client::TlsFiles other{pki_->other_ca_cert, "", ""};
  EXPECT_THAT(RoundTrip(*ClientFor(corrald->target(), &other)),
              StatusIs(absl::StatusCode::kUnavailable));

  // corralctl takes the same options.
  auto ok = RunCorralctl({"--target", corrald->target(), "--tls-ca",
                          pki_->ca_cert, "get", "tls", "k"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->exit_code, 0) << ok->stderr_text;
  EXPECT_EQ(ok->stdout_text, "v");
  auto plain = RunCorralctl(
      {"--target", corrald->target(), "--timeout", "3s", "get", "tls", "k"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->exit_code, 3);
  EXPECT_THAT(plain->stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(corrald->Terminate(), IsOkAndHolds(0));
}

TEST_F(TlsE2E, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  auto corrald =
      StartCorrald({absl::StrCat("--tls_cert=", pki_->server_cert),
                    absl::StrCat("--tls_key=", pki_->server_key),
                    absl::StrCat("--tls_client_ca=", pki_->ca_cert)});
  ASSERT_NE(corrald, nullptr);
  EXPECT_THAT(corrald->Log(), HasSubstr("security transport=mtls"));

  client::TlsFiles with_cert{pki_->ca_cert, pki_->client_cert,
                             pki_->client_key};
  EXPECT_OK(RoundTrip(*ClientFor(corrald->target(), &with_cert)));
  auto health = ClientFor(corrald->target(), &with_cert)->CheckHealth();
  EXPECT_THAT(health, IsOkAndHolds(client::HealthStatus::kServing));

  // No client certificate: refused in the handshake, health included.
  client::TlsFiles no_cert{pki_->ca_cert, "", ""};
  EXPECT_THAT(RoundTrip(*ClientFor(corrald->target(), &no_cert)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ClientFor(corrald->target(), &no_cert)->CheckHealth(),
              StatusIs(absl::StatusCode::kUnavailable));
  // A certificate from a CA the server does not trust: refused too.
  client::TlsFiles foreign_cert{pki_->ca_cert, pki_->other_client_cert,
                                pki_->other_client_key};
  EXPECT_THAT(RoundTrip(*ClientFor(corrald->target(), &foreign_cert)),
              StatusIs(absl::StatusCode::kUnavailable));
  // Plaintext: refused.
  EXPECT_THAT(RoundTrip(*ClientFor(corrald->target(), nullptr)),
              StatusIs(absl::StatusCode::kUnavailable));

  // corralctl with a client certificate (underscored flags work too).
  auto ok = RunCorralctl({"--target", corrald->target(), "--tls_ca",
                          pki_->ca_cert, "--tls_cert", pki_->client_cert,
                          "--tls_key", pki_->client_key, "health"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->exit_code, 0) << ok->stderr_text;
  auto refused = RunCorralctl({"--target", corrald->target(), "--tls-ca",
                               pki_->ca_cert, "--timeout", "3s", "health"});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->exit_code, 3) << refused->stdout_text;
  EXPECT_THAT(corrald->Terminate(), IsOkAndHolds(0));
}

TEST_F(TlsE2E, FilesThatCannotWorkAreStartupErrors) {
  const std::string cert = absl::StrCat("--tls_cert=", pki_->server_cert);
  const std::string key = absl::StrCat("--tls_key=", pki_->server_key);
  EXPECT_THAT(ExpectStartupError({cert}).stderr_text,
              HasSubstr("--tls_cert and --tls_key must be given together"));
  EXPECT_THAT(ExpectStartupError({key}).stderr_text,
              HasSubstr("--tls_cert and --tls_key must be given together"));
  EXPECT_THAT(
      ExpectStartupError({absl::StrCat("--tls_client_ca=", pki_->ca_cert)})
          .stderr_text,
      HasSubstr("--tls_client_ca needs --tls_cert and --tls_key"));
  EXPECT_THAT(
      ExpectStartupError({"--tls_cert=/nonexistent.pem", key}).stderr_text,
      HasSubstr("--tls_cert=/nonexistent.pem: cannot be read"));
  EXPECT_THAT(
      ExpectStartupError({cert, absl::StrCat("--tls_key=", pki_->client_key)})
          .stderr_text,
      HasSubstr("is not the private key of the certificate"));
  EXPECT_THAT(
      ExpectStartupError({cert, key, "--tls_client_ca=/nonexistent-ca.pem"})
          .stderr_text,
      HasSubstr("--tls_client_ca=/nonexistent-ca.pem: cannot be read"));
}

TEST_F(TlsE2E, PlaintextBeyondLoopbackWarnsLoudly) {
  CorraldOptions options;
  options.listen_address = "0.0.0.0:0";
  auto open = CorraldProcess::Start(options);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_THAT((*open)->Log(),
              HasSubstr("WARN insecure_listener listen=0.0.0.0:0 WARNING: "
                        "plaintext gRPC on a non-loopback address: anyone"));
  ASSERT_THAT((*open)->Terminate(), IsOkAndHolds(0));

  // TLS beyond loopback, but no credentials: still a warning, of another kind.
  options.args = {absl::StrCat("--tls_cert=", pki_->server_cert),
                  absl::StrCat("--tls_key=", pki_->server_key)};
  auto tls = CorraldProcess::Start(options);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_THAT((*tls)->Log(), Not(HasSubstr("insecure_listener")));
  EXPECT_THAT((*tls)->Log(), HasSubstr("WARN open_listener"));
  ASSERT_THAT((*tls)->Terminate(), IsOkAndHolds(0));

  // Loopback plaintext (the default): quiet.
  auto local = CorraldProcess::Start();
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_THAT((*local)->Log(), Not(HasSubstr("WARN")));
  ASSERT_THAT((*local)->Terminate(), IsOkAndHolds(0));
}

}  // namespace
}  // namespace corral::testing
