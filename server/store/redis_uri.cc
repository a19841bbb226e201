#include "server/store/redis_uri.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace corral {
namespace {

absl::Status UriError(absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid Redis URI: ", problem));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// `what` names the part in errors, so the text itself (a password) is never
// quoted back.
absl::StatusOr<std::string> PercentDecode(absl::string_view text,
                                          absl::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int hi = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return UriError(absl::StrCat(what, " has a malformed percent-escape"));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// [user[:password]]: the part before the authority's last '@'.
absl::Status ParseUserinfo(absl::string_view userinfo, RedisOptions& options) {
  const size_t colon = userinfo.find(':');
  auto user = PercentDecode(userinfo.substr(0, colon), "user");
  if (!user.ok()) return user.status();
  if (colon == absl::string_view::npos) {
    // user@: an ACL user whose password comes from elsewhere (a file or
    // the environment), so that it stays out of process listings.
    if (user->empty()) return UriError("the user before '@' is empty");
    options.user = *std::move(user);
    return absl::OkStatus();
  }
  auto password = PercentDecode(userinfo.substr(colon + 1), "password");
  if (!password.ok()) return password.status();
  if (password->empty()) return UriError("the password after ':' is empty");
  options.user = *std::move(user);
  options.password = *std::move(password);
  return absl::OkStatus();
}

// " (sentinel 2)" after a message about one of several addresses.
std::string Where(absl::string_view what) {
  return what.empty() ? std::string() : absl::StrCat(" (", what, ")");
}

// host[:port] or [v6]:port; `what` names it in errors ("sentinel 2"), or
// is empty when there is only one address.
absl::StatusOr<RedisAddress> ParseHostPort(absl::string_view authority,
                                           int default_port,
                                           absl::string_view what) {
  RedisAddress address;
  address.port = default_port;
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return UriError(
          absl::StrCat("'[' of an IPv6 host is not closed", Where(what)));
    }
    address.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return UriError(
            absl::StrCat("unexpected text after the IPv6 host", Where(what)));
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        return UriError(
            absl::StrCat("the port after ':' is empty", Where(what)));
      }
    }
  } else {
    const size_t colon = authority.find(':');
    address.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        return UriError(
            absl::StrCat("the port after ':' is empty", Where(what)));
      }
    }
  }
  if (address.host.empty())
    return UriError(absl::StrCat("the host is missing", Where(what)));
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535 ||
        !absl::ascii_isdigit(static_cast<unsigned char>(port_text[0]))) {
      // Not quoted: a mistyped password can end up here.
      return UriError(
          absl::StrCat("the port is not a number in 1..65535", Where(what)));
    }
    address.port = port;
  }
  return address;
}

absl::StatusOr<int> ParseDb(absl::string_view db_text, absl::string_view what) {
  int db = 0;
  if (!absl::SimpleAtoi(db_text, &db) || db < 0 ||
      !absl::ascii_isdigit(static_cast<unsigned char>(db_text[0]))) {
    return UriError(
        absl::StrCat("the database (", what, ") is not a non-negative number"));
  }
  return db;
}

// Splits "userinfo@rest" at the authority's last '@' (a raw '@' in a
// password is then still taken as part of the password).
absl::Status TakeUserinfo(absl::string_view& authority, RedisOptions& options) {
  const size_t at = authority.rfind('@');
  if (at == absl::string_view::npos) return absl::OkStatus();
  absl::Status status = ParseUserinfo(authority.substr(0, at), options);
  authority = authority.substr(at + 1);
  return status;
}

constexpr int kDefaultSentinelPort = 26379;

absl::StatusOr<RedisOptions> ParseSentinelUri(absl::string_view rest) {
  RedisOptions options;
  options.host.clear();
  options.port = 0;
  absl::string_view query;
  if (const size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.find('#') != absl::string_view::npos ||
      query.find('#') != absl::string_view::npos) {
    return UriError("fragments are not supported");
  }
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return UriError("the master name (after '/') is missing");
  }
  absl::string_view authority = rest.substr(0, slash);
  absl::string_view master = rest.substr(slash + 1);
  if (absl::Status s = TakeUserinfo(authority, options); !s.ok()) return s;

  if (authority.empty()) return UriError("no sentinel address before '/'");
  int index = 0;
  for (absl::string_view part : absl::StrSplit(authority, ',')) {
    ++index;
    auto address = ParseHostPort(part, kDefaultSentinelPort,
                                 absl::StrCat("sentinel ", index));
    if (!address.ok()) return address.status();
    options.sentinels.push_back(*std::move(address));
  }

  auto name = PercentDecode(master, "master name");
  if (!name.ok()) return name.status();
  if (name->empty()) return UriError("the master name (after '/') is missing");
  if (absl::StrContains(*name, '/'))
    return UriError("the master name contains '/'");
  options.master_name = *std::move(name);
  // Sentinel deployments have replicas that may be promoted: by default a
  // grant waits until one of them holds it.
  options.min_replica_acks = 1;

  bool seen_db = false;
  bool seen_password = false;
  if (!query.empty()) {
    for (absl::string_view param : absl::StrSplit(query, '&')) {
      const size_t eq = param.find('=');
      const absl::string_view key = param.substr(0, eq);
      const absl::string_view value = eq == absl::string_view::npos
                                          ? absl::string_view()
                                          : param.substr(eq + 1);
      if (key == "db") {
        if (seen_db) return UriError("query parameter db is given twice");
        seen_db = true;
        if (value.empty()) return UriError("the database (db=) is empty");
        auto db = ParseDb(value, "db=");
        if (!db.ok()) return db.status();
        options.db = *db;
      } else if (key == "sentinel_password") {
        if (seen_password)
          return UriError("query parameter sentinel_password is given twice");
        seen_password = true;
        auto password = PercentDecode(value, "sentinel_password");
        if (!password.ok()) return password.status();
        if (password->empty()) return UriError("sentinel_password is empty");
        options.sentinel_password = *std::move(password);
      } else {
        // Not quoted in full: the key may be a mistyped password.
        return UriError(
            "unknown query parameter (supported: db, sentinel_password)");
      }
    }
  }
  return options;
}

