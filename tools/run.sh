#!/usr/bin/env bash
# The main job: sets up (tools/setup.sh), then runs the whole pipeline on the built-in
# synthetic data set: train a teacher, run the three-stage prune-and-distill schedule,
# print the ledger. Output in ./runs/default: teacher.prc, and prune/ with report.md, the
# charts and the stage checkpoints.
#   bash tools/run.sh                              # built-in default
#   bash tools/run.sh --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --out runs/beauty
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec ./build/apps/prunerec run "$@"
