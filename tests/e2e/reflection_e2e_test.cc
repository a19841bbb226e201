// grpc.reflection.v1 against a real corrald that requires bearer tokens:
// reflection stays open, lists the services, hands out corral.v1's files
// with their imports (enough to rebuild the service), says NOT_FOUND for
// what it does not know, and speaks v1alpha's wire format under the v1
// package (compared field by field with the v1alpha descriptor the server's
// own gRPC library carries).
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "corral/v1/corral.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

using google::protobuf::DescriptorProto;
using google::protobuf::FileDescriptorProto;
using grpc::reflection::v1::ServerReflection;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;
using ::testing::IsSupersetOf;

// SHA-256 of "reflection-e2e: a token no caller sends": the server requires
// a token, and no call here has one.
constexpr char kCredential[] =
    "credentials { name: \"reader\" namespaces: \"*\" rights: READ "
    "token_sha256: "
    "\"ef3a08e9c54edfd6010c6fc140f2712a62b2587ab00ee28958a8d820625e63cf\" }\n";

class ReflectionE2E : public ::testing::Test {
 protected:
  // One embedded-store corrald for the suite, with the credential as its
  // --config (Fleet writes the file).
  static void SetUpTestSuite() {
    fleet_ = Fleet::Start(1, /*embedded=*/true, kCredential).release();
  }
  static void TearDownTestSuite() { delete fleet_; }
  void SetUp() override { ASSERT_NE(fleet_, nullptr); }