absl::StatusOr<RedisOptions> ParseClusterUri(absl::string_view rest) {
  RedisOptions options;
  options.host.clear();
  options.port = 0;
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return UriError(
        "redis-cluster:// takes no query parameters or fragments (a cluster "
        "has only database 0)");
  }
  if (const size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    if (rest.substr(slash) != "/") {
      return UriError(
          "redis-cluster:// takes no path (a cluster has only database 0)");
    }
    rest = rest.substr(0, slash);
  }
  absl::string_view authority = rest;
  if (absl::Status s = TakeUserinfo(authority, options); !s.ok()) return s;
  if (authority.empty()) return UriError("no cluster node address");
  int index = 0;
  for (absl::string_view part : absl::StrSplit(authority, ',')) {
    ++index;
    const std::string what = absl::StrCat("cluster node ", index);
    // The port is required: a cluster has no default port worth guessing.
    const bool has_port = !part.empty() && part.back() != ']' &&
                          part.rfind(':') != absl::string_view::npos;
    if (!has_port && !part.empty()) {
      return UriError(absl::StrCat("the port of ", what, " is missing"));
    }
    auto address = ParseHostPort(part, 6379, what);
    if (!address.ok()) return address.status();
    options.cluster_nodes.push_back(*std::move(address));
  }
  // Every master of a cluster set up for failover has a replica that may be
  // promoted: by default a grant waits until one of them holds it.
  options.min_replica_acks = 1;
  return options;
}

}  // namespace

std::string RedisOptions::Describe() const {
  std::string auth;
  if (!user.empty() || !password.empty()) {
    auth = absl::StrCat(user, password.empty() ? "" : ":***", "@");
  }
  auto address = [](const std::string& h, int p) {
    const bool v6 = absl::StrContains(h, ':');
    return absl::StrCat(v6 ? "[" : "", h, v6 ? "]" : "", ":", p);
  };
  if (sentinel()) {
    std::vector<std::string> parts;
    for (const RedisAddress& s : sentinels)
      parts.push_back(address(s.host, s.port));
    std::string text =
        absl::StrCat("redis-sentinel://", auth, absl::StrJoin(parts, ","), "/",
                     master_name, "?db=", db);
    if (!sentinel_password.empty())
      absl::StrAppend(&text, "&sentinel_password=***");
    if (!host.empty())
      absl::StrAppend(&text, " (master ", address(host, port), ")");
    return text;
  }
  if (cluster()) {
    std::vector<std::string> parts;
    for (const RedisAddress& n : cluster_nodes)
      parts.push_back(address(n.host, n.port));
    return absl::StrCat("redis-cluster://", auth, absl::StrJoin(parts, ","));
  }
  return absl::StrCat("redis://", auth, address(host, port), "/", db);
}

absl::StatusOr<RedisOptions> ParseRedisUri(absl::string_view uri) {
  constexpr absl::string_view kScheme = "redis://";
  constexpr absl::string_view kSentinelScheme = "redis-sentinel://";
  constexpr absl::string_view kClusterScheme = "redis-cluster://";
  if (absl::StartsWithIgnoreCase(uri, "rediss://")) {
    return UriError("rediss:// (TLS) is not supported by this build");
  }
  if (absl::StartsWithIgnoreCase(uri, kSentinelScheme)) {
    return ParseSentinelUri(uri.substr(kSentinelScheme.size()));
  }
  if (absl::StartsWithIgnoreCase(uri, kClusterScheme)) {
    return ParseClusterUri(uri.substr(kClusterScheme.size()));
  }
  if (!absl::StartsWithIgnoreCase(uri, kScheme)) {
    return UriError(
        "must start with redis://, redis-sentinel:// or redis-cluster://");
  }
  absl::string_view rest = uri.substr(kScheme.size());
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return UriError("query parameters and fragments are not supported");
  }

  RedisOptions options;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos
                               ? absl::string_view()
                               : rest.substr(slash);
  if (absl::Status s = TakeUserinfo(authority, options); !s.ok()) return s;
  auto address = ParseHostPort(authority, 6379, "");
  if (!address.ok()) return address.status();
  options.host = std::move(address->host);
  options.port = address->port;

  if (path.size() > 1) {
    auto db = ParseDb(path.substr(1), "after '/'");
    if (!db.ok()) return db.status();
    options.db = *db;
  }
  return options;
}

}  // namespace corral
