// The Authorizer on its own: config validation, token matching and the
// rights matrix, without gRPC.
#include "server/rpc/auth.h"

#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "tests/support/status_matchers.h"

namespace corral::rpc {
namespace {

using ::corral::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<Authorizer> FromText(const std::string& text) {
  corral::v1::ServerConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text, &config)) {
    return absl::InvalidArgumentError("bad textproto in the test");
  }
  return Authorizer::Create(config.credentials());
}

std::string Credential(const std::string& name, const std::string& token,
                       const std::vector<std::string>& namespaces,
                       const std::vector<std::string>& rights) {
  std::string out = absl::StrCat("credentials { name: \"", name,
                                 "\" token_sha256: \"", Sha256Hex(token), "\"");
  for (const auto& ns : namespaces)
    absl::StrAppend(&out, " namespaces: \"", ns, "\"");
  for (const auto& r : rights) absl::StrAppend(&out, " rights: ", r);
  return out + " }\n";
}

std::string Bearer(absl::string_view token) {
  return absl::StrCat("Bearer ", token);
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuthorizerTest, NoCredentialsIsOpen) {
  auto auth = FromText("");
  ASSERT_OK(auth);
  EXPECT_TRUE(auth->open());
  AuthDecision d = auth->Decide(std::nullopt, "anything", Right::kAdmin);
  EXPECT_OK(d.status);
  EXPECT_EQ(d.denial, "");
}

TEST(AuthorizerTest, ValidationNamesTheCredentialAndNeverQuotesTheHash) {
  const std::string good = Sha256Hex("t");
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {absl::StrCat("credentials { token_sha256: \"", good,
                    "\" namespaces: \"a\" rights: READ }"),
       "credentials[0]: name must be"},
      {absl::StrCat("credentials { name: \"bad name\" token_sha256: \"", good,
                    "\" namespaces: \"a\" rights: READ }"),
       "name must be"},
      {"credentials { name: \"short\" token_sha256: \"abc123\" namespaces: "
       "\"a\" rights: READ }",
       "credentials[0] (short): token_sha256 must be the SHA-256 of the token "
       "as 64 hex digits"},
      {absl::StrCat("credentials { name: \"nothex\" token_sha256: \"",
                    std::string(63, 'a'),
                    "z\" namespaces: \"a\" rights: READ }"),
       "not all hex digits"},
      {absl::StrCat("credentials { name: \"nons\" token_sha256: \"", good,
                    "\" rights: READ }"),
       "(nons): lists no namespaces"},
      {absl::StrCat("credentials { name: \"badns\" token_sha256: \"", good,
                    "\" namespaces: \"no spaces\" rights: READ }"),
       "(badns): namespaces"},
      {absl::StrCat("credentials { name: \"norights\" token_sha256: \"", good,
                    "\" namespaces: \"a\" }"),
       "(norights): grants no rights"},
      {absl::StrCat("credentials { name: \"unspec\" token_sha256: \"", good,
                    "\" namespaces: \"a\" rights: RIGHT_UNSPECIFIED }"),
       "(unspec): rights: 0 is not a right"},
      {Credential("twice", "t1", {"a"}, {"READ"}) +
           Credential("twice", "t2", {"a"}, {"READ"}),
       "credentials[1] (twice): the name is used twice"},
      {Credential("one", "same", {"a"}, {"READ"}) +
           Credential("two", "same", {"b"}, {"LOCK"}),
       "credentials[1] (two): has the same token as \"one\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto auth = FromText(c.text);
    ASSERT_THAT(auth, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(auth.status().message()), HasSubstr(c.expected));
    EXPECT_THAT(std::string(auth.status().message()),
                HasSubstr("config: credentials["));
    EXPECT_THAT(std::string(auth.status().message()), Not(HasSubstr(good)));
  }
}

TEST(AuthorizerTest, UppercaseHexIsAccepted) {
  std::string upper = Sha256Hex("t");
  for (char& c : upper) c = static_cast<char>(toupper(c));
  auto auth =
      FromText(absl::StrCat("credentials { name: \"u\" token_sha256: \"", upper,
                            "\" namespaces: \"a\" rights: READ }"));
  ASSERT_OK(auth);
  EXPECT_OK(auth->Decide(Bearer("t"), "a", Right::kRead).status);
}

