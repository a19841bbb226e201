// Ports for servers that tests start. Prefer binding port 0 and reading the
// port back; this is for programs that must be told a port (redis-server).
#ifndef CORRAL_TESTS_SUPPORT_FREE_PORT_H_
#define CORRAL_TESTS_SUPPORT_FREE_PORT_H_

namespace corral::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
int PickFreePort();

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_FREE_PORT_H_
