#!/usr/bin/env bash
# The command line under mpirun (docs/scale-out.md), registered by tests/dist/CMakeLists.txt
# in a build with PRUNEREC_MPI:
#   bash tests/dist/mpi_cli_test.sh build/apps/prunerec mpirun --allow-run-as-root --oversubscribe -np 2
# 1. a prune schedule on a fixture (greedy_kl heads, greedy depth: their passes are dealt to
#    the ranks, Note [data-parallel calibration]) gives the same plans on 1 and 2 ranks;
# 2. ranks started with different data files are refused before training, by name;
# 3. a rank killed mid-run fails the job naming the rank, and a rerun resumes and finishes;
# 4. a run of 2 ranks resumes on one process;
# 5. title mode under 2 ranks is refused (it runs on one process).
set -euo pipefail
prunerec=$(realpath "${1:?usage: mpi_cli_test.sh PRUNEREC MPIRUN...}")
shift
mpirun=("$@")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "mpi_cli_test: FAIL: $*" >&2; exit 1; }

# The fixture of tests/apps/fixtures.cc: users with runs of consecutive items.
awk 'BEGIN { s = 12345; for (u = 1; u <= 120; ++u) { s = (s * 1103515245 + 12345) % 2147483648; start = s % 40;
             s = (s * 1103515245 + 12345) % 2147483648; len = 6 + s % 8; line = u;
             for (k = 0; k < len; ++k) line = line " " 100 + (start + k) % 40; print line } }' > "$dir/seq.txt"
# The recoveries use dropout: each row draws the masks of its place in the global batch
# (Note [global dropout masks] in nn/transformer.h), so the plans of 1 and 2 ranks still
# agree byte for byte (with masks of the local batch, s2 differed).
recipe() {
  cat <<PB
model { name: "tiny" hidden: 16 head_dim: 8 max_len: 12 num_layers: 2
        layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 32 } }
train { epochs: $1 batch_size: 16 dropout: 0 optimizer { lr: 5e-3 } eval_every: 1 patience: 50
        checkpoint_every_steps: 2 seed: 7 }
data { split: LEAVE_ONE_OUT }
PB
}
recipe 3 > "$dir/recipe.pbtxt"
cat > "$dir/schedule.pbtxt" <<'PB'
seed: 3
calibration { sequences: 32 seed: 7 batch_size: 8 }
recovery_defaults { alpha: 0.5 temperature: 1.0
  train { epochs: 1 batch_size: 16 dropout: 0.1 optimizer { lr: 3e-3 } eval_every: 1 patience: 5 } }
stages { name: "s1" kind: WIDTH_ATTENTION keep_heads_fraction: 0.5 keep_hidden_fraction: 0.5 head_score: "greedy_kl" }
stages { name: "s2" kind: WIDTH_MLP keep_mlp_fraction: 0.5 }
stages { name: "s3" kind: DEPTH keep_layers_fraction: 0.5 }
PB

