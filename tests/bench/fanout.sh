#!/usr/bin/env bash
# Fill fan-out: W callers wait on one key, then one fill of VALUE_BYTES wakes
# them all. Reports corrald's RSS while they wait and at its peak during the
# fan-out, and fill-to-last-waiter. A fresh redis-server and corrald per run.
#   CORRALD=path/to/corrald tests/bench/fanout.sh [BUILD_DIR] [WAITERS] [VALUE_BYTES] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
waiters=${2:-10000}
value_bytes=${3:-65536}
runs=${4:-3}
bench=$build/client/bench/corral-bench
ulimit -n 65536 2>/dev/null || true
source "$root/tests/bench/lib.sh"

for r in $(seq "$runs"); do
  start_redis
  start_corrald "$tmp/corrald-$r.log" --redis="redis://127.0.0.1:$redis_port"
  echo "\$ corral-bench --mode=waiters --callers=$waiters --value_bytes=$value_bytes  # run $r, ${CORRALD:-$build/server/corrald}"
  "$bench" --mode=waiters --targets="$target" --metrics="$metrics" --corrald_pids="$corrald_pid" \
    --callers="$waiters" --value_bytes="$value_bytes" --channels=4 || true
  kill "$corrald_pid" "$redis_pid" 2>/dev/null || true
  wait "$corrald_pid" "$redis_pid" 2>/dev/null || true
done
