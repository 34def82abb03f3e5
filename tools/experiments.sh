#!/usr/bin/env bash
# The real-data experiments behind docs/results/: teachers on four data sets, and the
# three-stage prune-and-distill schedule with its controls on the three Amazon sets.
# Each step is resumable (re-running the script continues where it stopped) and records
# its command and seed in the model files and reports. Run from the repository root:
#   bash tools/experiments.sh teachers        # ML-1M, Beauty, Toys, Games 2018
#   bash tools/experiments.sh prune beauty    # schedule + controls on one data set
# Output goes to $RUNS (default ../runs). The data is read from $DATA (../shared/data).
# THREADS (default: all cores) sets --threads; CONTROLS (default all) the prune controls.
# Two data sets can run side by side with THREADS=1 each (what docs/results/ did).
set -euo pipefail
cd "$(dirname "$0")/.."
PRUNEREC=${PRUNEREC:-./build/apps/prunerec}
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-../runs}
SEED=${SEED:-42}
THREADS=${THREADS:-0}
CONTROLS=${CONTROLS:-all}
threads_arg() { if [ "$THREADS" -gt 0 ]; then echo "--threads $THREADS"; fi; }

# data set -> arguments of `prunerec train` (data, titles, teacher epochs, history length)
data_args() {
  case "$1" in
    ml1m) echo "--data $DATA/ml-1m/train/input.txt --max-len 200 --epochs 20" ;;
    beauty) echo "--data $DATA/amazon-beauty/s3rec/Beauty.txt --item-map $DATA/amazon-beauty/s3rec_to_transrec_item.tsv --titles $DATA/amazon-beauty/transrec/title_maps.tsv --epochs 30" ;;
    toys) echo "--data $DATA/amazon-toys/s3rec/Toys_and_Games.txt --epochs 45" ;;
    games) echo "--data $DATA/amazon-games-2018/lcrec --item-map $DATA/amazon-games-2018/lcrec_to_llmrank_item.tsv --titles $DATA/amazon-games-2018/llmrank/Games.item --epochs 15" ;;
    *) echo "unknown data set $1 (ml1m, beauty, toys, games)" >&2; exit 2 ;;
  esac
}

# data set -> teacher recipe: the preset (weight decay 3.0) for the Amazon S3-Rec sets; the
# ML-1M and Games 2018 teachers of docs/results/teacher.md predate it (weight decay 0).
teacher_config() {
  case "$1" in
    ml1m|games) echo "docs/results/recipes/teacher-wd0.pbtxt" ;;
    *) echo "teacher" ;;
  esac
}

teacher() {
  local name=$1
  mkdir -p "$RUNS/$name"
  # shellcheck disable=SC2046
  /usr/bin/time -v "$PRUNEREC" train $(data_args "$name") --config "$(teacher_config "$name")" --seed "$SEED" $(threads_arg) \
    --out "$RUNS/$name/teacher.prc" --json > "$RUNS/$name/teacher.json" 2> "$RUNS/$name/teacher.log"
  "$PRUNEREC" eval --baseline popularity $(data_args "$name" | sed 's/--max-len [0-9]*//; s/--epochs [0-9]*//') \
    --json > "$RUNS/$name/popularity.json"
}

prune() {
  local name=$1
  "$PRUNEREC" prune --teacher "$RUNS/$name/teacher.prc" --schedule schedule --out "$RUNS/$name/prune" \
    --controls "$CONTROLS" $(threads_arg) > "$RUNS/$name/prune.md" 2> "$RUNS/$name/prune.log"
}

case "${1:-}" in
  teachers) for d in ${2:-ml1m beauty toys games}; do teacher "$d"; done ;;
  teacher) teacher "$2" ;;
  prune) prune "$2" ;;
  *) echo "usage: $0 teachers [names] | teacher NAME | prune NAME" >&2; exit 2 ;;
esac
