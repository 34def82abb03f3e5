#!/usr/bin/env bash
# The install test: installs the release build (tools/setup.sh made it) into a fresh
# temporary prefix and uses it the ways an embedder would:
#   1. CMake, shared: builds examples/embed with find_package(prunerec) (CMAKE_PREFIX_PATH),
#      trains a small model with the installed `prunerec` on a synthetic data file, runs the
#      example and checks it prints k ranked items of the catalogue; checks the program
#      links libprunerec.so and none of its dependencies (they are private), and that
#      loading the model from memory gives the same lines;
#   2. CMake, static: the same example against libprunerec.a (COMPONENTS static);
#   3. pkg-config: compiles the same main.cc with `pkg-config --cflags --libs prunerec` and
#      checks it prints the same lines;
#   4. the installed libprunerec.so exports the public API only (tests/api/exported_symbols.sh).
# It also exports the model (`prunerec export`) and checks the folder's files. Everything
# happens under one temporary folder, removed at the end. Takes a few seconds.
#   bash tools/test_install.sh                 # uses ./build
#   PRUNEREC_BUILD_DIR=out bash tools/test_install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${PRUNEREC_BUILD_DIR:-build}
[ -x "$build/apps/prunerec" ] || { echo "test_install: no $build/apps/prunerec; run tools/setup.sh first" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/prunerec_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
fail() { echo "test_install: FAIL: $*" >&2; exit 1; }

echo "install: cmake --install $build --prefix <tmp>/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log" >&2; fail "cmake --install"; }
config=$(find "$prefix" -path '*/cmake/prunerec/prunerecConfig.cmake' | head -n 1)
pc=$(find "$prefix" -name prunerec.pc | head -n 1)
for f in "$prefix/include/prunerec/prunerec.h" "$prefix/bin/prunerec" "$config" "$pc" \
         "$(dirname "$config")/prunerecConfigVersion.cmake" "$(dirname "$config")/prunerecTargets.cmake"; do
  [ -n "$f" ] && [ -e "$f" ] || fail "missing installed file ${f:-(config or .pc)}"
done
# Only the public header is installed, and one library (shared + static), no area archives.
headers=$(find "$prefix/include" -type f | wc -l)
[ "$headers" -eq 1 ] || fail "expected only prunerec/prunerec.h under include/, found $headers files"
libdir=$(dirname "$(dirname "$(dirname "$config")")")
[ -f "$libdir/libprunerec.a" ] || fail "no libprunerec.a in $libdir"
so=$(find "$libdir" -maxdepth 1 -name 'libprunerec.so.*.*.*' | head -n 1)
[ -n "$so" ] || fail "no libprunerec.so.X.Y.Z in $libdir"
others=$(find "$libdir" -maxdepth 1 -name 'libprunerec_*' | wc -l)
[ "$others" -eq 0 ] || fail "area libraries installed: $(find "$libdir" -maxdepth 1 -name 'libprunerec_*')"
bash "$root/tests/api/exported_symbols.sh" "$so" || fail "the installed library exports more than the public API"

# A small user-seq data set: 300 users, items 1..100 that tend to follow each other.
awk 'BEGIN { srand(11); for (u = 1; u <= 300; u++) { n = 6 + int(rand() * 10); it = 1 + int(rand() * 100); line = u;
       for (k = 0; k < n; k++) { line = line " " it; it = (rand() < 0.7) ? (it % 100) + 1 : 1 + int(rand() * 100) }
       print line } }' >"$tmp/data.txt"
echo "model: <prefix>/bin/prunerec train --config small --epochs 1"
"$prefix/bin/prunerec" train --data "$tmp/data.txt" --config small --epochs 1 --out "$tmp/model.prc" --quiet \
  >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log" >&2; fail "prunerec train"; }

