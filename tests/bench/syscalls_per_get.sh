#!/usr/bin/env bash
# Where a unary Get's cost goes, counted: syscalls and context switches per
# request in the client process and in corrald (perf stat on each for 2 s
# in the middle of a 4 s run), for each corral-bench binary given, through
# the C++ Client without the near cache (--mode=client_hits --rpc=get), and
# once through raw callback stubs (--mode=hits --rpc=get --channels=1) with
# the first binary, at concurrency 64. Needs perf.
#   tests/bench/syscalls_per_get.sh BENCH...
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
source "$root/tests/bench/lib.sh"
start_redis
start_corrald "$tmp/corrald.log" --redis="redis://127.0.0.1:$redis_port"
events=syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_futex
events=$events,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write
events=$events,context-switches
echo "# syscalls_per_get.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)" \
  "nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# corrald=${CORRALD:-$build/server/corrald} ($(sha256sum "${CORRALD:-$build/server/corrald}" | cut -c1-12))"
per_request() { # FILE RPS: "event=count/request ..."
  grep -v '^#' "$1" | grep . | awk -F, -v r="$2" '{
    n = split($3, a, ":"); printf "%s=%.2f ", a[n], $1 / (r * 2) }'
}
measure() { # LABEL BENCH ARGS...
  local label=$1 bin=$2 bench_pid perf_pid rps
  shift 2
  "$bin" --targets="$target" "$@" --concurrency=64 --duration_s=4 >"$tmp/out" 2>&1 &
  bench_pid=$!
  sleep 1.5
  perf stat -x, -e "$events" -p "$bench_pid" -o "$tmp/client" -- sleep 2 &
  perf_pid=$!
  perf stat -x, -e "$events" -p "$corrald_pid" -o "$tmp/server" -- sleep 2
  wait "$perf_pid" "$bench_pid"
  rps=$(grep -o 'req_per_s=[0-9]*' "$tmp/out" | tail -1 | cut -d= -f2)
  echo "$label ($(sha256sum "$bin" | cut -c1-12)) req_per_s=$rps"
  echo "  client: $(per_request "$tmp/client" "$rps")"
  echo "  corrald: $(per_request "$tmp/server" "$rps")"
}
for bin in "$@"; do
  measure "client_hits $(basename "$bin")" "$(realpath "$bin")" --mode=client_hits --rpc=get \
    --near_cache=false
done
measure "raw callback stub, one channel ($(basename "$1"))" "$(realpath "$1")" --mode=hits \
  --rpc=get --channels=1
