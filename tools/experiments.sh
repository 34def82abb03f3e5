#!/usr/bin/env bash
# The real-data experiments behind docs/results/: teachers on four data sets, and the
# three-stage prune-and-distill schedule with its controls on the three Amazon sets.
# Each step is resumable (re-running the script continues where it stopped) and records
# its command and seed in the model files and reports. Run from the repository root:
#   bash tools/experiments.sh teachers        # ML-1M, Beauty, Toys, Games 2018
#   bash tools/experiments.sh prune beauty    # schedule + controls on one data set
#   bash tools/experiments.sh gate ml1m       # the gate sweep: from scratch at 4 sizes x a recipe grid
#   bash tools/experiments.sh losses beauty   # full softmax, sampled softmax and gBCE, 3 seeds
#   bash tools/experiments.sh title           # title mode on Games 2018 beside item-token mode
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

# The gate sweep (docs/results/when-to-prune.md): models trained from scratch at sizes from
# the pruned models' final size up to the teacher's, each size with the recipe of a grid
# that scores best on validation NDCG@10. Pruning can only win where a bigger model learns
# more than a small one. Sizes (non-embedding parameters; head_dim 32):
#   xs 132,096 (the final size of prune.md)   s 558,976   m 1,575,872   l 3,804,928 (the teacher)
gate_size() {
  case "$1" in
    xs) echo "128 2 4 1 64" ;;
    s) echo "128 4 4 1 256" ;;
    m) echo "192 4 6 2 512" ;;
    l) echo "256 4 8 2 1024" ;;
    *) echo "unknown size $1 (xs, s, m, l)" >&2; exit 2 ;;
  esac
}

# gate_recipe SIZE WEIGHT_DECAY DROPOUT LR: a train recipe in text format on stdout
# (max_len and epochs come from data_args, as for the teachers).
gate_recipe() {
  local hidden layers heads kv mlp
  read -r hidden layers heads kv mlp <<<"$(gate_size "$1")"
  cat <<RECIPE
# gate sweep: size $1, weight decay $2, dropout $3, lr $4 (tools/experiments.sh gate_recipe)
model {
  name: "gate-$1"
  hidden: $hidden
  head_dim: 32
  max_len: 50
  rope_theta: 10000
  num_layers: $layers
  layer_defaults { num_heads: $heads num_kv_heads: $kv mlp_width: $mlp }
}
train {
  epochs: 60
  batch_tokens: 6400
  dropout: $3
  optimizer { lr: $4 weight_decay: $2 warmup_fraction: 0.02 min_lr_ratio: 0.1 }
  eval_every: 1
  patience: 8
}
data { split: LEAVE_ONE_OUT }
RECIPE
}

# The grid, in the order the runs are made: every size at one recipe before the next
# recipe, so a sweep cut short still spans the sizes.
GATE_SIZES=${GATE_SIZES:-"xs l s m"}
GATE_GRID=${GATE_GRID:-"wd0-do0.3-lr1e-3 wd1-do0.3-lr1e-3 wd3-do0.3-lr1e-3"}

