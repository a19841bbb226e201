#!/usr/bin/env bash
# Two corrald binaries side by side, as ratios (B over A): each round runs,
# against each corrald in turn (order alternating by round), hot hits through
# GetOrCompute and through unary Get (one warm key, concurrency 64, 100-byte
# value) and a 10,000-caller stampede on one cold key (compute 200 ms). Each
# corrald has its own redis-server. Use it to show that a change did not make
# corrald slower: build the old commit elsewhere and pass both binaries.
#   tests/bench/ab.sh A_CORRALD B_CORRALD [ROUNDS] [DURATION_S] [BUILD_DIR]
# BUILD_DIR's corral-bench drives both.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
a_bin=$(realpath "$1")
b_bin=$(realpath "$2")
rounds=${3:-5}
dur=${4:-4}
build=${5:-$root/build}
bench=$build/client/bench/corral-bench
source "$root/tests/bench/lib.sh"

declare -A target
for side in a b; do
  start_redis
  redis-cli -p "$redis_port" set ab:warm "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null
  bin_var=${side}_bin
  CORRALD=${!bin_var} start_corrald "$tmp/corrald-$side.log" --redis="redis://127.0.0.1:$redis_port"
  target[$side]=$target
done
echo "# ab.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)" \
  "nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# A=$a_bin ($(sha256sum "$a_bin" | cut -c1-12)) B=$b_bin ($(sha256sum "$b_bin" | cut -c1-12))"
hits() {  # hits SIDE RPC -> requests per second
  "$bench" --targets="${target[$1]}" --mode=hits --rpc="$2" --concurrency=64 \
    --duration_s="$dur" --channels=4 2>&1 | grep -o 'req_per_s=[0-9]*' | cut -d= -f2
}
stampede() {  # stampede SIDE -> "computes elapsed_ms p99_ms"
  local out
  out=$("$bench" --targets="${target[$1]}" --callers=10000 --keys=1 --compute_ms=200 2>&1 | head -1)
  echo "$out" | /usr/bin/python3 -c '
import re, sys
line = sys.stdin.read()
def ms(name):
    m = re.search(name + r"=([0-9.]+)(us|ms|s)\b", line)
    if not m: return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
computes = re.search(r"computes=(\d+)", line)
print(computes.group(1) if computes else "?", "%.0f" % ms("elapsed"), "%.0f" % ms("p99"))'
}
for r in $(seq "$rounds"); do
  order="a b"
  ((r % 2 == 0)) && order="b a"
  declare -A goc get st
  for side in $order; do
    goc[$side]=$(hits "$side" get_or_compute)
    get[$side]=$(hits "$side" get)
    st[$side]=$(stampede "$side")
  done
  read -r a_c a_el a_p99 <<<"${st[a]}"
  read -r b_c b_el b_p99 <<<"${st[b]}"
  echo "round=$r goc_a=${goc[a]} goc_b=${goc[b]} get_a=${get[a]} get_b=${get[b]}" \
    "stampede_a=computes:$a_c,elapsed_ms:$a_el,p99_ms:$a_p99" \
    "stampede_b=computes:$b_c,elapsed_ms:$b_el,p99_ms:$b_p99" \
    "ratio_goc=$(/usr/bin/python3 -c "print(f'{${goc[b]}/${goc[a]}:.2f}')")" \
    "ratio_get=$(/usr/bin/python3 -c "print(f'{${get[b]}/${get[a]}:.2f}')")" \
    "ratio_stampede_p99=$(/usr/bin/python3 -c "print(f'{$b_p99/$a_p99:.2f}')")"
done