TEST(AuthorizerTest, MissingMalformedAndUnknownTokensAreUnauthenticated) {
  auto auth = FromText(Credential("reader", "secret-token", {"a"}, {"READ"}));
  ASSERT_OK(auth);
  EXPECT_FALSE(auth->open());
  struct Case {
    std::optional<std::string> header;
    absl::string_view denial;
  };
  const std::vector<Case> cases = {
      {std::nullopt, "missing_token"},
      {"", "missing_token"},
      {"secret-token", "malformed_header"},
      {"Basic secret-token", "malformed_header"},
      {"Bearer", "malformed_header"},
      {"Bearer ", "unknown_token"},
      {"Bearer wrong", "unknown_token"},
      {"Bearer secret-token-and-more", "unknown_token"},
      {"Bearer secret-toke", "unknown_token"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header.value_or("(none)"));
    std::optional<absl::string_view> header;
    if (c.header) header = *c.header;
    AuthDecision d = auth->Decide(header, "a", Right::kRead);
    EXPECT_THAT(d.status, StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_EQ(ReasonOf(d.status), "unauthenticated");
    EXPECT_EQ(d.denial, c.denial);
    EXPECT_EQ(d.credential, "");
    EXPECT_THAT(std::string(d.status.message()), Not(HasSubstr("secret")));
  }
  // The scheme is case-insensitive; spaces around the token do not count.
  EXPECT_OK(auth->Decide("bearer secret-token", "a", Right::kRead).status);
  EXPECT_OK(auth->Decide("BEARER  secret-token ", "a", Right::kRead).status);
}

// Every single-right credential against every right, in its own namespace
// and in another one.
TEST(AuthorizerTest, RightsMatrix) {
  const std::vector<std::pair<std::string, Right>> rights = {
      {"READ", Right::kRead},
      {"COMPUTE", Right::kCompute},
      {"LOCK", Right::kLock},
      {"ADMIN", Right::kAdmin}};
  std::string text;
  for (const auto& [name, right] : rights) {
    text += Credential(absl::AsciiStrToLower(name),
                       absl::StrCat("token-", name), {"own"}, {name});
  }
  auto auth = FromText(text);
  ASSERT_OK(auth);
  for (const auto& [granted_name, granted] : rights) {
    const std::string header = Bearer(absl::StrCat("token-", granted_name));
    for (const auto& [wanted_name, wanted] : rights) {
      SCOPED_TRACE(absl::StrCat(granted_name, " asks for ", wanted_name));
      AuthDecision own = auth->Decide(header, "own", wanted);
      EXPECT_EQ(own.credential, absl::AsciiStrToLower(granted_name));
      if (granted == wanted) {
        EXPECT_OK(own.status);
        EXPECT_EQ(own.denial, "");
      } else {
        EXPECT_THAT(own.status, StatusIs(absl::StatusCode::kPermissionDenied));
        EXPECT_EQ(ReasonOf(own.status), "permission-denied");
        EXPECT_EQ(own.denial, "right_denied");
        EXPECT_THAT(
            std::string(own.status.message()),
            HasSubstr(absl::StrCat("lacks the ", RightName(wanted), " right")));
      }
      AuthDecision foreign = auth->Decide(header, "foreign", wanted);
      EXPECT_THAT(foreign.status,
                  StatusIs(absl::StatusCode::kPermissionDenied));
      EXPECT_EQ(foreign.denial, "namespace_denied");
      EXPECT_THAT(std::string(foreign.status.message()),
                  HasSubstr("may not use namespace \"foreign\""));
    }
  }
}

TEST(AuthorizerTest, WildcardAndSeveralNamespacesAndRights) {
  auto auth =
      FromText(Credential("ops", "ops-token", {"*"}, {"READ", "ADMIN"}) +
               Credential("team", "team-token", {"a", "b"},
                          {"READ", "COMPUTE", "LOCK"}));
  ASSERT_OK(auth);
  EXPECT_EQ(auth->size(), 2u);
  for (absl::string_view ns : {"a", "b", "zzz"}) {
    EXPECT_OK(auth->Decide(Bearer("ops-token"), ns, Right::kAdmin).status);
    EXPECT_THAT(auth->Decide(Bearer("ops-token"), ns, Right::kLock).status,
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  for (Right r : {Right::kRead, Right::kCompute, Right::kLock}) {
    EXPECT_OK(auth->Decide(Bearer("team-token"), "a", r).status);
    EXPECT_OK(auth->Decide(Bearer("team-token"), "b", r).status);
    EXPECT_THAT(auth->Decide(Bearer("team-token"), "c", r).status,
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  EXPECT_THAT(auth->Decide(Bearer("team-token"), "a", Right::kAdmin).status,
              StatusIs(absl::StatusCode::kPermissionDenied));
  // A token is someone's, whatever it asks for: "a" is not a prefix match.
  EXPECT_THAT(auth->Decide(Bearer("team-token"), "ab", Right::kRead).status,
              StatusIs(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace corral::rpc