# One run: skipped when its result exists; otherwise trained (resuming a stopped run) and
# its `train --json` result published under a temporary name, then renamed.
gate_run() {
  local name=$1 size=$2 point=$3 wd dropout lr dir
  wd=${point#wd}; wd=${wd%%-*}
  dropout=${point#*-do}; dropout=${dropout%%-*}
  lr=${point##*-lr}
  dir="$RUNS/gate/$name/$size-$point"
  [ -s "$dir/result.json" ] && return 0
  mkdir -p "$dir"
  gate_recipe "$size" "$wd" "$dropout" "$lr" > "$dir/recipe.pbtxt"
  echo "gate $name $size $point: started $(date -u +%FT%TZ)" >&2
  # shellcheck disable=SC2046
  /usr/bin/time -v "$PRUNEREC" train $(data_args "$name") --config "$dir/recipe.pbtxt" --seed "$SEED" $(threads_arg) \
    --out "$dir/model.prc" --json > "$dir/result.json.tmp" 2>> "$dir/train.log"
  mv "$dir/result.json.tmp" "$dir/result.json"
}

gate() {
  local name=$1 size point
  for point in $GATE_GRID; do
    for size in $GATE_SIZES; do gate_run "$name" "$size" "$point"; done
  done
}

# The output-loss comparison of issue 17 (docs/results/losses.md): full softmax, sampled
# softmax (uniform negatives, log-Q correction) and gBCE at the same size, recipe and epochs,
# LOSS_SEEDS seeds each; every run writes its per-user test ranks for `prunerec compare`.
# Size and recipe: LOSS_SIZE (default xs, the pruned models' final size) with weight decay
# LOSS_WD; LOSS_EPOCHS (default 10) epochs without early stopping, so every loss gets the
# same budget.
LOSS_SIZE=${LOSS_SIZE:-xs}
LOSS_WD=${LOSS_WD:-0}
LOSS_EPOCHS=${LOSS_EPOCHS:-10}
LOSS_SEEDS=${LOSS_SEEDS:-"1 2 3"}
LOSS_KINDS=${LOSS_KINDS:-"FULL SAMPLED GBCE"}
loss_run() {
  local name=$1 kind=$2 seed=$3 dir
  dir="$RUNS/losses/$name/$kind-s$seed"
  [ -s "$dir/test.json" ] && return 0
  mkdir -p "$dir"
  gate_recipe "$LOSS_SIZE" "$LOSS_WD" 0.3 1e-3 \
    | sed "s/  patience: 8/  patience: 1000\n  loss { kind: $kind negatives: 256 sampler: UNIFORM }/" > "$dir/recipe.pbtxt"
  echo "losses $name $kind seed $seed: started $(date -u +%FT%TZ)" >&2
  # shellcheck disable=SC2046
  /usr/bin/time -v "$PRUNEREC" train $(data_args "$name" | sed 's/--epochs [0-9]*//') --epochs "$LOSS_EPOCHS" \
    --config "$dir/recipe.pbtxt" --seed "$seed" $(threads_arg) --out "$dir/model.prc" --json \
    > "$dir/result.json.tmp" 2>> "$dir/train.log"
  mv "$dir/result.json.tmp" "$dir/result.json"
  "$PRUNEREC" eval --model "$dir/model.prc" --split test $(threads_arg) --per-user "$dir/test-ranks.tsv" --json \
    > "$dir/test.json.tmp" && mv "$dir/test.json.tmp" "$dir/test.json"
}

losses() {
  local name=$1 seed kind
  for seed in $LOSS_SEEDS; do
    for kind in $LOSS_KINDS; do loss_run "$name" "$kind" "$seed"; done
  done
}

# Title mode on Games 2018 (docs/results/title-mode.md): the paper's recommender, trained
# from scratch at the small preset's size with a tokenizer trained on the catalogue, beside
# an item-token model of the same size that reads the same last 10 items (--max-len 10),
# both evaluated on the first TITLE_TEST test users with per-user ranks for `prunerec compare`.
TITLE_EPOCHS=${TITLE_EPOCHS:-2}
TITLE_SAMPLES=${TITLE_SAMPLES:-2}
TITLE_TEST=${TITLE_TEST:-1000}
title() {
  local dir="$RUNS/title/games" data
  data=$(data_args games | sed 's/--epochs [0-9]*//')
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  if [ ! -s "$dir/title-train.json" ]; then
    echo "title games: training started $(date -u +%FT%TZ)" >&2
    /usr/bin/time -v "$PRUNEREC" train --mode title $data --config small --max-len 512 --samples-per-user "$TITLE_SAMPLES" \
      --epochs "$TITLE_EPOCHS" --valid-limit 300 --test-limit "$TITLE_TEST" --seed "$SEED" $(threads_arg) \
      --out "$dir/title.prc" --json > "$dir/title-train.json.tmp" 2> "$dir/title-train.log"
    mv "$dir/title-train.json.tmp" "$dir/title-train.json"
  fi
  if [ ! -s "$dir/item-train.json" ]; then
    /usr/bin/time -v "$PRUNEREC" train $data --config small --max-len 10 --seed "$SEED" $(threads_arg) \
      --out "$dir/item.prc" --json > "$dir/item-train.json.tmp" 2> "$dir/item-train.log"
    mv "$dir/item-train.json.tmp" "$dir/item-train.json"
  fi
  if [ ! -s "$dir/title-test.json" ]; then
    "$PRUNEREC" eval --model "$dir/title.prc" --split test --limit "$TITLE_TEST" $(threads_arg) \
      --per-user "$dir/title-ranks.tsv" --json > "$dir/title-test.json.tmp" && mv "$dir/title-test.json.tmp" "$dir/title-test.json"
  fi
  # Item-token evaluation ranks every test user; its first TITLE_TEST users (the file's
  # header and column lines, then users in example order) pair with the title model's.
  if [ ! -s "$dir/item-test.json" ]; then
    "$PRUNEREC" eval --model "$dir/item.prc" --split test $(threads_arg) --per-user "$dir/item-ranks-all.tsv" --json \
      > "$dir/item-test.json.tmp" && mv "$dir/item-test.json.tmp" "$dir/item-test.json"
  fi
  head -n $((TITLE_TEST + 2)) "$dir/item-ranks-all.tsv" > "$dir/item-ranks.tsv"
  "$PRUNEREC" compare --a "$dir/title-ranks.tsv" --b "$dir/item-ranks.tsv" --json > "$dir/compare.json"
}

case "${1:-}" in
  gate) gate "$2" ;;
  losses) losses "$2" ;;
  title) title ;;
  teachers) for d in ${2:-ml1m beauty toys games}; do teacher "$d"; done ;;
  teacher) teacher "$2" ;;
  prune) prune "$2" ;;
  *) echo "usage: $0 teachers [names] | teacher NAME | prune NAME | gate NAME | losses NAME | title" >&2; exit 2 ;;
esac
