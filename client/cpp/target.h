// Where a gRPC target leads, as far as the client can tell before dialing.
#ifndef CORRAL_CLIENT_CPP_TARGET_H_
#define CORRAL_CLIENT_CPP_TARGET_H_

#include "absl/strings/string_view.h"

namespace corral::client {

// True when `target` can only reach this host: unix: and unix-abstract:
// sockets, "localhost", 127.0.0.0/8 and ::1 (also ::ffff:127.x.y.z), written
// as host[:port], [v6]:port, dns:[//authority/]host:port, or ipv4:/ipv6:
// address lists whose every address is loopback. Anything else -- other
// names (they may resolve anywhere), other addresses, other resolvers
// (xds:, passthrough:) -- is not. Pure; any thread.
bool IsLoopbackTarget(absl::string_view target);

}  // namespace corral::client

#endif  // CORRAL_CLIENT_CPP_TARGET_H_
