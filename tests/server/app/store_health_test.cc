#include "server/app/store_health.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "corral/v1/corral.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/app/grpc_server.h"

namespace corral::app {
namespace {

class NoCorral final : public corral::v1::Corral::CallbackService {};

// grpc.health.v1.Health/Check on a real server, encoded by hand (the health
// proto's C++ classes are not installed): the request is field 1, the
// service name; the answer's field 1 is 1 (SERVING) or 2 (NOT_SERVING).
class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(
        SettingsFor("127.0.0.1:0", grpc::InsecureServerCredentials(),
                    NamespaceRegistry()),
        corral_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    if (server_ == nullptr) return;
    server_->Shutdown(absl::Now());
    server_->Wait();
  }

  // "SERVING", "NOT_SERVING", or the call's error.
  std::string Check(const std::string& service) {
    std::string request = "\x0a";
    request += static_cast<char>(service.size());
    request += service;
    grpc::Slice slice(request);
    grpc::ByteBuffer request_buffer(&slice, 1);
    grpc::ByteBuffer response_buffer;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status status;
    absl::Notification done;
    grpc::GenericStub stub(channel_);
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check",
                   grpc::StubOptions(), &request_buffer, &response_buffer,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    if (!status.ok()) return "error: " + status.error_message();
    std::vector<grpc::Slice> slices;
    if (!response_buffer.Dump(&slices).ok()) return "undecodable";
    std::string response;
    for (const grpc::Slice& s : slices) {
      response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    if (response == std::string("\x08\x01", 2)) return "SERVING";
    if (response == std::string("\x08\x02", 2)) return "NOT_SERVING";
    return "unexpected answer";
  }

  NoCorral corral_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(HealthTest, AttachPublishesWhatWasSetBefore) {
  StoreHealth health(/*up=*/true);
  health.Set(false);
  EXPECT_FALSE(health.up());
  health.Attach(server_->health());
  EXPECT_EQ(Check(kCorralServiceName), "NOT_SERVING");
  EXPECT_EQ(Check(""), "SERVING");  // The process serves, degraded or not.
}

TEST_F(HealthTest, FollowsTheStoreOnceAttached) {
  StoreHealth health(/*up=*/false);
  health.Attach(server_->health());
  EXPECT_EQ(Check(kCorralServiceName), "NOT_SERVING");
  health.Set(true);
  EXPECT_TRUE(health.up());
  EXPECT_EQ(Check(kCorralServiceName), "SERVING");
  health.Set(false);
  EXPECT_EQ(Check(kCorralServiceName), "NOT_SERVING");
  EXPECT_EQ(Check(""), "SERVING");
}

}  // namespace
}  // namespace corral::app
