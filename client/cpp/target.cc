#include "client/cpp/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace corral::client {
namespace {

bool IsLoopbackHost(absl::string_view host) {
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t end = host.find(']');
    if (end == absl::string_view::npos) return false;
    host = host.substr(0, end);
  }
  host = host.substr(0, host.find('%'));  // An IPv6 zone: fe80::1%eth0.
  const std::string text(host);
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "localhost" || lower == "localhost.") return true;
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;  // Any other name may resolve beyond this host.
}

// The host of host:port, [v6]:port, a bare IPv6 address or a bare host.
absl::string_view StripPort(absl::string_view address) {
  if (absl::StartsWith(address, "[")) return address;
  if (std::count(address.begin(), address.end(), ':') == 1) {
    return address.substr(0, address.rfind(':'));
  }
  return address;
}

// "scheme:" other than the ones IsLoopbackTarget reads; "host:50051" is not.
bool HasOtherScheme(absl::string_view t) {
  if (absl::StrContains(t, "://")) return true;
  if (t.empty() || !absl::ascii_islower(t[0])) return false;
  size_t i = 0;
  while (i < t.size() &&
         (absl::ascii_islower(t[i]) || absl::ascii_isdigit(t[i]) ||
          t[i] == '+' || t[i] == '.' || t[i] == '-')) {
    ++i;
  }
  return i < t.size() && t[i] == ':' &&
         (i + 1 == t.size() || !absl::ascii_isdigit(t[i + 1]));
}

}  // namespace

bool IsLoopbackTarget(absl::string_view target) {
  absl::string_view t = absl::StripAsciiWhitespace(target);
  if (absl::StartsWith(t, "unix:") || absl::StartsWith(t, "unix-abstract:"))
    return true;
  if (absl::ConsumePrefix(&t, "ipv4:") || absl::ConsumePrefix(&t, "ipv6:")) {
    std::vector<absl::string_view> addresses = absl::StrSplit(t, ',');
    return std::all_of(
        addresses.begin(), addresses.end(),
        [](absl::string_view a) { return IsLoopbackHost(StripPort(a)); });
  }
  if (absl::ConsumePrefix(&t, "dns:")) {
    if (absl::ConsumePrefix(&t, "//")) {  // dns://authority/host:port
      const size_t slash = t.find('/');
      t = slash == absl::string_view::npos ? absl::string_view()
                                           : t.substr(slash + 1);
    }
  } else if (HasOtherScheme(t)) {
    return false;
  }
  return !t.empty() && IsLoopbackHost(StripPort(t));
}

}  // namespace corral::client
