#!/usr/bin/env bash
# The gateway soak: a fixed request rate for 10 minutes (by default) on loopback, printing answers,
# errors, heap, RSS, audit head and shipping lag as a series, then the totals (bench/soak.ts).
#   npm run build && bash bench/soak.sh [--minutes 10] [--rate 200] [--sample 30] [--connections 16]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/cli/main.js ]; then npm run build; fi
exec npx tsx bench/soak.ts "$@"
