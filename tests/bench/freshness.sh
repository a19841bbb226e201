#!/usr/bin/env bash
# Issue 10's measurement: for one hot key under steady load, the fraction of
# calls that waited for a compute, with early refresh on and off (and with
# stale-while-revalidate). Starts its own redis-server and two corralds on
# free loopback ports, and stops them.
#   tests/bench/freshness.sh [BUILD_DIR] [RUNS] [DURATION_S]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
runs=${2:-3}
duration=${3:-20}
bench=$build/client/bench/corral-bench
source "$root/tests/bench/lib.sh"

# TTL 2 s everywhere; the compute (200 ms) is 10 % of it.
cat >"$tmp/corral.textproto" <<'CONFIG'
namespaces { name: "early"  ttl { seconds: 2 } early_refresh_beta: 1 }
namespaces { name: "off"    ttl { seconds: 2 } early_refresh_beta: 0 }
namespaces { name: "swr"    ttl { seconds: 2 } early_refresh_beta: 0 stale_window { seconds: 60 } }
namespaces { name: "both"   ttl { seconds: 2 } early_refresh_beta: 1 stale_window { seconds: 60 } }
CONFIG

start_redis
port=$redis_port
targets=()
for i in 0 1; do
  start_corrald "$tmp/corrald-$i.log" --redis="redis://127.0.0.1:$port" \
    --config="$tmp/corral.textproto"
  targets+=("$target")
done
joined=$(IFS=,; echo "${targets[*]}")
echo "corralds ${joined} redis=127.0.0.1:$port runs=$runs duration=${duration}s"

for ns in off early swr both; do
  stale=false
  [[ $ns == swr || $ns == both ]] && stale=true
  for r in $(seq "$runs"); do
    echo "\$ corral-bench --mode=steady --ns=$ns --allow_stale=$stale --callers=50 --pace_ms=20 --compute_ms=200 --duration_s=$duration  # run $r"
    "$bench" --mode=steady --targets="$joined" --ns="$ns" --allow_stale="$stale" \
      --callers=50 --pace_ms=20 --compute_ms=200 --duration_s="$duration"
  done
done
