#!/usr/bin/env bash
# Data-parallel efficiency on this machine, side by side in one run (docs/perf.md,
# "Data-parallel training"): `prunerec bench --preset medium` as
#   1 rank x 1 thread, 1 rank x 2 threads, and 2 ranks x 1 thread (mpirun, one core each),
# then efficiency = 2-rank throughput / (2 x 1-rank-1-thread throughput) and the share of
# the 2-rank step spent in the gradient allreduce (waiting on the slower rank included).
# Needs a build with -DPRUNEREC_MPI=ON. Prints `uptime` first: the machine may be shared.
#   bash tools/bench_mpi.sh [build/apps/prunerec] [extra bench flags...]
set -euo pipefail
prunerec=${1:-build/apps/prunerec}
shift || true
"$prunerec" --version | grep -q "mpi: yes" || { echo "bench_mpi: $prunerec was built without PRUNEREC_MPI" >&2; exit 1; }
flags=(bench --preset medium --steps 10 --warmup 3 --infer-reps 1 --infer-seconds 0.1 --eval-users 64 --eval-reps 1
       --floor-reps 1 --json "$@")
field() { grep -o "\"$1\": *[-0-9.e+]*" | head -n 1 | sed 's/.*: *//'; }
echo "uptime: $(uptime)"
one=$("$prunerec" "${flags[@]}" --threads 1)
two_threads=$("$prunerec" "${flags[@]}" --threads 2)
two_ranks=$(mpirun --allow-run-as-root --bind-to core -np 2 "$prunerec" "${flags[@]}" --threads 1)
echo "uptime: $(uptime)"
p1=$(field positions_per_s <<< "$one")
p2t=$(field positions_per_s <<< "$two_threads")
p2r=$(field positions_per_s <<< "$two_ranks")
share=$(field allreduce_share <<< "$two_ranks")
printf '%-22s %10s %12s %14s\n' "run" "ms/step" "positions/s" "other load max"
for row in "1 rank x 1 thread:$one" "1 rank x 2 threads:$two_threads" "2 ranks x 1 thread:$two_ranks"; do
  name=${row%%:*}; json=${row#*:}
  printf '%-22s %10.1f %12.0f %13.0f%%\n' "$name" "$(field ms_per_step <<< "$json")" "$(field positions_per_s <<< "$json")" \
    "$(awk -v f="$(field foreign_frac_max <<< "$json")" 'BEGIN { print 100 * f }')"
done
awk -v p1="$p1" -v p2t="$p2t" -v p2r="$p2r" -v s="$share" 'BEGIN {
  printf "efficiency of 2 ranks  %.3f  (2-rank throughput / 2 x 1-rank-1-thread)\n", p2r / (2 * p1);
  printf "efficiency of 2 threads %.3f\n", p2t / (2 * p1);
  printf "allreduce share of the 2-rank step  %.1f%%\n", 100 * s }'
