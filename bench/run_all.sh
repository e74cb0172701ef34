#!/usr/bin/env bash
# Run the five benches on one device and collect their JSON lines into one file.
# Usage: bash bench/run_all.sh [--device auto|cpu|cuda] [--quick] [--out FILE]
# Each bench's table goes to the terminal; FILE (default bench-<device>-<date>.jsonl in the
# current directory) gets one JSON line per bench. A failing bench is reported, the rest still run.
set -uo pipefail

device=auto
quick=
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
out=${out:-bench-$device-$(date +%Y%m%d-%H%M%S).jsonl}
: > "$out"

failed=
for bench in features align train ensemble distill decode; do
  echo "=== $bench"
  python "$here/$bench.py" --device "$device" $quick --json "$out" || failed="$failed $bench"
  echo
done
echo "figures of $(wc -l < "$out") bench(es) in $out"
if [ -n "$failed" ]; then
  echo "failed:$failed" >&2
  exit 1
fi