# 1. Prune plans of 1 and 2 ranks.
"$prunerec" train --data "$dir/seq.txt" --config "$dir/recipe.pbtxt" --out "$dir/teacher.prc" --threads=1 --quiet > /dev/null
prune=(prune --teacher "$dir/teacher.prc" --data "$dir/seq.txt" --schedule "$dir/schedule.pbtxt" --no-latency --threads=1 --quiet)
"$prunerec" "${prune[@]}" --out "$dir/one" > /dev/null
"${mpirun[@]}" "$prunerec" "${prune[@]}" --out "$dir/two" > "$dir/two.out" 2>&1 || { cat "$dir/two.out"; fail "prune under mpirun"; }
plans=0
for plan in "$dir"/one/*.plan.pbtxt; do
  other="$dir/two/$(basename "$plan")"
  [ -f "$other" ] || fail "2 ranks wrote no $(basename "$plan")"
  cmp -s "$plan" "$other" || { diff "$plan" "$other" >&2 || true; fail "$(basename "$plan") differs between 1 and 2 ranks"; }
  plans=$((plans + 1))
done
[ "$plans" -eq 3 ] || fail "expected 3 stage plans, found $plans"
echo "mpi_cli_test: the 3 stage plans of 1 and 2 ranks are identical"

# 2. Ranks that disagree on the data file are refused before training.
sed '1d' "$dir/seq.txt" > "$dir/other.txt"
train=(train --config "$dir/recipe.pbtxt" --threads=1 --quiet)
np_args=()  # mpirun's flags before -np, for the two-program (MPMD) form
for a in "${mpirun[@]}"; do [ "$a" = "-np" ] && break; np_args+=("$a"); done
status=0
"${np_args[@]}" -np 1 "$prunerec" "${train[@]}" --data "$dir/seq.txt" --out "$dir/mixed.prc" : \
                -np 1 "$prunerec" "${train[@]}" --data "$dir/other.txt" --out "$dir/mixed.prc" > "$dir/mixed.out" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "ranks with different data files were not refused"
grep -q "disagree on the data" "$dir/mixed.out" || { cat "$dir/mixed.out"; fail "no message naming the disagreement"; }
[ ! -e "$dir/mixed.prc.state" ] || fail "a refused run wrote a state"
echo "mpi_cli_test: ranks with different data files are refused (exit $status)"

# 3. Kill rank 1 once a checkpoint exists; the job fails naming the rank; a rerun resumes.
recipe 200 > "$dir/long.pbtxt"
long=(train --data "$dir/seq.txt" --config "$dir/long.pbtxt" --out "$dir/long.prc" --threads=1)
"${mpirun[@]}" "$prunerec" "${long[@]}" > "$dir/killed.out" 2>&1 &
job=$!
for _ in $(seq 1 600); do [ -e "$dir/long.prc.state" ] && break; sleep 0.1; done
[ -e "$dir/long.prc.state" ] || fail "no checkpoint within 60 s"
victim=""
for pid in $(pgrep -f "$dir/long.pbtxt" || true); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
done
[ -n "$victim" ] || fail "rank 1 not found"
kill -9 "$victim"
status=0
wait "$job" || status=$?
[ "$status" -ne 0 ] || fail "the job succeeded although rank 1 was killed"
grep -qi "rank 1" "$dir/killed.out" || { cat "$dir/killed.out"; fail "the failure does not name rank 1"; }
echo "mpi_cli_test: killing rank 1 failed the job (exit $status): $(grep -i -m1 'rank 1' "$dir/killed.out")"
recipe 4 > "$dir/long.pbtxt"  # finish soon: the resumed run extends or ends at 4 epochs (Note [extending a run])
"${mpirun[@]}" "$prunerec" "${long[@]}" > "$dir/resumed.out" 2>&1 || { cat "$dir/resumed.out"; fail "the rerun failed"; }
grep -q "resuming from\|is finished\|already trained" "$dir/resumed.out" || { cat "$dir/resumed.out"; fail "the rerun did not resume"; }
[ -f "$dir/long.prc" ] || fail "the rerun wrote no model"
echo "mpi_cli_test: the rerun resumed and finished"

# 4. Resuming with another number of ranks is supported (docs/scale-out.md): 2 ranks train
#    one epoch, one process extends the run to two.
recipe 1 > "$dir/n.pbtxt"
n_train=(train --data "$dir/seq.txt" --out "$dir/n.prc" --threads=1)
"${mpirun[@]}" "$prunerec" "${n_train[@]}" --config "$dir/n.pbtxt" > "$dir/n2.out" 2>&1 || { cat "$dir/n2.out"; fail "2-rank epoch"; }
recipe 2 > "$dir/n.pbtxt"
"$prunerec" "${n_train[@]}" --config "$dir/n.pbtxt" > "$dir/n1.out" 2>&1 || { cat "$dir/n1.out"; fail "1-process resume"; }
grep -q "resuming from" "$dir/n1.out" || { cat "$dir/n1.out"; fail "one process did not resume the 2-rank run"; }
echo "mpi_cli_test: a 2-rank run resumed on one process"

# 5. Title mode is not data-parallel: under 2 ranks it is refused before any work, naming
#    the command (a title run that one process finishes, so only the refusal can fail it).
awk '{ print $1 "\t" ($1 % 2 ? "red" : "blue") " widget " $1 }' <(seq 100 139) > "$dir/titles.tsv"
title=(train --mode title --data "$dir/seq.txt" --titles "$dir/titles.tsv" --config "$dir/n.pbtxt" --epochs 1
       --max-len 64 --history 3 --vocab-size 200 --valid-limit 5 --test-limit 5 --threads=1 --quiet)
"$prunerec" "${title[@]}" --out "$dir/title.prc" > "$dir/t1.out" 2>&1 || { cat "$dir/t1.out"; fail "title mode on one process"; }
status=0
"${mpirun[@]}" "$prunerec" "${title[@]}" --out "$dir/title2.prc" > "$dir/t2.out" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "title mode under 2 ranks was not refused"
grep -q "train --mode title runs on one process" "$dir/t2.out" || { cat "$dir/t2.out"; fail "the refusal does not name title mode"; }
[ ! -e "$dir/title2.prc" ] || fail "the refused title run wrote a model"
echo "mpi_cli_test: title mode under 2 ranks refused (exit $status)"
echo "mpi_cli_test: PASS"
