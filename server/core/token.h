// Secrets corrald hands out: lock tokens, what proves a caller holds a
// key's lock (section 4 of docs/ARCHITECTURE.md: the fill and release
// scripts compare it), and the near cache's session ids.
#ifndef CORRAL_SERVER_CORE_TOKEN_H_
#define CORRAL_SERVER_CORE_TOKEN_H_

#include <string>

namespace corral {

// 128 bits from the kernel's CSPRNG (getrandom(2)), as 32 hex digits, so
// only the holder can renew or release. Aborts rather than hand out a
// guessable token. Any thread.
std::string NewLockToken();

// 16 raw bytes from the kernel's CSPRNG (getrandom(2)); aborts rather than
// return guessable ones. Any thread.
std::string SecretBytes16();

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_TOKEN_H_
