#!/bin/bash
# What replica acknowledgements cost (issue 16): a master, one replica and
# three sentinels on loopback; one corrald on the redis-sentinel:// URI with
# --redis_min_replica_acks=0 and then =1; lock cycles (1 and 8 workers, own
# keys) and GetOrCompute hits (16 callers) side by side, RUNS times each.
#   tests/bench/sentinel_acks.sh [BUILD_DIR]      (RUNS=3 DUR=5 by default)
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3} dur=${DUR:-5}
source "$(dirname "$0")/lib.sh"
bench=$build/client/bench/corral-bench

start_redis; master=$redis_port
start_redis --replicaof 127.0.0.1 "$master"; replica=$redis_port
sentinels=()
for i in 1 2 3; do
  port=$(free_port)
  printf 'sentinel monitor corral 127.0.0.1 %s 2\nsentinel down-after-milliseconds corral 1000\n' \
    "$master" >"$tmp/sentinel-$i.conf"
  redis-server "$tmp/sentinel-$i.conf" --sentinel --port "$port" --bind 127.0.0.1 \
    --dir "$tmp" >"$tmp/sentinel-$i.log" 2>&1 &
  pids+=($!)
  sentinels+=("127.0.0.1:$port")
done
for _ in $(seq 200); do
  redis-cli -p "$master" info replication | grep -q 'state=online' && break; sleep 0.1
done
redis-cli -p "$master" info replication | grep -q 'state=online' || { echo "replica not in sync" >&2; exit 1; }
uri="redis-sentinel://$(IFS=,; echo "${sentinels[*]}")/corral"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); $uri"

for acks in 0 1; do
  start_corrald "$tmp/corrald-$acks.log" --redis="$uri" --redis_min_replica_acks=$acks
  for r in $(seq "$runs"); do
    for w in 1 8; do
      echo "locks acks=$acks workers=$w run=$r: $("$bench" --targets="$target" --mode=locks \
        --workers=$w --duration_s="$dur" 2>&1 | tail -1)"
    done
    echo "hits acks=$acks c=16 run=$r: $("$bench" --targets="$target" --mode=hits \
      --rpc=get_or_compute --concurrency=16 --duration_s="$dur" 2>&1 | tail -1)"
  done
  curl -s "http://$metrics/metrics" | grep '^corral_store_replica_ack' | grep -v bucket || true
  kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true
done
