#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite. Every
# server a test needs (redis-server, corrald) is started by the test itself.
#   scripts/test.sh             normal build in build/
#   scripts/test.sh --sanitize  AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
cmake_args=()
if [[ ${1:-} == --sanitize ]]; then
  build=$root/build-asan
  cmake_args=(-DCORRAL_SANITIZE=ON)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/sanitizer/lsan.supp}
fi
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$build" "${cmake_args[@]}"
cd "$build"
ctest --output-on-failure --timeout 600 -j 2
