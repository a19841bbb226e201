#include "tests/support/free_port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace corral::testing {
namespace {

// errno of a connect to 127.0.0.1:port (0 when it connected).
int ConnectErrno(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int rc =
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

TEST(ClosedPortTest, IsARealPortThatRefusesConnections) {
  ClosedPort closed;
  EXPECT_GT(closed.port(), 0);
  EXPECT_LE(closed.port(), 65535);
  EXPECT_EQ(ConnectErrno(closed.port()), ECONNREFUSED);
}

TEST(ClosedPortTest, TwoAreDifferent) {
  ClosedPort a;
  ClosedPort b;
  EXPECT_NE(a.port(), b.port());
}

}  // namespace
}  // namespace corral::testing
