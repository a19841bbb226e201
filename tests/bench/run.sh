#!/usr/bin/env bash
# Benchmarks corrald on a real redis-server that this script starts (and
# stops) on a free loopback port. Results are printed; tests/bench/RESULTS.md
# records a run. tests/bench/compare.sh runs issue 9's side-by-side
# comparison (baselines, redis-benchmark, etcd) with medians.
#   tests/bench/run.sh [--smoke] [BUILD_DIR]
# --smoke: a seconds-long run (CI keeps the tool working with it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
smoke=0
if [[ ${1:-} == --smoke ]]; then smoke=1; shift; fi
build=${1:-$root/build}
bench=$build/client/bench/corral-bench
source "$root/tests/bench/lib.sh"
start_redis
port=$redis_port
start_corrald "$tmp/corrald.log" --redis="redis://127.0.0.1:$port"
corrald=$corrald_pid
echo "corrald pid=$corrald target=$target redis=127.0.0.1:$port"

run() { echo "\$ corral-bench $*"; "$bench" --targets="$target" "$@"; }
if ((smoke)); then
  run --callers=200 --keys=1 --compute_ms=100 --redis_port="$port" --corrald_pids="$corrald"
  run --mode=locks --workers=2 --duration_s=1
  run --mode=hits --rpc=get --concurrency=4 --duration_s=1
  run --mode=hits --rpc=get_or_compute --concurrency=4 --duration_s=1 --redis_port="$port"
  run --mode=waiters --callers=100 --channels=1 --metrics="$metrics" --corrald_pids="$corrald"
  for m in cache-aside client-lock; do
    echo "\$ corral-baseline --mode=$m --callers=50"
    "$build/client/bench/corral-baseline" --mode="$m" --redis_port="$port" --callers=50 --compute_ms=100
  done
  # The other scripts' tools, as small as they go.
  "$root/tests/bench/hits_ratio.sh" "$build" 1 1 20000
  "$root/tests/bench/stampede_replicas.sh" "$build" 2 1 "10 100"
  exit 0
fi
# Stampede: 10,000 callers on one cold key, compute 200 ms (issue 3's run),
# and with a 2 s compute so that every caller is waiting when the fill lands.
run --callers=10000 --keys=1 --compute_ms=200 --redis_port="$port" --corrald_pids="$corrald"
run --callers=10000 --keys=1 --compute_ms=2000 --redis_port="$port" --corrald_pids="$corrald"
run --callers=1000 --keys=1 --compute_ms=200 --redis_port="$port" --corrald_pids="$corrald"
# Locks: AcquireLock + ReleaseLock cycles.
run --mode=locks --workers=1 --duration_s=5
run --mode=locks --workers=8 --duration_s=5
run --mode=locks --workers=8 --contended --duration_s=5
