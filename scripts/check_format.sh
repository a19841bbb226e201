#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted as .clang-format says
# (clang-format 14, Debian 12's). To fix: scripts/check_format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || "$PWD/scripts/deps.sh"
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/corral-format.$$; then
  grep -E '^[^ ].*(warning|error):' /tmp/corral-format.$$ | cut -d: -f1 | sort -u |
    sed 's/^/not formatted: /' >&2
  rm -f /tmp/corral-format.$$
  echo "run scripts/check_format.sh --fix (clang-format $(clang-format --version | grep -o '[0-9][0-9.]*' | head -1))" >&2
  exit 1
fi
rm -f /tmp/corral-format.$$
echo "format: ${#files[@]} files OK"
