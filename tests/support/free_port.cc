#include "tests/support/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace corral::testing {

namespace {
// A TCP socket bound to a port the kernel picks on 127.0.0.1; *port is it.
int BindAnyPort(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) std::abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    std::abort();
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}
}  // namespace

int PickFreePort() {
  int port = 0;
  ::close(BindAnyPort(&port));
  return port;
}

// In the body: with BindAnyPort in fd_'s initializer, port_'s default
// initializer (it comes after fd_) would then reset the port to 0.
ClosedPort::ClosedPort() { fd_ = BindAnyPort(&port_); }

ClosedPort::~ClosedPort() { ::close(fd_); }

}  // namespace corral::testing
