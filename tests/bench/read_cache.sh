#!/usr/bin/env bash
# The read cache, on and off, side by side: one redis-server, two corralds
# on it (--read_cache_mb=64 and =0), runs interleaved so that both see the
# same machine. Hot hits (Get and GetOrCompute at each concurrency, with
# redis-benchmark GET alongside) and cold-key stampedes (Redis commands per
# stampede).
#   tests/bench/read_cache.sh [BUILD_DIR] [RUNS] [DURATION_S]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
runs=${2:-3}
dur=${3:-5}
bench=$build/client/bench/corral-bench
ulimit -n "$(ulimit -Hn)"
source "$root/tests/bench/lib.sh"

start_redis --maxclients 19000 --tcp-backlog 4096
start_corrald "$tmp/on.log" --redis="redis://127.0.0.1:$redis_port" --read_cache_mb=64
on_target=$target on_pid=$corrald_pid
start_corrald "$tmp/off.log" --redis="redis://127.0.0.1:$redis_port" --read_cache_mb=0
off_target=$target off_pid=$corrald_pid
echo "# read_cache.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
redis-cli -p "$redis_port" set key:__rand_int__ "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null

for c in 1 16 64; do
  for r in $(seq "$runs"); do
    for rpc in get get_or_compute; do
      for cache in on off; do
        t=${cache}_target
        echo "=== hits cache=$cache rpc=$rpc c=$c run=$r"
        "$bench" --targets="${!t}" --mode=hits --rpc="$rpc" --concurrency="$c" \
          --duration_s="$dur" --channels=4 --redis_port="$redis_port"
      done
    done
    echo "=== hits redis-benchmark c=$c run=$r"
    redis-benchmark -p "$redis_port" -t get -c "$c" -n 200000 -P 1 -d 100 --csv | tail -1
  done
done

for n in 1000 10000; do
  for r in $(seq "$runs"); do
    for cache in on off; do
      t=${cache}_target p=${cache}_pid
      echo "=== stampede cache=$cache n=$n run=$r"
      "$bench" --targets="${!t}" --callers="$n" --keys=1 --compute_ms=200 \
        --redis_port="$redis_port" --corrald_pids="${!p}"
    done
  done
done
