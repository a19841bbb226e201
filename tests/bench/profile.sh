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
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

corrald_pid="" target="" metrics=""
start_corrald() {  # start_corrald [WRAPPER...]: a fresh corrald, maybe under heaptrack.
  "$@" "$corrald_bin" --listen_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 \
    --redis="redis://127.0.0.1:$redis_port" --log_level=warning 2>"$tmp/corrald.log" &
  corrald_pid=$!
  pids+=($corrald_pid)
  for _ in $(seq 300); do grep -q "corrald ready" "$tmp/corrald.log" && break; sleep 0.1; done
  target=$(grep -o 'listen=[^ ]*' "$tmp/corrald.log" | cut -d= -f2)
  metrics=$(grep -o 'metrics=[^ ]*' "$tmp/corrald.log" | cut -d= -f2)
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

start_corrald
perf_during hits-goc "$bench" --targets="$target" --mode=hits --rpc=get_or_compute \
  --concurrency=64 --duration_s=8
perf_during hits-get "$bench" --targets="$target" --mode=hits --rpc=get --concurrency=64 \
  --duration_s=8
kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true

start_corrald
perf_during waiters "$bench" --targets="$target" --mode=waiters --callers=10000 --channels=2 \
  --metrics="$metrics" --corrald_pids="$corrald_pid"
kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true

# heaptrack: 10,000 waiters, then a clean stop so that heaptrack writes its file.
start_corrald heaptrack -o "$out/waiters.heaptrack"
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
