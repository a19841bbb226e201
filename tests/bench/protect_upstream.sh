#!/usr/bin/env bash
# Issue 18's numbers, side by side in one run, on 2 corrald replicas over one
# redis-server (all on free loopback ports, started and stopped here):
#  1. The slow upstream at the seed's own settings: 50 callers on one cold
#     key, the upstream takes 16 s, waits give up after 15 s. The seed's
#     pattern (corral-baseline client-lock: python-redis-lock's protocol and
#     its unlocked fallback), corral before (on_wait_timeout
#     COMPUTE_UNLOCKED, the old default) and corral after (HEDGE, the new
#     default).
#  2. Budget adherence: 150 distinct cold keys asked for at once (demand far
#     above the budget), compute_budget { max_in_flight: 4
#     rate_per_second: 5 burst: 5 }: peak concurrent computes and computes
#     per second over the ~30 s it takes.
#   tests/bench/protect_upstream.sh [BUILD_DIR]
# Raw output goes to $OUT (default a temp file), printed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
bench=$build/client/bench/corral-bench
baseline=$build/client/bench/corral-baseline
source "$here/lib.sh"
out=${OUT:-$tmp/protect_upstream.log}
log() { echo "$*" | tee -a "$out"; }
run() {
  local tag=$1; shift
  log "=== $tag"
  "$@" 2>&1 | tee -a "$out" || log "!!! exit $? ($tag)"
}
scrape() {  # scrape METRICS_ADDR: the budget, hedge and compute series.
  curl -s "http://$1/metrics" | grep -E '^corral_(budget_|duplicate_computes_total|computes_total)' \
    | grep -E 'namespace="(herd|hedge|budget)"' | grep -v ' 0$' || true
}

start_redis
cat >"$tmp/corrald.textproto" <<CONF
namespaces { name: "herd" on_wait_timeout: COMPUTE_UNLOCKED }
namespaces { name: "hedge" }
namespaces {
  name: "budget"
  compute_budget { max_in_flight: 4 rate_per_second: 5 burst: 5 }
}
CONF
start_corrald "$tmp/corrald-a.log" --config="$tmp/corrald.textproto" \
  --redis="redis://127.0.0.1:$redis_port"
target_a=$target metrics_a=$metrics
start_corrald "$tmp/corrald-b.log" --config="$tmp/corrald.textproto" \
  --redis="redis://127.0.0.1:$redis_port"
target_b=$target metrics_b=$metrics
log "# protect_upstream.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD) redis=$(redis-server --version | grep -o 'v=[^ ]*') nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
log "# config: $(tr '\n' ' ' <"$tmp/corrald.textproto")"

run "herd system=seed-client-lock callers=50 compute_ms=16000 lock_wait_s=15" \
  "$baseline" --mode=client-lock --redis_port="$redis_port" --callers=50 \
  --compute_ms=16000 --lock_wait_s=15 --deadline_s=120
run "herd system=corral-before policy=COMPUTE_UNLOCKED replicas=2 callers=50 compute_ms=16000 wait_timeout_ms=15000" \
  "$bench" --targets="$target_a,$target_b" --ns=herd --callers=50 --keys=1 \
  --compute_ms=16000 --wait_timeout_ms=15000 --deadline_s=120
run "herd system=corral-after policy=HEDGE replicas=2 callers=50 compute_ms=16000 wait_timeout_ms=15000" \
  "$bench" --targets="$target_a,$target_b" --ns=hedge --callers=50 --keys=1 \
  --compute_ms=16000 --wait_timeout_ms=15000 --deadline_s=120
run "budget replicas=2 callers=150 keys=150 compute_ms=500 max_in_flight=4 rate_per_second=5 burst=5" \
  "$bench" --targets="$target_a,$target_b" --ns=budget --callers=150 --keys=150 \
  --compute_ms=500 --wait_timeout_ms=60000 --deadline_s=120
log "=== metrics replica=a"; scrape "$metrics_a" | tee -a "$out"
log "=== metrics replica=b"; scrape "$metrics_b" | tee -a "$out"
echo "raw output: $out"
