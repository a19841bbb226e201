// Ports for servers that tests start. Prefer binding port 0 and reading the
// port back; this is for programs that must be told a port (redis-server).
#ifndef CORRAL_TESTS_SUPPORT_FREE_PORT_H_
#define CORRAL_TESTS_SUPPORT_FREE_PORT_H_

namespace corral::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
int PickFreePort();

// A port on 127.0.0.1 that nothing listens on for this object's lifetime:
// it is bound (so no other process can take it) but never listened on, so a
// connection to it is refused. For tests of unreachable servers.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_FREE_PORT_H_
