#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite. Every
# server a test needs (redis-server, corrald) is started by the test itself.
#   scripts/test.sh             normal build in build/
#   scripts/test.sh --sanitize  AddressSanitizer + UBSan build in build-asan/
#   scripts/test.sh --tsan      ThreadSanitizer build in build-tsan/ against
#                               an abseil built with TSan
#                               (scripts/tsan_abseil.sh); runs the core and
#                               store tests (the event loop, the Coordinator's
#                               parts, the stores and their connection
#                               threads). See README "ThreadSanitizer".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
cmake_args=()
ctest_args=()
if [[ ${1:-} == --sanitize ]]; then
  build=$root/build-asan
  cmake_args=(-DCORRAL_SANITIZE=ON)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/sanitizer/lsan.supp}
elif [[ ${1:-} == --tsan ]]; then
  build=$root/build-tsan
  cmake_args=(-DCORRAL_TSAN=ON)
  ctest_args=(-L 'core|store' -LE 'python|node')
  # TSan sees a lock only in instrumented code: Debian's libabsl is not, so
  # the run loads an instrumented build of the same abseil (same SONAMEs).
  tsan_abseil=$root/build-tsan-abseil
  # halt_on_error: a race fails its test (corrald started by an end-to-end
  # test dies, and the test sees it).
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizer/tsan.supp}
fi
"$root/scripts/deps.sh"
[[ -z ${tsan_abseil:-} ]] || "$root/scripts/tsan_abseil.sh" "$tsan_abseil"
"$root/scripts/build.sh" "$build" "${cmake_args[@]}"
cd "$build"
# Only the tests load it: the build's own tools (protoc, the gRPC plugin)
# are not built with TSan.
[[ -z ${tsan_abseil:-} ]] ||
  export LD_LIBRARY_PATH=$tsan_abseil/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ctest --output-on-failure --timeout 600 -j 2 "${ctest_args[@]}"
