#!/usr/bin/env bash
# Two corral-bench binaries (i.e. two builds of the C++ client library) side
# by side on one corrald and one redis-server: each round runs unary Get
# through a Client without the near cache (--mode=client_hits --rpc=get
# --near_cache=false, concurrency 64, one warm 100-byte key) with A and with
# B, in alternating order, then redis-benchmark GET at the same concurrency.
# Per run: requests/s, and the CPU each process spent per request over the
# steady middle of the run (from 1 s after the start until 1 s before the
# end, /proc/PID/stat utime+stime; threads included). Ratios: B/A, and each
# against redis-benchmark in the same round, so that the load of the shared
# machine cancels out.
#   tests/bench/client_ab.sh A_BENCH B_BENCH [ROUNDS] [DURATION_S >= 3] [BUILD_DIR]
# BUILD_DIR's corrald serves both.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
a_bin=$(realpath "$1")
b_bin=$(realpath "$2")
rounds=${3:-8}
dur=${4:-4}
build=${5:-$root/build}
source "$root/tests/bench/lib.sh"

start_redis
start_corrald "$tmp/corrald.log" --redis="redis://127.0.0.1:$redis_port"
echo "# client_ab.sh $(date -u +%FT%TZ) commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)" \
  "nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# A=$a_bin ($(sha256sum "$a_bin" | cut -c1-12)) B=$b_bin ($(sha256sum "$b_bin" | cut -c1-12))"
echo "# corrald=${CORRALD:-$build/server/corrald} ($(sha256sum "${CORRALD:-$build/server/corrald}" | cut -c1-12))"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rps client_us server_us
run() { # run SIDE BIN
  local bench_pid b0 c0 b1 c1
  "$2" --targets="$target" --mode=client_hits --rpc=get --near_cache=false --concurrency=64 \
    --duration_s="$dur" >"$tmp/out" 2>&1 &
  bench_pid=$!
  sleep 1.5 # 0.5 s of warm-up, then 1 s into the counted part
  b0=$(cpu_ticks "$bench_pid")
  c0=$(cpu_ticks "$corrald_pid")
  sleep $((dur - 2))
  b1=$(cpu_ticks "$bench_pid")
  c1=$(cpu_ticks "$corrald_pid")
  wait "$bench_pid"
  rps[$1]=$(grep -o 'req_per_s=[0-9]*' "$tmp/out" | tail -1 | cut -d= -f2)
  read -r client_us[$1] server_us[$1] < <(/usr/bin/python3 -c "
n = ${rps[$1]} * ($dur - 2) / 1e6 * $(getconf CLK_TCK)
print('%.1f %.1f' % (($b1 - $b0) / n, ($c1 - $c0) / n))")
}
for r in $(seq "$rounds"); do
  if ((r % 2)); then run a "$a_bin"; run b "$b_bin"; else run b "$b_bin"; run a "$a_bin"; fi
  redis=$(redis-benchmark -p "$redis_port" -t get -c 64 -n 200000 -P 1 -d 100 --csv | tail -1 |
    cut -d, -f2 | tr -d '"')
  echo "round=$r get_a=${rps[a]} get_b=${rps[b]} redis_get=${redis%.*}" \
    "client_us_a=${client_us[a]} client_us_b=${client_us[b]}" \
    "corrald_us_a=${server_us[a]} corrald_us_b=${server_us[b]}" \
    "ratio_b_a=$(/usr/bin/python3 -c "print(f'{${rps[b]}/${rps[a]}:.2f}')")" \
    "a_vs_redis=$(/usr/bin/python3 -c "print(f'{${rps[a]}/$redis:.2f}')")" \
    "b_vs_redis=$(/usr/bin/python3 -c "print(f'{${rps[b]}/$redis:.2f}')")"
done
