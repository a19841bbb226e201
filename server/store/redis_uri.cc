#include "server/store/redis_uri.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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

}  // namespace

std::string RedisOptions::Describe() const {
  std::string auth;
  if (!user.empty() || !password.empty()) {
    auth = absl::StrCat(user, password.empty() ? "" : ":***", "@");
  }
  const bool v6 = absl::StrContains(host, ':');
  return absl::StrCat("redis://", auth, v6 ? "[" : "", host, v6 ? "]" : "", ":",
                      port, "/", db);
}

absl::StatusOr<RedisOptions> ParseRedisUri(absl::string_view uri) {
  constexpr absl::string_view kScheme = "redis://";
  if (absl::StartsWithIgnoreCase(uri, "rediss://")) {
    return UriError("rediss:// (TLS) is not supported by this build");
  }
  if (!absl::StartsWithIgnoreCase(uri, kScheme)) {
    return UriError("must start with redis://");
  }
  absl::string_view rest = uri.substr(kScheme.size());
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return UriError("query parameters and fragments are not supported");
  }

  RedisOptions options;
  // The authority ends at the first '/'; userinfo ends at the last '@' in it
  // (a raw '@' in a password is then still taken as part of the password).
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos
                               ? absl::string_view()
                               : rest.substr(slash);

  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    auto user = PercentDecode(userinfo.substr(0, colon), "user");
    if (!user.ok()) return user.status();
    if (colon == absl::string_view::npos) {
      // user@: an ACL user whose password comes from elsewhere (a file or
      // the environment), so that it stays out of process listings.
      if (user->empty()) return UriError("the user before '@' is empty");
      options.user = *std::move(user);
    } else {
      auto password = PercentDecode(userinfo.substr(colon + 1), "password");
      if (!password.ok()) return password.status();
      if (password->empty()) {
        return UriError("the password after ':' is empty");
      }
      options.user = *std::move(user);
      options.password = *std::move(password);
    }
  }

  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return UriError("'[' of an IPv6 host is not closed");
    }
    options.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':')
        return UriError("unexpected text after the IPv6 host");
      port_text = after.substr(1);
      if (port_text.empty()) return UriError("the port after ':' is empty");
    }
  } else {
    const size_t colon = authority.find(':');
    options.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return UriError("the port after ':' is empty");
    }
  }
  if (options.host.empty()) return UriError("the host is missing");

  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535 ||
        !absl::ascii_isdigit(static_cast<unsigned char>(port_text[0]))) {
      // Not quoted: a mistyped password can end up here.
      return UriError("the port is not a number in 1..65535");
    }
    options.port = port;
  }

  if (path.size() > 1) {
    absl::string_view db_text = path.substr(1);
    int db = 0;
    if (!absl::SimpleAtoi(db_text, &db) || db < 0 ||
        !absl::ascii_isdigit(static_cast<unsigned char>(db_text[0]))) {
      return UriError("the database (after '/') is not a non-negative number");
    }
    options.db = db;
  }
  return options;
}

}  // namespace corral
