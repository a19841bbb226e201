#include "tests/support/redis_cluster.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/support/free_port.h"
#include "tests/support/poll.h"

namespace corral::testing {
namespace {

constexpr int kNodes = 6;

std::string RedisCliBinary() {
  const char* env = std::getenv("CORRAL_REDIS_CLI");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/redis-cli";
}

std::string InfoField(const std::string& info, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, absl::ByAnyChar("\r\n"))) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      return std::string(line);
    }
  }
  return "";
}

// The ports of the masters that serve slots, from CLUSTER NODES:
// "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <state>
// <slot ranges...>".
std::vector<int> ServingPorts(const std::string& nodes) {
  std::vector<int> ports;
  for (absl::string_view line :
       absl::StrSplit(nodes, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() < 9 || !absl::StrContains(f[2], "master") ||
        absl::StrContains(f[2], "fail")) {
      continue;
    }
    absl::string_view address = f[1].substr(0, f[1].find('@'));
    int port = 0;
    if (absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port))
      ports.push_back(port);
  }
  return ports;
}

RedisServer::Options NodeOptions(const RedisCluster::Options& options) {
  RedisServer::Options server;
  // The bus port is chosen too: port + 10000 may be taken or invalid.
  server.args = {"--cluster-enabled",
                 "yes",
                 "--cluster-config-file",
                 "nodes.conf",
                 "--cluster-node-timeout",
                 absl::StrCat(absl::ToInt64Milliseconds(options.node_timeout)),
                 "--cluster-port",
                 absl::StrCat(PickFreePort()),
                 "--repl-diskless-sync-delay",
                 "0"};
  return server;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(
    Options options) {
  std::unique_ptr<RedisCluster> cluster(new RedisCluster());
  for (int i = 0; i < kNodes; ++i) {
    RedisServer::Options server;
    // The bus port is chosen too: port + 10000 may be taken or invalid.
    server.args = {
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        absl::StrCat(absl::ToInt64Milliseconds(options.node_timeout)),
        "--cluster-port",
        absl::StrCat(PickFreePort()),
        "--repl-diskless-sync-delay",
        "0"};
    auto node = RedisServer::Start(server);
    if (!node.ok()) return node.status();
    cluster->nodes_.push_back(*std::move(node));
  }
  SubprocessOptions create;
  create.argv = {RedisCliBinary(), "--cluster", "create"};
  for (const auto& node : cluster->nodes_)
    create.argv.push_back(absl::StrCat("127.0.0.1:", node->port()));
  create.argv.insert(create.argv.end(),
                     {"--cluster-replicas", "1", "--cluster-yes"});
  auto cli = Subprocess::Start(create);
  if (!cli.ok()) return cli.status();
  auto exit = (*cli)->Wait(absl::Seconds(30));
  if (!exit.ok()) return exit.status();
  if (!exit->success()) {
    return absl::InternalError(
        absl::StrCat("redis-cli --cluster create: ", exit->ToString(), "\n",
                     (*cli)->DescribeOutput()));
  }
  absl::Status ok = cluster->WaitUntilOk(absl::Seconds(30));
  if (!ok.ok()) return ok;
  // Every replica in sync, so that a failover loses nothing written since.
  std::string last;
  const bool synced = PollUntil(
      [&] {
        for (const auto& node : cluster->nodes_) {
          auto info = node->Command({"INFO", "replication"});
          if (!info.ok()) return false;
          if (InfoField(*info, "role") == "slave" &&
              InfoField(*info, "master_link_status") != "up") {
            last = absl::StrCat(node->port(), " not in sync");
            return false;
          }
        }
        return true;
      },
      absl::Seconds(30));
  if (!synced) return absl::DeadlineExceededError(last);
  return cluster;
}

std::string RedisCluster::uri() const {
  std::vector<std::string> addresses;
  for (const auto& node : nodes_)
    addresses.push_back(absl::StrCat("127.0.0.1:", node->port()));
  return absl::StrCat("redis-cluster://", absl::StrJoin(addresses, ","));
}

int RedisCluster::IndexOfPort(int port) const {
  for (int i = 0; i < size(); ++i)
    if (nodes_[i]->port() == port) return i;
  return -1;
}

RedisServer* RedisCluster::AnyLive() {
  for (auto& node : nodes_)
    if (node->running()) return node.get();
  return nullptr;
}

std::vector<int> RedisCluster::Masters() {
  std::vector<int> masters;
  RedisServer* asked = AnyLive();
  if (asked == nullptr) return masters;
  auto nodes = asked->Command({"CLUSTER", "NODES"});
  if (!nodes.ok()) return masters;
  for (int port : ServingPorts(*nodes)) {
    const int i = IndexOfPort(port);
    if (i >= 0 && nodes_[i]->running()) masters.push_back(i);
  }
  return masters;
}

int RedisCluster::OwnerOfKey(const std::string& key) {
  RedisServer* asked = AnyLive();
  if (asked == nullptr) return -1;
  auto slot_text = asked->Command({"CLUSTER", "KEYSLOT", key});
  auto slots = asked->Command({"CLUSTER", "SLOTS"});
  int slot = 0;
  if (!slot_text.ok() || !slots.ok() || !absl::SimpleAtoi(*slot_text, &slot))
    return -1;
  // The reply flattened: start, end, host, port, id, (replica host, port,
  // id)..., next range. A range is "start end 127.0.0.1 port".
  std::vector<std::string> f = absl::StrSplit(*slots, '\n');
  for (size_t j = 0; j + 3 < f.size(); ++j) {
    int start = 0;
    int end = 0;
    int port = 0;
    if (absl::SimpleAtoi(f[j], &start) && absl::SimpleAtoi(f[j + 1], &end) &&
        f[j + 2] == "127.0.0.1" && absl::SimpleAtoi(f[j + 3], &port) &&
        start <= slot && slot <= end) {
      return IndexOfPort(port);
    }
  }
  return -1;
}

absl::StatusOr<std::string> RedisCluster::NodeId(int i) {
  return nodes_[i]->Command({"CLUSTER", "MYID"});
}

int RedisCluster::ReplicaOf(int master) {
  auto id = NodeId(master);
  if (!id.ok()) return -1;
  for (int i = 0; i < size(); ++i) {
    if (i == master || !nodes_[i]->running()) continue;
    auto info = nodes_[i]->Command({"INFO", "replication"});
    if (info.ok() && InfoField(*info, "role") == "slave" &&
        InfoField(*info, "master_port") ==
            absl::StrCat(nodes_[master]->port())) {
      return i;
    }
  }
  return -1;
}

absl::Status RedisCluster::WaitUntilOk(absl::Duration timeout) {
  std::string last;
  const bool ok = PollUntil(
      [&] {
        std::vector<int> expected;
        for (auto& node : nodes_) {
          if (!node->running()) continue;
          auto info = node->Command({"CLUSTER", "INFO"});
          if (!info.ok() || InfoField(*info, "cluster_state") != "ok") {
            last = absl::StrCat(node->port(), ": ",
                                info.ok() ? *info : info.status().ToString());
            return false;
          }
          auto nodes = node->Command({"CLUSTER", "NODES"});
          if (!nodes.ok()) return false;
          std::vector<int> serving = ServingPorts(*nodes);
          std::sort(serving.begin(), serving.end());
          if (expected.empty()) expected = serving;
          if (serving != expected || serving.size() < 3) {
            last = absl::StrCat(node->port(), " sees masters ",
                                absl::StrJoin(serving, ","));
            return false;
          }
        }
        return true;
      },
      timeout);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat("cluster not ok: ", last));
}

