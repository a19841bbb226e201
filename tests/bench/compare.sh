#!/usr/bin/env bash
# Issue 9's side-by-side benchmark: corral against the alternatives on this
# machine, every scenario RUNS times (default 3), then a table of medians
# (tests/bench/summarize.py). Starts and stops its own redis-server, corrald
# and etcd on free loopback ports.
#   tests/bench/compare.sh [--smoke] [--runs=N] [--only=stampede,hits,locks,waiters] [BUILD_DIR]
# CORRALD=path overrides BUILD_DIR/server/corrald (e.g. a build of a given
# commit). Raw output goes to $OUT (default a temp file), printed at the end.
# etcd rows need Debian's etcd-server + etcd-client (scripts/deps.sh --bench);
# without them they are skipped. --smoke: every mode once, tiny and short.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
smoke=0 runs=3 only=stampede,hits,locks,waiters
while [[ ${1:-} == --* ]]; do
  case $1 in
    --smoke) smoke=1 runs=1 ;;
    --runs=*) runs=${1#--runs=} ;;
    --only=*) only=${1#--only=} ;;
    *) echo "compare.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
build=${1:-$root/build}
corrald_bin=${CORRALD:-$build/server/corrald}
bench=$build/client/bench/corral-bench
baseline=$build/client/bench/corral-baseline
py=/usr/bin/python3  # Debian's: python3-grpcio, python3-redis
export PYTHONPATH=$build/client/python
source "$here/lib.sh"
out=${OUT:-$tmp/compare.log}
# One descriptor per simulated caller (10,000 Redis connections in a row).
ulimit -n "$(ulimit -Hn)"
want() { [[ ,$only, == *,$1,* ]]; }
log() { echo "$*" | tee -a "$out"; }
# run TAG CMD...: one measured run, its output tagged for summarize.py.
run() {
  local tag=$1; shift
  log "=== $tag"
  "$@" 2>&1 | tee -a "$out" || log "!!! exit $? ($tag)"
}

start_redis --maxclients 19000 --tcp-backlog 4096

# Waiter runs go past corrald's default of 20,000 waiters on one key.
cat >"$tmp/corrald.textproto" <<CONF
limits { max_waiters: 200000 max_waiters_per_key: 100000 }
CONF
corrald_pid=""
fresh_corrald() {  # Stops the previous corrald, starts a new one.
  [[ -n $corrald_pid ]] && { kill "$corrald_pid"; wait "$corrald_pid" 2>/dev/null || true; }
  start_corrald "$tmp/corrald.log" --config="$tmp/corrald.textproto" \
    --redis="redis://127.0.0.1:$redis_port"
}
fresh_corrald
log "# compare.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?) corrald=$corrald_bin redis=$(redis-server --version | grep -o 'v=[^ ]*') nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"

if ((smoke)); then ns=(10); hits_c=(4); lock_w=(1 8); waiters=(200); dur=1
else ns=(10 100 1000 10000); hits_c=(1 16 64); lock_w=(1 8 64); waiters=(1000 10000 50000); dur=5
fi

if want stampede; then
  for n in "${ns[@]}"; do
    for r in $(seq "$runs"); do
      run "stampede system=corral n=$n run=$r" "$bench" --targets="$target" --callers="$n" \
        --keys=1 --compute_ms=200 --redis_port="$redis_port" --corrald_pids="$corrald_pid"
      run "stampede system=cache-aside n=$n run=$r" "$baseline" --mode=cache-aside \
        --redis_port="$redis_port" --callers="$n" --compute_ms=200
      run "stampede system=client-lock n=$n run=$r" "$baseline" --mode=client-lock \
        --redis_port="$redis_port" --callers="$n" --compute_ms=200
    done
  done
fi

if want hits; then
  # redis-benchmark reads one key that holds a value of the same size.
  redis-cli -p "$redis_port" set key:__rand_int__ "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null
  for c in "${hits_c[@]}"; do
    for r in $(seq "$runs"); do
      for rpc in get get_or_compute; do
        run "hits system=corral-$rpc c=$c run=$r" "$bench" --targets="$target" --mode=hits \
          --rpc="$rpc" --concurrency="$c" --duration_s="$dur" --channels=4 --redis_port="$redis_port"
      done
      # About as many requests as corral answers in $dur s, at least 20,000.
      run "hits system=redis-benchmark c=$c run=$r" redis-benchmark -p "$redis_port" -t get \
        -c "$c" -n $((smoke ? 2000 : 200000)) -P 1 -d 100 --csv
    done
  done
fi

if want locks; then
  etcd_target=""
  start_etcd() {  # start_etcd NAME [ARGS]: a one-member etcd with its own data dir.
    local name=$1; shift
    local cp pp; cp=$(free_port); pp=$(free_port)
    etcd --name "$name" --data-dir "$tmp/etcd-$name" --listen-client-urls "http://127.0.0.1:$cp" \
      --advertise-client-urls "http://127.0.0.1:$cp" --listen-peer-urls "http://127.0.0.1:$pp" \
      --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
      --initial-cluster "$name=http://127.0.0.1:$pp" "$@" >"$tmp/etcd-$name.log" 2>&1 &
    pids+=($!)
    etcd_target=127.0.0.1:$cp
    for _ in $(seq 100); do curl -sf "http://$etcd_target/health" >/dev/null 2>&1 && break; sleep 0.1; done
  }
  lock_systems=(corral-cpp corral-py)
  if command -v etcd >/dev/null; then
    start_etcd fsync; etcd_fsync=$etcd_target
    start_etcd nofsync --unsafe-no-fsync; etcd_nofsync=$etcd_target
    lock_systems+=(etcd-py etcd-nofsync-py)
    log "# etcd $(etcd --version | head -1)"
  else
    log "# etcd not installed (scripts/deps.sh --bench): etcd rows skipped"
  fi
  for w in "${lock_w[@]}"; do
    modes=(own); ((w > 1)) && modes=(contended)
    for m in "${modes[@]}"; do
      c=(); [[ $m == contended ]] && c=(--contended)
      for r in $(seq "$runs"); do
        for s in "${lock_systems[@]}"; do
          tag="locks system=$s workers=$w key=$m run=$r"
          case $s in
            corral-cpp) run "$tag" "$bench" --targets="$target" --mode=locks --workers="$w" \
                          "${c[@]}" --duration_s="$dur" ;;
            corral-py) run "$tag" $py "$here/lock_cycles.py" --backend=corral --target="$target" \
                         --workers="$w" "${c[@]}" --duration="$dur" ;;
            etcd-py) run "$tag" $py "$here/lock_cycles.py" --backend=etcd --target="$etcd_fsync" \
                       --workers="$w" "${c[@]}" --duration="$dur" ;;
            etcd-nofsync-py) run "$tag" $py "$here/lock_cycles.py" --backend=etcd \
                               --target="$etcd_nofsync" --workers="$w" "${c[@]}" --duration="$dur" ;;
          esac
        done
      done
    done
  done
fi

if want waiters; then
  for w in "${waiters[@]}"; do
    for r in $(seq "$runs"); do
      fresh_corrald  # A fresh process: its RSS growth is this run's alone.
      run "waiters system=corral w=$w run=$r" "$bench" --targets="$target" --mode=waiters \
        --callers="$w" --channels=$(((w + 7999) / 8000)) --metrics="$metrics" \
        --corrald_pids="$corrald_pid" --deadline_s=600
    done
  done
fi

echo
$py "$here/summarize.py" "$out"
