#!/usr/bin/env bash
# Profiles corrald (tests/bench/PROFILE.md records a run):
#  1. perf record (DWARF call graphs) while corral-bench --mode=hits runs at
#     concurrency 64 (GetOrCompute, then Get) on a warm key;
#  2. perf record while 10,000 callers wait on one key and are filled;
#  3. heaptrack of a corrald that holds 10,000 waiters (peak consumers).
#   tests/bench/profile.sh [BUILD_DIR] [OUT_DIR]
# CORRALD=path overrides BUILD_DIR/server/corrald. Needs perf and heaptrack
# (scripts/deps.sh --bench). Reports land in OUT_DIR (default a temp dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
corrald_bin=${CORRALD:-$build/server/corrald}
bench=$build/client/bench/corral-bench
source "$here/lib.sh"
start_redis
# fresh_corrald [WRAPPER]: a new corrald on the shared Redis, maybe under heaptrack.
fresh_corrald() {
  WRAPPER=${1:-} start_corrald "$tmp/corrald.log" --redis="redis://127.0.0.1:$redis_port"
}
# perf_during NAME CMD...: perf record of corrald while CMD runs.
perf_during() {
  local name=$1; shift
  perf record -F 499 --call-graph dwarf,16384 -p "$corrald_pid" -o "$out/$name.perf.data" \
    2>"$out/$name.perf.log" &
  local perf=$!
  sleep 0.5
  "$@" | tee "$out/$name.bench.txt"
  kill -INT "$perf"; wait "$perf" || true
  perf report -i "$out/$name.perf.data" --no-children --percent-limit 0.7 --stdio \
    --sort dso,symbol -g none 2>/dev/null >"$out/$name.self.txt" || true
  perf report -i "$out/$name.perf.data" --children --percent-limit 3 --stdio \
    --sort symbol -g none 2>/dev/null >"$out/$name.children.txt" || true
}

fresh_corrald
perf_during hits-goc "$bench" --targets="$target" --mode=hits --rpc=get_or_compute \
  --concurrency=64 --duration_s=8
perf_during hits-get "$bench" --targets="$target" --mode=hits --rpc=get --concurrency=64 \
  --duration_s=8
kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true

fresh_corrald
perf_during waiters "$bench" --targets="$target" --mode=waiters --callers=10000 --channels=2 \
  --metrics="$metrics" --corrald_pids="$corrald_pid"
kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true

# heaptrack: 10,000 waiters, then a clean stop so that heaptrack writes its file.
fresh_corrald "heaptrack -o $out/waiters.heaptrack"
heaptrack_pid=$corrald_pid
corrald_pid=$(pgrep -P "$heaptrack_pid" -f "$corrald_bin" | head -1 || true)
[[ -z $corrald_pid ]] && corrald_pid=$heaptrack_pid
"$bench" --targets="$target" --mode=waiters --callers=10000 --channels=2 --metrics="$metrics" \
  --corrald_pids="$corrald_pid" | tee "$out/heaptrack.bench.txt"
kill "$corrald_pid"; wait "$heaptrack_pid" 2>/dev/null || true
sleep 1
heaptrack_print -f "$out"/waiters.heaptrack*.zst --print-peaks 1 --print-allocators 0 \
  --print-leaks 0 --print-temporary 0 --peak-limit 25 --sub-peak-limit 6 \
  >"$out/waiters.heaptrack.txt" 2>&1 || true
echo "profile.sh: reports in $out"
ls "$out"
