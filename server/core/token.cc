#include "server/core/token.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

namespace corral {

std::string SecretBytes16() {
  // absl::BitGen is fast but not meant for secrets.
  char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      // Never hand out a guessable secret.
      std::fprintf(stderr, "corrald: getrandom failed: %s\n",
                   std::strerror(errno));
      std::abort();
    }
  }
  return std::string(bytes, sizeof(bytes));
}

std::string NewLockToken() { return absl::BytesToHexString(SecretBytes16()); }

}  // namespace corral
