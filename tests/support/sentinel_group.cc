#include "tests/support/sentinel_group.h"

#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/support/poll.h"

namespace corral::testing {
namespace {

// "field:value" of an INFO reply; "" when absent.
std::string InfoField(const std::string& info, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, absl::ByAnyChar("\r\n"))) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      return std::string(line);
    }
  }
  return "";
}

// A field of SENTINEL MASTER's flat field/value list (joined by '\n').
std::string PairField(const std::string& reply, absl::string_view field) {
  std::vector<std::string> parts = absl::StrSplit(reply, '\n');
  for (size_t i = 0; i + 1 < parts.size(); i += 2) {
    if (parts[i] == field) return parts[i + 1];
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentinelGroup>> SentinelGroup::Start(
    Options options) {
  std::unique_ptr<SentinelGroup> group(new SentinelGroup(std::move(options)));
  const Options& o = group->options_;
  // Redis 7 waits 5 s (repl-diskless-sync-delay) before a full sync, for
  // more replicas to join; here one replica syncs, now.
  RedisServer::Options master_options;
  master_options.args = {"--repl-diskless-sync-delay", "0"};
  auto master = RedisServer::Start(master_options);
  if (!master.ok()) return master.status();
  group->nodes_.push_back(*std::move(master));
  const int master_port = group->nodes_[0]->port();

  RedisServer::Options replica_options;
  replica_options.args = {"--replicaof", "127.0.0.1", absl::StrCat(master_port),
                          "--repl-diskless-sync-delay", "0"};
  auto replica = RedisServer::Start(replica_options);
  if (!replica.ok()) return replica.status();
  group->nodes_.push_back(*std::move(replica));

  const std::string& name = o.master_name;
  const std::string sentinel_config =
      absl::StrCat("sentinel monitor ", name, " 127.0.0.1 ", master_port,
                   " 2\n", "sentinel down-after-milliseconds ", name, " ",
                   absl::ToInt64Milliseconds(o.down_after), "\n",
                   "sentinel failover-timeout ", name, " ",
                   absl::ToInt64Milliseconds(o.failover_timeout), "\n",
                   "sentinel parallel-syncs ", name, " 1\n");
  for (int i = 0; i < 3; ++i) {
    auto sentinel = RedisServer::StartSentinel(sentinel_config);
    if (!sentinel.ok()) return sentinel.status();
    group->sentinels_.push_back(*std::move(sentinel));
  }
  absl::Status ready = group->WaitUntilReady(absl::Seconds(30));
  if (!ready.ok()) return ready;
  return group;
}

absl::Status SentinelGroup::WaitUntilReady(absl::Duration timeout) {
  std::string last;
  const bool ready = PollUntil(
      [&] {
        auto info = nodes_[0]->Command({"INFO", "replication"});
        if (!info.ok() ||
            !absl::StrContains(InfoField(*info, "slave0"), "state=online")) {
          last = "the replica is not in sync";
          return false;
        }
        for (auto& sentinel : sentinels_) {
          auto master =
              sentinel->Command({"SENTINEL", "MASTER", options_.master_name});
          if (!master.ok() || PairField(*master, "num-slaves") != "1" ||
              PairField(*master, "num-other-sentinels") != "2") {
            last = absl::StrCat(
                "sentinel ", sentinel->port(), " does not know everyone yet: ",
                master.ok() ? *master : master.status().ToString());
            return false;
          }
        }
        return true;
      },
      timeout);
  if (ready) return absl::OkStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("sentinel group not ready: ", last));
}

std::string SentinelGroup::uri() const {
  std::vector<std::string> addresses;
  for (const auto& sentinel : sentinels_) {
    addresses.push_back(absl::StrCat("127.0.0.1:", sentinel->port()));
  }
  return absl::StrCat("redis-sentinel://", absl::StrJoin(addresses, ","), "/",
                      options_.master_name);
}

int SentinelGroup::MasterIndex(absl::Duration timeout) {
  int found = -1;
  PollUntil(
      [&] {
        for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
          if (!nodes_[i]->running()) continue;
          auto role = nodes_[i]->Command({"ROLE"});
          if (role.ok() && absl::StartsWith(*role, "master\n")) {
            found = i;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

absl::Status SentinelGroup::WaitForMaster(int i, absl::Duration timeout) {
  const std::string expected = absl::StrCat("127.0.0.1\n", nodes_[i]->port());
  std::string last;
  const bool ok = PollUntil(
      [&] {
        for (auto& sentinel : sentinels_) {
          if (!sentinel->running()) continue;
          auto addr = sentinel->Command(
              {"SENTINEL", "get-master-addr-by-name", options_.master_name});
          if (!addr.ok() || *addr != expected) {
            last = absl::StrCat("sentinel ", sentinel->port(), " says ",
                                addr.ok() ? *addr : addr.status().ToString());
            return false;
          }
        }
        auto role = nodes_[i]->Command({"ROLE"});
        if (!role.ok() || !absl::StartsWith(*role, "master\n")) {
          last = "the node's ROLE is not master yet";
          return false;
        }
        return true;
      },
      timeout);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("node ", i, " did not become the master: ", last));
}

absl::Status SentinelGroup::RestartAsReplica(int i, int master,
                                             absl::Duration timeout) {
  absl::Status restarted = nodes_[i]->Restart();
  if (!restarted.ok()) return restarted;
  auto replicaof = nodes_[i]->Command(
      {"REPLICAOF", "127.0.0.1", absl::StrCat(nodes_[master]->port())});
  if (!replicaof.ok()) return replicaof.status();
  const bool synced = PollUntil(
      [&] {
        auto info = nodes_[master]->Command({"INFO", "replication"});
        return info.ok() &&
               absl::StrContains(*info, absl::StrCat("port=", nodes_[i]->port(),
                                                     ",state=online"));
      },
      timeout);
  if (!synced)
    return absl::DeadlineExceededError("the restarted node did not sync");
  return absl::OkStatus();
}

absl::Status SentinelGroup::WaitForReplication(int i, absl::Duration timeout) {
  const int master = MasterIndex();
  if (master < 0) return absl::FailedPreconditionError("no master");
  auto info = nodes_[master]->Command({"INFO", "replication"});
  if (!info.ok()) return info.status();
  int64_t target = 0;
  if (!absl::SimpleAtoi(InfoField(*info, "master_repl_offset"), &target)) {
    return absl::InternalError("no master_repl_offset");
  }
  const bool ok = PollUntil(
      [&] {
        auto replica = nodes_[i]->Command({"INFO", "replication"});
        int64_t offset = 0;
        return replica.ok() &&
               absl::SimpleAtoi(InfoField(*replica, "slave_repl_offset"),
                                &offset) &&
               offset >= target;
      },
      timeout);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError("the replica did not catch up");
}

}  // namespace corral::testing
