#!/usr/bin/env bash
# From a fresh Debian 12 machine: install what is missing, build, and run
# corrald on the embedded store in the foreground (Ctrl-C stops it).
# Extra arguments go to corrald, e.g. --redis=redis://127.0.0.1:6379.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build"
cat >&2 <<MSG

corrald is starting on 127.0.0.1:50051 (metrics on 127.0.0.1:9464/metrics).
Try, from another terminal:
  $root/build/client/corralctl/corralctl health
  $root/build/client/corralctl/corralctl set plant_id rose-hash 'Rosa canina' --ttl 1h
  $root/build/client/corralctl/corralctl get plant_id rose-hash
  $root/build/client/corralctl/corralctl get-or-compute plant_id tulip-hash --exec 'sleep 2; echo Tulipa'
  curl -s 127.0.0.1:9464/metrics | grep ^corral_

MSG
exec "$root/build/server/corrald" "$@"
