#include "client/bench/probes.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace corral::bench {
namespace {

// The lines `command` prints, or nothing when it cannot run.
std::vector<std::string> Lines(const std::string& command) {
  std::vector<std::string> lines;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return lines;
  char buf[4096];
  while (fgets(buf, sizeof buf, pipe) != nullptr) {
    lines.emplace_back(absl::StripTrailingAsciiWhitespace(buf));
  }
  pclose(pipe);
  return lines;
}

}  // namespace

std::map<std::string, long> RedisCommandStats(int port) {
  std::map<std::string, long> stats;
  for (const std::string& line :
       Lines(absl::StrCat("redis-cli -p ", port, " INFO commandstats"))) {
    // cmdstat_evalsha:calls=12,usec=...
    absl::string_view l = line;
    if (!absl::ConsumePrefix(&l, "cmdstat_")) continue;
    const size_t colon = l.find(':');
    const size_t calls = l.find("calls=");
    if (colon == l.npos || calls == l.npos) continue;
    absl::string_view n = l.substr(calls + 6);
    n = n.substr(0, n.find(','));
    long v = 0;
    if (absl::SimpleAtoi(n, &v)) stats[std::string(l.substr(0, colon))] = v;
  }
  return stats;
}

std::map<std::string, long> CommandDelta(
    const std::map<std::string, long>& before,
    const std::map<std::string, long>& after) {
  std::map<std::string, long> delta;
  for (const auto& [cmd, n] : after) {
    if (cmd == "info" || cmd.rfind("config", 0) == 0) continue;
    auto it = before.find(cmd);
    const long d = n - (it == before.end() ? 0 : it->second);
    if (d != 0) delta[cmd] = d;
  }
  return delta;
}

std::string FormatCommandDelta(const std::map<std::string, long>& delta,
                               long callers) {
  long total = 0;
  std::string detail;
  for (const auto& [cmd, n] : delta) {
    total += n;
    absl::StrAppend(&detail, " ", cmd, "=", n);
  }
  char head[96];
  std::snprintf(head, sizeof head, "redis_commands=%ld per_caller=%.4f:", total,
                callers > 0
                    ? static_cast<double>(total) / static_cast<double>(callers)
                    : 0.0);
  return absl::StrCat(head, detail);
}

long RssKiB(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      long kib = 0;
      std::istringstream(line.substr(6)) >> kib;
      return kib;
    }
  }
  return -1;
}

std::optional<double> ScrapeMetric(const std::string& address,
                                   const std::string& metric,
                                   const std::string& label_filter) {
  std::optional<double> sum;
  for (const std::string& line : Lines(absl::StrCat(
           "curl -sf --max-time 5 http://", address, "/metrics"))) {
    // name{labels} value   or   name value
    if (line.empty() || line[0] == '#' || line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    if (!label_filter.empty() &&
        line.substr(0, space).find(label_filter) == line.npos)
      continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(space + 1), &v)) sum = sum.value_or(0) + v;
  }
  return sum;
}

absl::Duration Quantile(std::vector<absl::Duration>& samples, double q) {
  if (samples.empty()) return absl::ZeroDuration();
  std::sort(samples.begin(), samples.end());
  const size_t i =
      static_cast<size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
  return samples[std::min(i, samples.size() - 1)];
}

}  // namespace corral::bench