absl::Status RedisCluster::WaitForFailover(int old_master,
                                           absl::Duration timeout) {
  const int port = nodes_[old_master]->port();
  std::string last;
  const bool done = PollUntil(
      [&] {
        RedisServer* asked = AnyLive();
        if (asked == nullptr) return false;
        auto info = asked->Command({"CLUSTER", "INFO"});
        if (!info.ok() || InfoField(*info, "cluster_state") != "ok") {
          last = info.ok() ? *info : info.status().ToString();
          return false;
        }
        auto nodes = asked->Command({"CLUSTER", "NODES"});
        if (!nodes.ok()) return false;
        for (int serving : ServingPorts(*nodes)) {
          if (serving == port) {
            last = "the old master still serves slots";
            return false;
          }
        }
        return true;
      },
      timeout);
  if (done) return WaitUntilOk(timeout);
  return absl::DeadlineExceededError(absl::StrCat("no failover: ", last));
}

absl::Status RedisCluster::RestartAsReplica(int i, absl::Duration timeout) {
  absl::Status restarted = nodes_[i]->Restart();
  if (!restarted.ok()) return restarted;
  std::string last;
  const bool synced = PollUntil(
      [&] {
        auto info = nodes_[i]->Command({"INFO", "replication"});
        if (!info.ok()) return false;
        last = *info;
        return InfoField(*info, "role") == "slave" &&
               InfoField(*info, "master_link_status") == "up";
      },
      timeout);
  if (!synced) {
    return absl::DeadlineExceededError(
        absl::StrCat("node ", nodes_[i]->port(), " did not rejoin: ", last));
  }
  return WaitUntilOk(timeout);
}

