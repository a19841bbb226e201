#!/usr/bin/env bash
# Hot hits against redis-benchmark, as ratios: ROUNDS rounds, each a Get run,
# a GetOrCompute run and a redis-benchmark GET run at concurrency 64 on one
# warm key (100-byte value), back to back, so that each ratio compares runs
# that saw the same machine. This machine's speed drifts by up to 2x within
# minutes; a ratio per round is steadier than medians of absolute numbers.
#   tests/bench/hits_ratio.sh [BUILD_DIR] [ROUNDS] [DURATION_S] [REDIS_REQUESTS]
# BENCH=path overrides the load generator (e.g. an older corral-bench, to
# compare two of them in the same rounds: BENCH2=path adds a second
# GetOrCompute run per round with it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
rounds=${2:-12}
dur=${3:-4}
redis_requests=${4:-200000}  # About 4 s of redis-benchmark here.
bench=${BENCH:-$build/client/bench/corral-bench}
source "$root/tests/bench/lib.sh"

start_redis
redis-cli -p "$redis_port" set key:__rand_int__ "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null
start_corrald "$tmp/corrald.log" --redis="redis://127.0.0.1:$redis_port"
echo "# hits_ratio.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
hits() {  # hits BENCH RPC -> requests per second
  "$1" --targets="$target" --mode=hits --rpc="$2" --concurrency=64 --duration_s="$dur" \
    --channels=4 2>&1 | grep -o 'req_per_s=[0-9]*' | cut -d= -f2
}
ratio() { /usr/bin/python3 -c "print(f'{$1 / $2:.2f}')"; }
for r in $(seq "$rounds"); do
  get=$(hits "$bench" get)
  goc=$(hits "$bench" get_or_compute)
  second=""
  if [[ -n ${BENCH2:-} ]]; then second=" goc_bench2=$(hits "$BENCH2" get_or_compute)"; fi
  redis=$(redis-benchmark -p "$redis_port" -t get -c 64 -n "$redis_requests" -P 1 -d 100 --csv |
    tail -1 | cut -d, -f2 | tr -d '"' | cut -d. -f1)
  echo "round=$r get=$get goc=$goc$second redis=$redis get_ratio=$(ratio "$get" "$redis")" \
    "goc_ratio=$(ratio "$goc" "$redis")"
done
