#!/bin/bash
# Redis Cluster vs one Redis node (issue 17), on loopback: six cluster nodes
# (three masters, three replicas, `redis-cli --cluster create`) and one
# standalone redis-server. For each store:
#   - a stampede of 1,000 callers over 100 cold keys on two corralds: the
#     Redis commands it cost (INFO commandstats deltas summed over the
#     masters) and, on the cluster, the pub/sub messages the cluster bus
#     carried (CLUSTER INFO publish / publishshard counters summed over all
#     six nodes) against the fills that woke waiters;
#   - hits/s (GetOrCompute on a warm key, 16 callers) and lock cycles/s (8
#     workers on their own keys) on one corrald, RUNS times DUR seconds.
# The read cache is off on both (cluster mode has none) and replica acks are
# 0 on both (one node has no replica), so that the stores compare like for
# like; a last series repeats the cluster locks with acks 1.
#   tests/bench/cluster.sh [BUILD_DIR]        (RUNS=3 DUR=5 by default)
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3} dur=${DUR:-5}
source "$(dirname "$0")/lib.sh"
bench=$build/client/bench/corral-bench

echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"

start_redis; single=$redis_port
nodes=()
for i in 1 2 3 4 5 6; do
  start_redis --cluster-enabled yes --cluster-config-file "nodes-$i.conf" \
    --cluster-node-timeout 1000 --cluster-port "$(free_port)" --repl-diskless-sync-delay 0
  nodes+=("$redis_port")
done
redis-cli --cluster create $(for p in "${nodes[@]}"; do echo "127.0.0.1:$p"; done) \
  --cluster-replicas 1 --cluster-yes >"$tmp/create.log" 2>&1
for _ in $(seq 300); do
  ok=1
  for p in "${nodes[@]}"; do
    redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
  done
  [[ $ok == 1 ]] && break; sleep 0.1
done
[[ $ok == 1 ]] || { echo "cluster not ok" >&2; cat "$tmp/create.log" >&2; exit 1; }
masters=()
for p in "${nodes[@]}"; do
  redis-cli -p "$p" role | head -1 | grep -q master && masters+=("$p")
done
cluster_uri="redis-cluster://$(for p in "${nodes[@]}"; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
echo "# one node: redis://127.0.0.1:$single; cluster masters: ${masters[*]}; $cluster_uri"

# Sum of `calls` over every command in INFO commandstats of the given ports.
commands() {
  local total=0 p n
  for p in "$@"; do
    n=$(redis-cli -p "$p" info commandstats | sed -n 's/^cmdstat_.*:calls=\([0-9]*\),.*/\1/p' \
      | awk '{s+=$1} END {print s+0}')
    total=$((total + n))
  done
  echo "$total"
}
# Sum of a CLUSTER INFO field over the given ports.
cluster_field() {
  local field=$1 total=0 p n; shift
  for p in "$@"; do
    n=$(redis-cli -p "$p" cluster info | tr -d '\r' | sed -n "s/^$field://p")
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

run_store() {
  local name=$1 uri=$2; shift 2
  local ports=("$@")
  start_corrald "$tmp/$name-a.log" --redis="$uri" --read_cache_mb=0 --redis_min_replica_acks=0
  local a=$target a_pid=$corrald_pid
  start_corrald "$tmp/$name-b.log" --redis="$uri" --read_cache_mb=0 --redis_min_replica_acks=0
  local b=$target b_pid=$corrald_pid
  for r in $(seq "$runs"); do
    local before pub_before shard_before
    before=$(commands "${ports[@]}")
    if [[ $name == cluster ]]; then
      pub_before=$(cluster_field cluster_stats_messages_publish_sent "${nodes[@]}")
      shard_before=$(cluster_field cluster_stats_messages_publishshard_sent "${nodes[@]}")
    fi
    local out
    out=$("$bench" --targets="$a,$b" --callers=1000 --keys=100 --compute_ms=200 \
      --ns="st_${name}_$r" 2>&1 | tail -1)
    local after
    after=$(commands "${ports[@]}")
    echo "stampede $name run=$r: $out"
    echo "stampede $name run=$r: redis commands=$((after - before))"
    if [[ $name == cluster ]]; then
      echo "stampede $name run=$r: bus publish_sent=$(( $(cluster_field cluster_stats_messages_publish_sent "${nodes[@]}") - pub_before )) publishshard_sent=$(( $(cluster_field cluster_stats_messages_publishshard_sent "${nodes[@]}") - shard_before ))"
    fi
  done
  kill "$b_pid"; wait "$b_pid" 2>/dev/null || true
  for r in $(seq "$runs"); do
    echo "hits $name c=16 run=$r: $("$bench" --targets="$a" --mode=hits \
      --rpc=get_or_compute --concurrency=16 --duration_s="$dur" --ns="h_${name}" 2>&1 | tail -1)"
    echo "locks $name workers=8 run=$r: $("$bench" --targets="$a" --mode=locks \
      --workers=8 --duration_s="$dur" --ns="l_${name}" 2>&1 | tail -1)"
  done
  kill "$a_pid"; wait "$a_pid" 2>/dev/null || true
}

run_store one "redis://127.0.0.1:$single" "$single"
run_store cluster "$cluster_uri" "${masters[@]}"

# What a plain PUBLISH costs the same cluster's bus, for comparison.
pub_before=$(cluster_field cluster_stats_messages_publish_sent "${nodes[@]}")
redis-cli -p "${masters[0]}" publish corral:compare x >/dev/null
echo "one plain PUBLISH: bus publish_sent=$(( $(cluster_field cluster_stats_messages_publish_sent "${nodes[@]}") - pub_before ))"
shard_before=$(cluster_field cluster_stats_messages_publishshard_sent "${nodes[@]}")
redis-cli -c -p "${masters[0]}" spublish corral:compare x >/dev/null
echo "one SPUBLISH: bus publishshard_sent=$(( $(cluster_field cluster_stats_messages_publishshard_sent "${nodes[@]}") - shard_before ))"

# Lock cycles on the cluster with replica acks (the cluster default).
start_corrald "$tmp/cluster-acks.log" --redis="$cluster_uri" --redis_min_replica_acks=1
for r in $(seq "$runs"); do
  for w in 1 8; do
    echo "locks cluster acks=1 workers=$w run=$r: $("$bench" --targets="$target" --mode=locks \
      --workers=$w --duration_s="$dur" --ns="la_$r" 2>&1 | tail -1)"
  done
done
kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true
