// Whether this build runs under AddressSanitizer (CORRAL_SANITIZE=ON,
// scripts/test.sh --sanitize). Code there runs several times slower, and
// the machine is shared, so an assertion that a step was fast ("answered in
// under 100 ms", i.e. it did not wait for a timeout) is checked only
// without it. Tests assert orders (this before that) and outcomes; a
// wall-time bound is a last resort, and goes behind this.
#ifndef CORRAL_TESTS_SUPPORT_SANITIZERS_H_
#define CORRAL_TESTS_SUPPORT_SANITIZERS_H_

namespace corral::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace corral::testing

#endif  // CORRAL_TESTS_SUPPORT_SANITIZERS_H_
