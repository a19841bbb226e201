// Lock tokens: what proves a caller holds a key's lock (section 4 of
// docs/ARCHITECTURE.md: the fill and release scripts compare it).
#ifndef CORRAL_SERVER_CORE_TOKEN_H_
#define CORRAL_SERVER_CORE_TOKEN_H_

#include <string>

namespace corral {

// 128 bits from the kernel's CSPRNG (getrandom(2)), as 32 hex digits, so
// only the holder can renew or release. Aborts rather than hand out a
// guessable token. Any thread.
std::string NewLockToken();

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_TOKEN_H_
