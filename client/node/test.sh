#!/usr/bin/env bash
# The Node.js client's tests (ctest: node_client_test): installs the locked
# dependencies with `npm ci`, then `npm test` starts its own redis-server and
# corrald ($CORRALD, else <repo>/build/server/corrald) on free ports.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null; then
  echo "client/node/test.sh: npm not found (scripts/deps.sh installs nodejs and npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm test
