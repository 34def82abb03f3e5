#!/usr/bin/env bash
# Import benchmark (issue 14): a random checkpoint at Qwen2-0.5B's shape (BF16, ~1 GB,
# written by tools/make_hf_fixtures.py --big into a temporary folder, never committed) is
# imported with `prunerec import`; prints wall time and peak RSS against the f32 model's
# size (target: under 10 s, under 1.5x).
#   bash tools/bench_import.sh [BUILD_DIR]      # needs Debian's python3-torch
#   PRUNEREC_BENCH_HF=/tmp/q05 bash tools/bench_import.sh   # reuse a written checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
src=${PRUNEREC_BENCH_HF:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$src" ]; then
  src=$tmp/hf
  echo "bench_import: writing a Qwen2-0.5B-shaped BF16 checkpoint into $src ..."
  /usr/bin/python3 tools/make_hf_fixtures.py --big "$src"
fi
/usr/bin/time -f "%e %M %U %S" -o "$tmp/time" "$build/apps/prunerec" import --hf "$src" --out "$tmp/model.prc" --json
read -r seconds rss_kb user_s sys_s < "$tmp/time"
params=$("$build/apps/prunerec" inspect --model "$tmp/model.prc" --json | sed -n 's/.*"total_params": \([0-9]*\).*/\1/p')
f32_mb=$(( params * 4 / 1048576 ))
rss_mb=$(( rss_kb / 1024 ))
echo "import: ${seconds} s wall (${user_s} s user, ${sys_s} s system CPU), peak RSS ${rss_mb} MiB; f32 model ${f32_mb} MiB (${params} parameters):" \
     "ratio $(awk -v a="$rss_mb" -v b="$f32_mb" 'BEGIN { printf "%.2f", a / b }')"
