#!/usr/bin/env bash
# Encrypts and decrypts a large file through the CLI under /usr/bin/time -v: peak resident memory must
# stay under 100 MB whatever the size, and truncation, reordering and a flipped byte must be detected.
#
#   npm run build && bash bench/file-encryption.sh [size-in-MiB, default 2048]
set -euo pipefail
SIZE_MB="${1:-2048}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLI="node $ROOT/dist/cli/main.js"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/agentwall-file-bench.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT
export AGENTWALL_HOME="$DIR/home"

head -c 32 /dev/urandom > "$DIR/key"
echo "writing a ${SIZE_MB} MiB file of random bytes"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$DIR/plain"

measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -v "$@" 2> "$DIR/time.txt"
  local rss wall
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$DIR/time.txt")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$DIR/time.txt")
  echo "$label: peak RSS $((rss / 1024)) MB, wall $wall"
  if [ "$rss" -ge $((100 * 1024)) ]; then echo "FAIL: $label used ${rss} KB (limit 100 MB)"; exit 1; fi
}

measure "encrypt ${SIZE_MB} MiB" $CLI encrypt --format stream --key-file "$DIR/key" --in "$DIR/plain" --out "$DIR/enc"
measure "decrypt ${SIZE_MB} MiB" $CLI decrypt --key-file "$DIR/key" --in "$DIR/enc" --out "$DIR/dec"
cmp "$DIR/plain" "$DIR/dec" && echo "round trip: identical"
rm -f "$DIR/dec" "$DIR/plain"

HEADER=25            # AWF1, kdf id, file salt, chunk size (key mode)
SEALED=$((65536 + 16))
expect_refused() { # label, file
  if $CLI decrypt --key-file "$DIR/key" --in "$2" --out "$DIR/out" 2> "$DIR/err"; then
    echo "FAIL: $1 was not detected"; exit 1
  fi
  grep -q ERR_DECRYPT "$DIR/err" || { echo "FAIL: $1: unexpected error $(cat "$DIR/err")"; exit 1; }
  [ ! -e "$DIR/out" ] || { echo "FAIL: $1 left an output file"; exit 1; }
  echo "$1: detected (ERR_DECRYPT, no output written)"
}

SIZE=$(stat -c %s "$DIR/enc")
cp "$DIR/enc" "$DIR/t"; truncate -s $((SIZE - SEALED)) "$DIR/t"; expect_refused "truncated by one chunk" "$DIR/t"
cp "$DIR/enc" "$DIR/t"; truncate -s $((SIZE - 1)) "$DIR/t"; expect_refused "truncated by one byte" "$DIR/t"
cp "$DIR/enc" "$DIR/t"
dd if="$DIR/enc" of="$DIR/t" bs=1 skip=$((HEADER + SEALED)) seek=$((HEADER)) count=$SEALED conv=notrunc status=none
dd if="$DIR/enc" of="$DIR/t" bs=1 skip=$((HEADER)) seek=$((HEADER + SEALED)) count=$SEALED conv=notrunc status=none
expect_refused "chunks 0 and 1 swapped" "$DIR/t"
cp "$DIR/enc" "$DIR/t"
OFFSET=$((SIZE / 2))
BYTE=$(dd if="$DIR/t" bs=1 skip=$OFFSET count=1 status=none | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(((BYTE + 1) % 256)))" | dd of="$DIR/t" bs=1 seek=$OFFSET conv=notrunc status=none
expect_refused "one byte flipped in the middle" "$DIR/t"
echo "all checks passed"
