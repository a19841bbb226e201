# Shared by the bench scripts (source it): a temp dir and the processes
# started, both cleaned up on exit; free loopback ports; a redis-server and
# corralds on them.
#   source "$(dirname "$0")/lib.sh"
#   start_redis [redis-server args...]          -> $redis_port
#   start_corrald LOG [corrald args...]         -> $corrald_pid $target $metrics
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    "$@" >"$tmp/redis-$redis_port.log" 2>&1 &
  redis_pid=$!
  pids+=($redis_pid)
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start:" >&2
  cat "$tmp/redis-$redis_port.log" >&2
  return 1
}

# Starts ${CORRALD:-$build/server/corrald} on free ports, logging to LOG, and
# waits for its ready line. Extra arguments go to corrald (or, with
# WRAPPER=..., the command that runs it, e.g. heaptrack).
start_corrald() {
  local log=$1; shift
  ${WRAPPER:-} "${CORRALD:-$build/server/corrald}" --listen_address=127.0.0.1:0 \
    --metrics_address=127.0.0.1:0 --log_level=warning "$@" 2>"$log" &
  corrald_pid=$!
  pids+=($corrald_pid)
  for _ in $(seq 300); do grep -q "corrald ready" "$log" && break; sleep 0.1; done
  if ! grep -q "corrald ready" "$log"; then
    echo "corrald did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  target=$(grep -o 'listen=[^ ]*' "$log" | cut -d= -f2)
  metrics=$(grep -o 'metrics=[^ ]*' "$log" | cut -d= -f2)
}