# 1. CMake consumer.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "cmake: examples/embed against the install (CMAKE_PREFIX_PATH)"
cmake -S "$root/examples/embed" -B "$tmp/embed" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/embed.log" 2>&1 || { cat "$tmp/embed.log" >&2; fail "configure examples/embed"; }
found=$(sed -n 's/^prunerec_DIR:PATH=//p' "$tmp/embed/CMakeCache.txt")
[ "$found" = "$(dirname "$config")" ] || fail "find_package found prunerec at '$found', not in the test prefix"
cmake --build "$tmp/embed" >>"$tmp/embed.log" 2>&1 || { cat "$tmp/embed.log" >&2; fail "build examples/embed"; }
# Linked against the shared library, and nothing of the engine's dependencies.
needed=$(readelf -d "$tmp/embed/embed_example" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "$needed" | grep -q '^libprunerec\.so' || fail "embed_example does not link libprunerec.so (NEEDED: $(echo $needed))"
if echo "$needed" | grep -Eq 'protobuf|tbb|openblas'; then
  fail "embed_example links the engine's dependencies itself (NEEDED: $(echo $needed))"
fi
echo "  ok: NEEDED $(echo $needed)"

k=5
"$tmp/embed/embed_example" "$tmp/model.prc" "$k" 1 2 3 >"$tmp/cmake.out" 2>"$tmp/cmake.err" \
  || { cat "$tmp/cmake.err" >&2; fail "embed_example"; }
lines=$(wc -l <"$tmp/cmake.out")
[ "$lines" -eq "$k" ] || { cat "$tmp/cmake.out" >&2; fail "embed_example printed $lines lines, expected $k"; }
# Each line: rank, an item id of the catalogue (1..100, never one of the history 1 2 3), a score.
awk -F'\t' -v k="$k" '{ if ($1 != NR || $2 !~ /^[0-9]+$/ || $2 < 4 || $2 > 100 || $3 !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) bad = 1 }
     END { exit bad }' "$tmp/cmake.out" || { cat "$tmp/cmake.out" >&2; fail "embed_example output is not k ranked item ids"; }
echo "  ok: $k ranked items: $(cut -f2 "$tmp/cmake.out" | tr '\n' ' ')"
"$tmp/embed/embed_example" --from-memory "$tmp/model.prc" "$k" 1 2 3 >"$tmp/memory.out" 2>"$tmp/memory.err" \
  || { cat "$tmp/memory.err" >&2; fail "embed_example --from-memory"; }
cmp -s "$tmp/cmake.out" "$tmp/memory.out" || { diff "$tmp/cmake.out" "$tmp/memory.out" >&2; fail "load_from_memory and load disagree"; }
echo "  ok: the same from memory"

echo "cmake: examples/embed against libprunerec.a (COMPONENTS static)"
cmake -S "$root/examples/embed" -B "$tmp/embed-static" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DPRUNEREC_EMBED_STATIC=ON >"$tmp/static.log" 2>&1 \
  && cmake --build "$tmp/embed-static" >>"$tmp/static.log" 2>&1 || { cat "$tmp/static.log" >&2; fail "static build of examples/embed"; }
readelf -d "$tmp/embed-static/embed_example" | grep -q 'libprunerec\.so' && fail "the static build links libprunerec.so"
"$tmp/embed-static/embed_example" "$tmp/model.prc" "$k" 1 2 3 >"$tmp/static.out" 2>/dev/null || fail "static embed_example"
cmp -s "$tmp/cmake.out" "$tmp/static.out" || { diff "$tmp/cmake.out" "$tmp/static.out" >&2; fail "static and shared builds disagree"; }
echo "  ok: same output"

# 2. pkg-config consumer.
command -v pkg-config >/dev/null || fail "pkg-config is not installed"
flags=$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags --libs prunerec) || fail "pkg-config --cflags --libs prunerec"
# The package says whether its command has MPI, as `prunerec --version` does (docs/scale-out.md).
pc_mpi=$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --variable=mpi prunerec)
cli_mpi=$("$prefix/bin/prunerec" --version | sed -n 's/^mpi: \(yes\|no\).*/\1/p')
[ -n "$pc_mpi" ] && [ "$pc_mpi" = "$cli_mpi" ] || fail "pkg-config says mpi=$pc_mpi, prunerec --version says '$cli_mpi'"
grep -Eq "^set\(prunerec_MPI (ON|OFF)\)" "$config" || fail "$config does not set prunerec_MPI"
echo "pkg-config: c++ -std=c++17 main.cc \$(pkg-config --cflags --libs prunerec)"
# shellcheck disable=SC2086
c++ -std=c++17 -O1 "$root/examples/embed/main.cc" -o "$tmp/pc_example" $flags 2>"$tmp/pc.log" \
  || { cat "$tmp/pc.log" >&2; fail "compile with pkg-config flags: $flags"; }
LD_LIBRARY_PATH="$libdir" "$tmp/pc_example" "$tmp/model.prc" "$k" 1 2 3 >"$tmp/pc.out" 2>/dev/null \
  || fail "pkg-config build of the example"
cmp -s "$tmp/cmake.out" "$tmp/pc.out" || { diff "$tmp/cmake.out" "$tmp/pc.out" >&2; fail "pkg-config and CMake builds disagree"; }
echo "  ok: same output"

# The export command of the installed binary.
"$prefix/bin/prunerec" export --model "$tmp/model.prc" --format safetensors --out "$tmp/hf" --check-random 2 >/dev/null \
  || fail "prunerec export"
for f in model.safetensors config.json items.tsv check.json; do [ -s "$tmp/hf/$f" ] || fail "export: no $f"; done
grep -q '"model_type": "qwen2"' "$tmp/hf/config.json" || fail "export: config.json has no model_type qwen2"
echo "export: ok"
echo "test_install: PASS"
