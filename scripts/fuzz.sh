#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and
# runs each for SECONDS (default 30) on the corpus in tests/fuzz/corpus/.
# Finds are written to build-fuzz/findings/. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
"$root/scripts/deps.sh"
build=$root/build-fuzz
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCORRAL_FUZZ=ON -DCORRAL_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target validation_fuzz config_fuzz -j "$(nproc)"
mkdir -p "$build/findings"
for target in validation_fuzz config_fuzz; do
  corpus=$root/tests/fuzz/corpus/${target%_fuzz}
  work=$build/corpus/${target%_fuzz}
  mkdir -p "$work"
  echo "fuzz: $target for ${seconds}s"
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -artifact_prefix="$build/findings/$target-" -print_final_stats=1 "$work" "$corpus" 2>&1 |
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)" || true
  # A crash leaves an artifact behind: that fails the run.
  if compgen -G "$build/findings/$target-*" >/dev/null; then
    echo "fuzz: $target found a crash: $(ls "$build/findings/$target-"*)" >&2
    exit 1
  fi
done
