#include "client/examples/http_post.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace corral::examples {
namespace {

struct Url {
  std::string host;
  std::string port;
  std::string path;
};

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "http://";
  if (!absl::StartsWith(url, kScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("only http:// URLs are supported: ", url));
  }
  url.remove_prefix(kScheme.size());
  Url out;
  const size_t slash = url.find('/');
  absl::string_view authority = url.substr(0, slash);
  out.path =
      slash == absl::string_view::npos ? "/" : std::string(url.substr(slash));
  const size_t colon = authority.rfind(':');
  out.host = std::string(authority.substr(0, colon));
  out.port = colon == absl::string_view::npos
                 ? "80"
                 : std::string(authority.substr(colon + 1));
  if (out.host.empty() || out.port.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("bad URL: http://", url));
  }
  return out;
}

// Owns a socket descriptor.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<std::unique_ptr<Socket>> Connect(const Url& url,
                                                absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc =
          ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("resolve ", url.host, ": ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(found,
                                                             ::freeaddrinfo);
  const timeval tv = absl::ToTimeval(timeout);
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
    auto sock = std::make_unique<Socket>(
        ::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
    if (sock->fd() < 0) {
      last = Errno("socket");
      continue;
    }
    ::setsockopt(sock->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(sock->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(sock->fd(), a->ai_addr, a->ai_addrlen) == 0) return sock;
    last = Errno(absl::StrCat("connect ", url.host, ":", url.port));
  }
  return last;
}

absl::Status SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HttpResponse> HttpPost(absl::string_view url_text,
                                      absl::string_view body,
                                      absl::Duration timeout) {
  absl::StatusOr<Url> url = ParseUrl(url_text);
  if (!url.ok()) return url.status();
  absl::StatusOr<std::unique_ptr<Socket>> sock = Connect(*url, timeout);
  if (!sock.ok()) return sock.status();

  const std::string request = absl::StrCat(
      "POST ", url->path, " HTTP/1.1\r\nHost: ", url->host, ":", url->port,
      "\r\nContent-Type: application/octet-stream\r\nContent-Length: ",
      body.size(), "\r\nConnection: close\r\n\r\n");
  if (absl::Status s = SendAll((*sock)->fd(), request); !s.ok()) return s;
  if (absl::Status s = SendAll((*sock)->fd(), body); !s.ok()) return s;

  // Connection: close, so the answer ends when the server closes.
  std::string raw;
  char buf[8192];
  while (true) {
    const ssize_t n = ::recv((*sock)->fd(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("recv");
    }
    raw.append(buf, static_cast<size_t>(n));
  }

  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::UnavailableError("malformed HTTP answer: no header end");
  }
  // "HTTP/1.1 200 OK"
  std::vector<absl::string_view> status_line =
      absl::StrSplit(absl::string_view(raw).substr(0, raw.find("\r\n")),
                     absl::MaxSplits(' ', 2));
  HttpResponse response;
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::UnavailableError("malformed HTTP status line");
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

}  // namespace corral::examples