  // One v1 stream, without a token: every request written, half-closed,
  // every response read.
  static absl::StatusOr<std::vector<ServerReflectionResponse>> Ask(
      const std::vector<ServerReflectionRequest>& requests) {
    auto stub = ServerReflection::NewStub(grpc::CreateChannel(
        fleet_->replica(0).target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto stream = stub->ServerReflectionInfo(&ctx);
    for (const ServerReflectionRequest& request : requests) {
      if (!stream->Write(request)) break;  // Finish says why.
    }
    stream->WritesDone();
    std::vector<ServerReflectionResponse> responses;
    ServerReflectionResponse response;
    while (stream->Read(&response)) responses.push_back(response);
    grpc::Status status = stream->Finish();
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return responses;
  }

  static absl::StatusOr<ServerReflectionResponse> AskOne(
      const ServerReflectionRequest& request) {
    auto responses = Ask({request});
    if (!responses.ok()) return responses.status();
    if (responses->size() != 1) {
      return absl::InternalError(
          absl::StrCat(responses->size(), " responses to one request"));
    }
    return responses->front();
  }

  static Fleet* fleet_;
};
Fleet* ReflectionE2E::fleet_ = nullptr;

ServerReflectionRequest SymbolRequest(const std::string& symbol) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  return request;
}

// The files of a file_descriptor_response, by name; fails on a file sent
// twice or one that does not parse.
std::map<std::string, FileDescriptorProto> FilesOf(
    const ServerReflectionResponse& response) {
  std::map<std::string, FileDescriptorProto> files;
  EXPECT_TRUE(response.has_file_descriptor_response())
      << response.DebugString();
  for (const std::string& bytes :
       response.file_descriptor_response().file_descriptor_proto()) {
    FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    EXPECT_TRUE(files.emplace(file.name(), file).second)
        << file.name() << " sent twice";
  }
  return files;
}

TEST_F(ReflectionE2E, TheServerRequiresTokensForCorral) {
  // What makes the other tests' open access mean something.
  auto stub = corral::v1::Corral::NewStub(grpc::CreateChannel(
      fleet_->replica(0).target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  corral::v1::GetRequest request;
  request.set_namespace_("ns");
  request.set_key("k");
  corral::v1::GetResponse response;
  EXPECT_EQ(stub->Get(&ctx, request, &response).error_code(),
            grpc::UNAUTHENTICATED);
}

TEST_F(ReflectionE2E, ListsTheServicesWithoutAToken) {
  ServerReflectionRequest request;
  request.set_host("anything");
  request.set_list_services("*");
  auto response = AskOne(request);
  ASSERT_OK(response.status());
  ASSERT_TRUE(response->has_list_services_response())
      << response->DebugString();
  EXPECT_EQ(response->valid_host(), "anything");
  EXPECT_EQ(response->original_request().list_services(), "*");
  std::vector<std::string> names;
  for (const auto& s : response->list_services_response().service())
    names.push_back(s.name());
  EXPECT_THAT(
      names,
      IsSupersetOf({"corral.v1.Corral", "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection"}));
}

TEST_F(ReflectionE2E, TheFileOfCorralComesWithItsImportsOnceEach) {
  auto response = AskOne(SymbolRequest("corral.v1.Corral"));
  ASSERT_OK(response.status());
  ASSERT_GT(response->file_descriptor_response().file_descriptor_proto_size(),
            0)
      << response->DebugString();
  FileDescriptorProto first;
  ASSERT_TRUE(first.ParseFromString(
      response->file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(first.name(), "corral/v1/corral.proto");
  const std::map<std::string, FileDescriptorProto> files = FilesOf(*response);
  std::set<std::string> names;
  for (const auto& [name, file] : files) names.insert(name);
  EXPECT_THAT(names, IsSupersetOf({"corral/v1/corral.proto",
                                   "google/protobuf/duration.proto",
                                   "google/protobuf/timestamp.proto"}));
  // Every import is there: a client can rebuild the service from them alone.
  google::protobuf::SimpleDescriptorDatabase database;
  for (const auto& [name, file] : files)
    ASSERT_TRUE(database.Add(file)) << name;
  google::protobuf::DescriptorPool pool(&database);
  const google::protobuf::ServiceDescriptor* corral =
      pool.FindServiceByName("corral.v1.Corral");
  ASSERT_NE(corral, nullptr);
  const google::protobuf::MethodDescriptor* get_or_compute =
      corral->FindMethodByName("GetOrCompute");
  ASSERT_NE(get_or_compute, nullptr);
  EXPECT_TRUE(get_or_compute->client_streaming());
  EXPECT_TRUE(get_or_compute->server_streaming());
  EXPECT_EQ(get_or_compute->input_type()->full_name(),
            "corral.v1.GetOrComputeRequest");
  EXPECT_NE(pool.FindMessageTypeByName("google.protobuf.Duration"), nullptr);

  // A diamond (api imports type and source_context; type imports
  // source_context too): each file once.
  ServerReflectionRequest diamond;
  diamond.set_file_by_filename("google/protobuf/api.proto");
  auto api = AskOne(diamond);
  ASSERT_OK(api.status());
  std::set<std::string> api_names;
  for (const auto& [name, file] : FilesOf(*api)) api_names.insert(name);
  EXPECT_EQ(api_names,
            (std::set<std::string>{"google/protobuf/api.proto",
                                   "google/protobuf/type.proto",
                                   "google/protobuf/source_context.proto",
                                   "google/protobuf/any.proto"}));
  EXPECT_EQ(api->file_descriptor_response().file_descriptor_proto_size(), 4);

  // The same file by name, and by a method and a field it defines.
  ServerReflectionRequest by_name;
  by_name.set_file_by_filename("corral/v1/corral.proto");
  for (const ServerReflectionRequest& request :
       {by_name, SymbolRequest("corral.v1.Corral.GetOrCompute"),
        SymbolRequest("corral.v1.GetRequest.key")}) {
    auto other = AskOne(request);
    ASSERT_OK(other.status());
    ASSERT_GT(other->file_descriptor_response().file_descriptor_proto_size(), 0)
        << request.DebugString() << other->DebugString();
    FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(
        other->file_descriptor_response().file_descriptor_proto(0)));
    EXPECT_EQ(file.name(), "corral/v1/corral.proto") << request.DebugString();
  }
}

TEST_F(ReflectionE2E, UnknownNamesAreNotFoundAndTheStreamGoesOn) {
  ServerReflectionRequest file;
  file.set_file_by_filename("corral/v9/nothing.proto");
  ServerReflectionRequest extension;
  extension.mutable_file_containing_extension()->set_containing_type(
      "corral.v1.GetRequest");
  extension.mutable_file_containing_extension()->set_extension_number(12345);
  ServerReflectionRequest numbers;
  numbers.set_all_extension_numbers_of_type("corral.v1.NoSuchMessage");
  auto responses = Ask({SymbolRequest("corral.v1.NoSuchService"), file,
                        extension, numbers, SymbolRequest("corral.v1.Corral")});
  ASSERT_OK(responses.status());
  ASSERT_EQ(responses->size(), 5u);
  for (int i = 0; i < 4; ++i) {
    const ServerReflectionResponse& r = (*responses)[i];
    ASSERT_TRUE(r.has_error_response()) << i << ": " << r.DebugString();
    EXPECT_EQ(r.error_response().error_code(), grpc::StatusCode::NOT_FOUND)
        << i;
    EXPECT_FALSE(r.error_response().error_message().empty()) << i;
  }
  EXPECT_EQ((*responses)[0].original_request().file_containing_symbol(),
            "corral.v1.NoSuchService");
  // Answered in order, after the errors.
  EXPECT_TRUE((*responses)[4].has_file_descriptor_response());

  // A known type with no extensions: its name and an empty list.
  ServerReflectionRequest known;
  known.set_all_extension_numbers_of_type("corral.v1.GetRequest");
  auto none = AskOne(known);
  ASSERT_OK(none.status());
  ASSERT_TRUE(none->has_all_extension_numbers_response())
      << none->DebugString();
  EXPECT_EQ(none->all_extension_numbers_response().base_type_name(),
            "corral.v1.GetRequest");
  EXPECT_EQ(none->all_extension_numbers_response().extension_number_size(), 0);
}

// v1 must be v1alpha on the wire: same messages, fields, numbers, types,
// oneofs and method shape; only the package differs.
TEST_F(ReflectionE2E, V1IsV1alphaUnderAnotherPackage) {
  auto responses =
      Ask({SymbolRequest("grpc.reflection.v1.ServerReflection"),
           SymbolRequest("grpc.reflection.v1alpha.ServerReflection")});
  ASSERT_OK(responses.status());
  ASSERT_EQ(responses->size(), 2u);
  const auto v1_files = FilesOf((*responses)[0]);
  const auto alpha_files = FilesOf((*responses)[1]);
  ASSERT_FALSE(v1_files.empty());
  ASSERT_FALSE(alpha_files.empty());
  FileDescriptorProto v1, alpha;
  ASSERT_TRUE(v1.ParseFromString(
      (*responses)[0].file_descriptor_response().file_descriptor_proto(0)));
  ASSERT_TRUE(alpha.ParseFromString(
      (*responses)[1].file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(v1.package(), "grpc.reflection.v1");
  EXPECT_EQ(alpha.package(), "grpc.reflection.v1alpha");
  EXPECT_EQ(v1.syntax(), alpha.syntax());
  auto as_v1 = [](const std::string& type_name) {
    return absl::StrReplaceAll(
        type_name, {{".grpc.reflection.v1alpha.", ".grpc.reflection.v1."}});
  };

  ASSERT_EQ(v1.message_type_size(), alpha.message_type_size());
  std::map<std::string, const DescriptorProto*> v1_messages;
  for (const DescriptorProto& m : v1.message_type()) v1_messages[m.name()] = &m;
  for (const DescriptorProto& expected : alpha.message_type()) {
    SCOPED_TRACE(expected.name());
    ASSERT_EQ(v1_messages.count(expected.name()), 1u);
    const DescriptorProto& actual = *v1_messages[expected.name()];
    ASSERT_EQ(actual.field_size(), expected.field_size());
    ASSERT_EQ(actual.oneof_decl_size(), expected.oneof_decl_size());
    for (int i = 0; i < expected.oneof_decl_size(); ++i) {
      EXPECT_EQ(actual.oneof_decl(i).name(), expected.oneof_decl(i).name());
    }
    std::map<int, const google::protobuf::FieldDescriptorProto*> by_number;
    for (const auto& f : actual.field()) by_number[f.number()] = &f;
    for (const auto& want : expected.field()) {
      SCOPED_TRACE(want.name());
      ASSERT_EQ(by_number.count(want.number()), 1u);
      const auto& got = *by_number[want.number()];
      EXPECT_EQ(got.name(), want.name());
      EXPECT_EQ(got.type(), want.type());
      EXPECT_EQ(got.label(), want.label());
      EXPECT_EQ(got.has_oneof_index(), want.has_oneof_index());
      EXPECT_EQ(got.oneof_index(), want.oneof_index());
      EXPECT_EQ(got.type_name(), as_v1(want.type_name()));
    }
  }
  ASSERT_EQ(v1.service_size(), 1);
  ASSERT_EQ(alpha.service_size(), 1);
  EXPECT_EQ(v1.service(0).name(), alpha.service(0).name());
  ASSERT_EQ(v1.service(0).method_size(), alpha.service(0).method_size());
  for (int i = 0; i < alpha.service(0).method_size(); ++i) {
    const auto& got = v1.service(0).method(i);
    const auto& want = alpha.service(0).method(i);
    EXPECT_EQ(got.name(), want.name());
    EXPECT_EQ(got.input_type(), as_v1(want.input_type()));
    EXPECT_EQ(got.output_type(), as_v1(want.output_type()));
    EXPECT_EQ(got.client_streaming(), want.client_streaming());
    EXPECT_EQ(got.server_streaming(), want.server_streaming());
  }
}

}  // namespace
}  // namespace corral::testing
