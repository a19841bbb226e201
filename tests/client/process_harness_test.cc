// The end-to-end process harness: Subprocess with /bin/sh, CorraldProcess
// with a fake corrald script, and the real corralctl binary against a
// scripted in-process server.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_corral.h"
#include "tests/support/corrald_process.h"
#include "tests/support/free_port.h"
#include "tests/support/process.h"
#include "tests/support/status_matchers.h"

namespace corral::testing {
namespace {

using ::corral::testing::IsOkAndHolds;
using ::corral::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<Subprocess> Sh(const std::string& script,
                               std::optional<std::string> stdin_data = {}) {
  SubprocessOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = {{"CORRAL_TEST_VAR", "from-test"}};
  options.stdin_data = std::move(stdin_data);
  auto process = Subprocess::Start(std::move(options));
  EXPECT_TRUE(process.ok()) << process.status();
  return process.ok() ? *std::move(process) : nullptr;
}

TEST(LineRegexTest, MatchesWholeLinesAndCaptures) {
  LineRegex re("ready port=([0-9]+)");
  ASSERT_TRUE(re.ok());
  std::vector<std::string> groups;
  EXPECT_TRUE(re.Matches("ready port=4321", &groups));
  EXPECT_THAT(groups, ::testing::ElementsAre("4321"));
  EXPECT_FALSE(re.Matches("not ready port=4321"));
  EXPECT_FALSE(re.Matches("ready port=4321 and more"));
  EXPECT_FALSE(LineRegex("(unclosed").ok());
}

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  auto p = Sh("echo out; echo \"err $CORRAL_TEST_VAR\" >&2; exit 3");
  ASSERT_NE(p, nullptr);
  auto status = p->Wait(absl::Seconds(10));
  ASSERT_OK(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 3);
  EXPECT_FALSE(status->success());
  EXPECT_EQ(p->Stdout(), "out\n");
  EXPECT_EQ(p->Stderr(), "err from-test\n");
  EXPECT_FALSE(p->Running());
  // Waiting again reports the same.
  EXPECT_THAT(p->Wait(absl::Seconds(1)),
              IsOkAndHolds(::testing::Field(&ExitStatus::code, 3)));
}

TEST(SubprocessTest, WaitForLineMatchesAWholeLine) {
  auto p =
      Sh("echo starting >&2; sleep 0.1; "
         "echo 'corrald ready listen=127.0.0.1:5 metrics=x store=y' >&2; "
         "sleep 30");
  ASSERT_NE(p, nullptr);
  auto line = p->WaitForLine("corrald ready .*", absl::Seconds(10),
                             Subprocess::Stream::kStderr);
  ASSERT_OK(line);
  EXPECT_EQ(*line, "corrald ready listen=127.0.0.1:5 metrics=x store=y");
  // Not on stdout.
  EXPECT_THAT(p->WaitForLine("corrald ready .*", absl::Milliseconds(50),
                             Subprocess::Stream::kStdout),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(p->Running());
}

TEST(SubprocessTest, WaitForLineTimesOutWithTheOutputSoFar) {
  auto p = Sh("echo partial output; sleep 30");
  ASSERT_NE(p, nullptr);
  auto line = p->WaitForLine("never", absl::Milliseconds(200));
  EXPECT_THAT(line, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(line.status().message(), HasSubstr("partial output"));
}

TEST(SubprocessTest, WaitForLineFailsFastWhenTheChildExits) {
  auto p = Sh("echo bye; exit 1");
  ASSERT_NE(p, nullptr);
  const absl::Time start = absl::Now();
  auto line = p->WaitForLine("never", absl::Seconds(30));
  EXPECT_THAT(line, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(line.status().message(), HasSubstr("bye"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(SubprocessTest, UnterminatedLastLineCountsAfterExit) {
  auto p = Sh("printf 'no newline'");
  ASSERT_NE(p, nullptr);
  EXPECT_THAT(p->WaitForLine("no newline", absl::Seconds(10)),
              IsOkAndHolds(std::string("no newline")));
}

TEST(SubprocessTest, SignalsEndTheChild) {
  auto p =
      Sh("trap 'echo got TERM; exit 7' TERM; echo ready; "
         "while :; do sleep 0.01; done");
  ASSERT_NE(p, nullptr);
  ASSERT_OK(p->WaitForLine("ready", absl::Seconds(10)));
  ASSERT_OK(p->Signal(SIGTERM));
  auto status = p->Wait(absl::Seconds(10));
  ASSERT_OK(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 7);
  EXPECT_THAT(p->Stdout(), HasSubstr("got TERM"));
  EXPECT_THAT(p->Signal(SIGTERM),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  auto killed = Sh("exec sleep 30");
  ASSERT_NE(killed, nullptr);
  ASSERT_OK(killed->Signal(SIGKILL));
  auto kstatus = killed->Wait(absl::Seconds(10));
  ASSERT_OK(kstatus);
  EXPECT_FALSE(kstatus->exited);
  EXPECT_EQ(kstatus->signal, SIGKILL);
  EXPECT_THAT(kstatus->ToString(), HasSubstr("signal 9"));
}

TEST(SubprocessTest, WaitTimesOutWhileRunning) {
  auto p = Sh("exec sleep 30");
  ASSERT_NE(p, nullptr);
  EXPECT_THAT(p->Wait(absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(p->Running());
}

TEST(SubprocessTest, FeedsStdin) {
  std::string big(300000, 'x');  // More than a pipe buffer.
  auto p = Sh("wc -c", big);
  ASSERT_NE(p, nullptr);
  ASSERT_OK(p->Wait(absl::Seconds(10)));
  EXPECT_THAT(p->Stdout(), HasSubstr("300000"));
  // A child that ignores its stdin must not hurt the test (no SIGPIPE).
  auto ignoring = Sh("exit 0", big);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_THAT(ignoring->Wait(absl::Seconds(10)),
              IsOkAndHolds(::testing::Field(&ExitStatus::code, 0)));
}

TEST(SubprocessTest, MissingProgramFailsToStart) {
  SubprocessOptions options;
  options.argv = {"/nonexistent/corrald"};
  auto p = Subprocess::Start(std::move(options));
  EXPECT_THAT(p, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(p.status().message(), HasSubstr("/nonexistent/corrald"));
}

bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(SubprocessTest, DestructorKillsTheWholeGroup) {
  pid_t child = 0;
  pid_t grandchild = 0;
  {
    auto p = Sh("sleep 60 & echo \"bg $!\"; wait");
    ASSERT_NE(p, nullptr);
    auto line = p->WaitForLine("bg [0-9]+", absl::Seconds(10));
    ASSERT_OK(line);
    child = p->pid();
    grandchild = std::stoi(line->substr(3));
    ASSERT_TRUE(Alive(grandchild));
  }
  // The child was reaped by the destructor; the grandchild was re-parented
  // and is reaped by init, so wait for it to disappear.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Alive(grandchild) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Alive(grandchild));
  EXPECT_FALSE(Alive(child));
}

// --- CorraldProcess with a stand-in binary ----------------------------------

std::string WriteScript(const std::string& name, const std::string& body) {
  std::string path =
      absl::StrCat(::testing::TempDir(), "/", name, "-", ::getpid(), ".sh");
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

TEST(ReadyLineTest, Parses) {
  auto ready = ParseReadyLine(
      "corrald ready listen=127.0.0.1:43123 metrics=127.0.0.1:39411 "
      "store=redis://127.0.0.1:6379/0");
  ASSERT_OK(ready);
  EXPECT_EQ(ready->listen, "127.0.0.1:43123");
  EXPECT_EQ(ready->metrics, "127.0.0.1:39411");
  EXPECT_EQ(ready->store, "redis://127.0.0.1:6379/0");
  EXPECT_THAT(ParseReadyLine("corrald starting"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CorraldProcessTest, StartsParsesAndTerminates) {
  // Echoes its flags, then the ready line, and exits 0 on SIGTERM.
  CorraldOptions options;
  options.binary = WriteScript(
      "fake-corrald",
      "trap 'echo stopping >&2; exit 0' TERM\n"
      "echo \"args: $*\" >&2\n"
      "echo 'corrald ready listen=127.0.0.1:43123 metrics=127.0.0.1:39411 "
      "store=embedded' >&2\n"
      "while :; do sleep 0.01; done\n");
  options.args = {"--redis=redis://127.0.0.1:1"};
  auto corrald = CorraldProcess::Start(options);
  ASSERT_OK(corrald);
  EXPECT_EQ((*corrald)->target(), "127.0.0.1:43123");
  EXPECT_EQ((*corrald)->metrics_address(), "127.0.0.1:39411");
  EXPECT_EQ((*corrald)->store(), "embedded");
  EXPECT_THAT((*corrald)->Log(), HasSubstr("args: --listen_address=127.0.0.1:0 "
                                           "--metrics_address=127.0.0.1:0 "
                                           "--redis=redis://127.0.0.1:1"));
  EXPECT_THAT((*corrald)->Terminate(), IsOkAndHolds(0));
  EXPECT_THAT((*corrald)->Log(), HasSubstr("stopping"));
  ::unlink(options.binary.c_str());
}

TEST(CorraldProcessTest, ExitBeforeReadyIsAnErrorWithTheLog) {
  CorraldOptions options;
  options.binary = WriteScript("bad-corrald",
                               "echo 'corrald: bad flag --nope' >&2\nexit 2\n");
  auto corrald = CorraldProcess::Start(options);
  EXPECT_FALSE(corrald.ok());
  EXPECT_THAT(corrald.status().message(), HasSubstr("bad flag --nope"));
  ::unlink(options.binary.c_str());
}

TEST(CorraldProcessTest, TerminateKillsAServerThatIgnoresSigterm) {
  CorraldOptions options;
  options.binary =
      WriteScript("stubborn-corrald",
                  "trap '' TERM\n"
                  "echo 'corrald ready listen=127.0.0.1:1 metrics=127.0.0.1:2 "
                  "store=embedded' >&2\n"
                  "while :; do sleep 0.01; done\n");
  auto corrald = CorraldProcess::Start(options);
  ASSERT_OK(corrald);
  EXPECT_THAT((*corrald)->Terminate(absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE((*corrald)->Running());
  ::unlink(options.binary.c_str());
}

TEST(CorraldPathTest, UsesTheBuildDirectory) {
  EXPECT_THAT(CorraldPath(), HasSubstr("server/corrald"));
  EXPECT_EQ(::access(CorralctlPath().c_str(), X_OK), 0) << CorralctlPath();
}

// --- The real corralctl binary ---------------------------------------------

TEST(CorralctlBinaryTest, HelpAndUsageErrors) {
  auto help = RunCorralctl({"--help"});
  ASSERT_OK(help);
  EXPECT_EQ(help->exit_code, 0);
  EXPECT_THAT(help->stdout_text, HasSubstr("Exit codes"));
  auto bad = RunCorralctl({"frobnicate"});
  ASSERT_OK(bad);
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_THAT(bad->stderr_text, HasSubstr("unknown command"));
}

TEST(CorralctlBinaryTest, UnreachableServerIsExitThree) {
  ClosedPort closed;  // Bound, never listening: refused, and ours alone.
  auto result =
      RunCorralctl({"--target", absl::StrCat("127.0.0.1:", closed.port()),
                    "--timeout", "1s", "get", "ns", "k"});
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_THAT(result->stderr_text, HasSubstr("UNAVAILABLE"));
}

TEST(CorralctlBinaryTest, AgainstAScriptedServer) {
  FakeCorralServer server;
  Recorder<v1::SetRequest> sets;
  server.service().set = [&](grpc::ServerContext*, const v1::SetRequest& req,
                             v1::SetResponse* resp) {
    sets.Add(req);
    resp->set_stored(true);
    return grpc::Status::OK;
  };
  server.service().get = [](grpc::ServerContext*, const v1::GetRequest& req,
                            v1::GetResponse* resp) {
    // get-or-compute asks with a Get first (draw_early_refresh): a miss
    // sends it on to the scripted GetOrCompute below.
    if (req.draw_early_refresh()) return grpc::Status::OK;
    resp->set_found(true);
    resp->mutable_value()->set_value(std::string("bin\0ary\n", 8));
    return grpc::Status::OK;
  };
  server.service().get_or_compute = [](grpc::ServerContext*,
                                       GetOrComputeStream* s) {
    v1::GetOrComputeRequest req;
    s->Read(&req);
    v1::GetOrComputeResponse lease;
    lease.mutable_lease()->set_fencing_token(1);
    lease.mutable_lease()->set_mode(v1::LEASE_MODE_LOCKED);
    s->Write(lease);
    if (s->Read(&req) && req.has_fill()) {
      v1::GetOrComputeResponse filled;
      filled.mutable_filled()->set_stored(true);
      s->Write(filled);
    }
    return grpc::Status::OK;
  };
  std::vector<std::pair<std::string, std::string>> env = {
      {"CORRAL_TARGET", server.target()}};

  auto set = RunCorralctl({"set", "ns", "k", "-"}, std::string("in\0put", 6),
                          absl::Seconds(30), env);
  ASSERT_OK(set);
  EXPECT_EQ(set->exit_code, 0) << set->stderr_text;
  EXPECT_EQ(sets.Get().at(0).value(), std::string("in\0put", 6));

  auto get = RunCorralctl({"get", "ns", "k"}, "", absl::Seconds(30), env);
  ASSERT_OK(get);
  EXPECT_EQ(get->exit_code, 0) << get->stderr_text;
  EXPECT_EQ(get->stdout_text, std::string("bin\0ary\n", 8));

  auto computed =
      RunCorralctl({"get-or-compute", "ns", "k", "--exec", "printf fresh"}, "",
                   absl::Seconds(30), env);
  ASSERT_OK(computed);
  EXPECT_EQ(computed->exit_code, 0) << computed->stderr_text;
  EXPECT_EQ(computed->stdout_text, "fresh");

  auto failed = RunCorralctl(
      {"get-or-compute", "ns", "k", "--exec", "echo oops >&2; exit 5"}, "",
      absl::Seconds(30), env);
  ASSERT_OK(failed);
  EXPECT_EQ(failed->exit_code, 4);
  EXPECT_THAT(failed->stderr_text, HasSubstr("oops"));
  EXPECT_THAT(failed->stderr_text, HasSubstr("status 5"));

  auto health = RunCorralctl({"health"}, "", absl::Seconds(30), env);
  ASSERT_OK(health);
  EXPECT_EQ(health->exit_code, 0);
  EXPECT_EQ(health->stdout_text, "SERVING\n");
  // Every command asks the server: no run opens a NearCache stream (a
  // probe would open one every few seconds, with no token).
  EXPECT_EQ(server.service().calls("NearCache"), 0);
}

}  // namespace
}  // namespace corral::testing
