// Server transport credentials from PEM files, with certificates made by
// the openssl tool at test time.
#include "server/rpc/tls.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_pki.h"

namespace corral::rpc {
namespace {

using ::corral::testing::StatusIs;
using ::corral::testing::TestPki;
using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  static std::string Dir() {
    return absl::StrCat(::testing::TempDir(), "/corral-tls-test-", getpid());
  }
  static void SetUpTestSuite() {
    auto pki = TestPki::Create(Dir());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*std::move(pki));
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(Dir(), ignored);
    delete pki_;
  }
  static TestPki* pki_;
};
TestPki* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, NoFilesIsPlaintext) {
  auto t = MakeServerTransport({});
  ASSERT_OK(t);
  EXPECT_EQ(t->security, TransportSecurity::kPlaintext);
  EXPECT_NE(t->credentials, nullptr);
}

TEST_F(TlsTest, CertAndKeyIsTlsAndWithAClientCaMutualTls) {
  auto tls = MakeServerTransport({pki_->server_cert, pki_->server_key, ""});
  ASSERT_OK(tls);
  EXPECT_EQ(tls->security, TransportSecurity::kTls);
  auto mtls =
      MakeServerTransport({pki_->server_cert, pki_->server_key, pki_->ca_cert});
  ASSERT_OK(mtls);
  EXPECT_EQ(mtls->security, TransportSecurity::kMutualTls);
  EXPECT_EQ(TransportSecurityName(mtls->security), "mtls");
}

TEST_F(TlsTest, WrongFilesAreClearErrorsNamingTheFlag) {
  const std::string not_pem = Dir() + "/not-pem";
  std::ofstream(not_pem) << "hello\n";
  struct Case {
    ServerTlsFiles files;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{pki_->server_cert, "", ""},
       "--tls_cert and --tls_key must be given together"},
      {{"", pki_->server_key, ""},
       "--tls_cert and --tls_key must be given together"},
      {{"", "", pki_->ca_cert},
       "--tls_client_ca needs --tls_cert and --tls_key"},
      {{"/nonexistent/cert.pem", pki_->server_key, ""},
       "--tls_cert=/nonexistent/cert.pem: cannot be read"},
      {{pki_->server_cert, "/nonexistent/key.pem", ""},
       "--tls_key=/nonexistent/key.pem: cannot be read"},
      {{not_pem, pki_->server_key, ""}, "is not a PEM file"},
      {{pki_->server_key, pki_->server_key, ""},
       "--tls_cert=" + pki_->server_key + ": holds no PEM certificate"},
      {{pki_->server_cert, pki_->server_cert, ""},
       "holds no unencrypted PEM private key"},
      {{pki_->server_cert, pki_->client_key, ""},
       "is not the private key of the certificate"},
      {{pki_->server_cert, pki_->server_key, "/nonexistent/ca.pem"},
       "--tls_client_ca=/nonexistent/ca.pem: cannot be read"},
      {{pki_->server_cert, pki_->server_key, pki_->server_key},
       "--tls_client_ca=" + pki_->server_key + ": holds no PEM certificate"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    auto t = MakeServerTransport(c.files);
    ASSERT_THAT(t, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.expected));
  }
}

TEST(IsLoopbackAddressTest, OnlyThisHost) {
  for (absl::string_view a :
       {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "LOCALHOST:1",
        "[::1]:50051", "unix:/run/corral.sock", "unix-abstract:corral"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (absl::string_view a : {"0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051",
                              "corral.internal:50051", "128.0.0.1:1",
                              "[::ffff:10.0.0.1]:1", ":50051", "[::1:50051"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

}  // namespace
}  // namespace corral::rpc