absl::StatusOr<int> RedisCluster::AddMaster(absl::Duration timeout) {
  auto node = RedisServer::Start(NodeOptions(options_));
  if (!node.ok()) return node.status();
  const int index = size();
  const int port = (*node)->port();
  nodes_.push_back(*std::move(node));
  RedisServer* existing = nullptr;
  for (int i = 0; i < index && existing == nullptr; ++i)
    if (nodes_[i]->running()) existing = nodes_[i].get();
  if (existing == nullptr) return absl::FailedPreconditionError("no live node");
  SubprocessOptions add;
  add.argv = {RedisCliBinary(), "--cluster", "add-node",
              absl::StrCat("127.0.0.1:", port),
              absl::StrCat("127.0.0.1:", existing->port())};
  auto cli = Subprocess::Start(add);
  if (!cli.ok()) return cli.status();
  auto exit = (*cli)->Wait(timeout);
  if (!exit.ok()) return exit.status();
  if (!exit->success()) {
    return absl::InternalError(
        absl::StrCat("redis-cli --cluster add-node: ", exit->ToString(), "\n",
                     (*cli)->DescribeOutput()));
  }
  const std::string needle = absl::StrCat("127.0.0.1:", port, "@");
  const bool known = PollUntil(
      [&] {
        for (auto& n : nodes_) {
          if (!n->running()) continue;
          auto nodes = n->Command({"CLUSTER", "NODES"});
          if (!nodes.ok() || !absl::StrContains(*nodes, needle)) return false;
        }
        return true;
      },
      timeout);
  if (!known) return absl::DeadlineExceededError("the new node is not known");
  return index;
}

absl::StatusOr<std::unique_ptr<Subprocess>> RedisCluster::StartReshard(
    int from, int to, int slots) {
  auto from_id = NodeId(from);
  auto to_id = NodeId(to);
  if (!from_id.ok()) return from_id.status();
  if (!to_id.ok()) return to_id.status();
  SubprocessOptions reshard;
  reshard.argv = {RedisCliBinary(),
                  "--cluster",
                  "reshard",
                  absl::StrCat("127.0.0.1:", nodes_[from]->port()),
                  "--cluster-from",
                  *from_id,
                  "--cluster-to",
                  *to_id,
                  "--cluster-slots",
                  absl::StrCat(slots),
                  "--cluster-yes",
                  "--cluster-pipeline",
                  "100"};
  return Subprocess::Start(reshard);
}

}  // namespace corral::testing
