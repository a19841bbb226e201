#!/usr/bin/env bash
# Cold-key stampedes across several replicas: REPLICAS corralds on one
# redis-server, the callers of each stampede spread over all of them (the
# fleet-wide case), N = 10 .. 10,000, compute 200 ms. Reports what
# corral-bench reports (computes, latency, Redis commands for the whole
# stampede: divide by REPLICAS for issue 9's "per replica").
#   tests/bench/stampede_replicas.sh [BUILD_DIR] [REPLICAS] [RUNS] [NS]
# NS: the caller counts, space-separated (default "10 100 1000 10000").
# COMPUTE_MS=3000 makes the compute outlast the ~1 s the load generator
# needs to open 10,000 streams, so that every caller waits (served_by:
# peer_fill=N-1) instead of most arriving after the fill as plain hits.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
replicas=${2:-2}
runs=${3:-3}
ns=${4:-10 100 1000 10000}
compute_ms=${COMPUTE_MS:-200}
bench=$build/client/bench/corral-bench
ulimit -n "$(ulimit -Hn)"
source "$root/tests/bench/lib.sh"

start_redis --maxclients 19000 --tcp-backlog 4096
targets=() corralds=()
for i in $(seq "$replicas"); do
  start_corrald "$tmp/corrald-$i.log" --redis="redis://127.0.0.1:$redis_port"
  targets+=("$target") corralds+=("$corrald_pid")
done
echo "# stampede_replicas.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?) replicas=$replicas compute_ms=$compute_ms nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for n in $ns; do
  for r in $(seq "$runs"); do
    echo "=== stampede replicas=$replicas n=$n compute_ms=$compute_ms run=$r load=$(cut -d' ' -f1-3 /proc/loadavg)"
    "$bench" --targets="$(IFS=,; echo "${targets[*]}")" --callers="$n" --keys=1 \
      --compute_ms="$compute_ms" --redis_port="$redis_port" --corrald_pids="$(IFS=,; echo "${corralds[*]}")"
  done
done
