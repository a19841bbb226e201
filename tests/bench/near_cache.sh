#!/usr/bin/env bash
# Issue 19's measurements, side by side in one run on one Redis and two
# corralds: C++ hits through one Client with the near cache, without it,
# and redis-benchmark GET, at the same concurrency (ROUNDS rounds, back to
# back); a write through replica B seen by a near-cache reader of replica A
# (p50/p99 over 500 rounds, loopback); one process, 1,000 threads, one cold
# key, compute 0.5 s.
#   tests/bench/near_cache.sh [BUILD_DIR] [ROUNDS] [DURATION_S] [CONCURRENCY]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
dur=${3:-4}
conc=${4:-64}
bench=${BENCH:-$build/client/bench/corral-bench}
source "$root/tests/bench/lib.sh"

start_redis
start_corrald "$tmp/a.log" --redis="redis://127.0.0.1:$redis_port"
a=$target
start_corrald "$tmp/b.log" --redis="redis://127.0.0.1:$redis_port"
b=$target
echo "# near_cache.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) concurrency=$conc"
redis-cli -p "$redis_port" set key:__rand_int__ "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null
for r in $(seq "$rounds"); do
  for rpc in get_or_compute get; do
    for near in true false; do
      echo "round=$r $("$bench" --targets="$a" --mode=client_hits --rpc=$rpc --near_cache=$near \
        --concurrency="$conc" --duration_s="$dur" 2>&1 | tail -1)"
    done
  done
  echo "round=$r redis-benchmark GET c=$conc: $(redis-benchmark -p "$redis_port" -t get -c "$conc" \
    -n 200000 -P 1 -d 100 --csv | tail -1)"
done
echo "$("$bench" --targets="$a,$b" --mode=client_coherence --callers=500 2>&1 | tail -1)"
echo "$("$bench" --targets="$a,$a" --mode=client_coherence --callers=500 2>&1 | tail -1)"
for near in true false; do
  echo "$("$bench" --targets="$a" --mode=client_stampede --callers=1000 --compute_ms=500 \
    --near_cache=$near 2>&1 | tail -1)"
done
