#!/usr/bin/env bash
# The dynamic symbols libprunerec.so defines must be the public API of
# include/prunerec/prunerec.h and nothing else (Note [library ABI] there):
#   bash tests/api/exported_symbols.sh build/libprunerec.so
# Lists them with `nm -D --defined-only`, demangled, and fails on any outside
# prunerec::api::v<major>_<minor> (its functions, typeinfo and vtables), naming each.
# It also fails when an expected entry point is missing, so an empty export list (or a
# script that matched nothing) cannot pass.
set -euo pipefail
lib=${1:?usage: exported_symbols.sh LIBPRUNEREC_SO}
[ -f "$lib" ] || { echo "exported_symbols: no file $lib" >&2; exit 1; }
# Symbols the linker defines in every shared object, and the version node's name.
linker='^(_init|_fini|_edata|_end|__bss_start|PRUNEREC_[0-9]+\.[0-9]+)$'
symbols=$(nm -D --defined-only --demangle "$lib" | awk '{ $1 = ""; $2 = ""; sub(/^  /, ""); print }' | sort -u)
[ -n "$symbols" ] || { echo "exported_symbols: $lib exports nothing" >&2; exit 1; }
ns='prunerec::api::v[0-9]+_[0-9]+::'
bad=$(printf '%s\n' "$symbols" | grep -Ev "$linker" |
      grep -Ev "^((typeinfo|typeinfo name|vtable) for )?${ns}" || true)
count=$(printf '%s\n' "$symbols" | grep -Ec "$ns" || true)
echo "exported_symbols: $lib: $count symbols of the public API"
if [ -n "$bad" ]; then
  echo "exported_symbols: FAIL: symbols outside the public API:" >&2
  printf '  %s\n' "$bad" >&2
  exit 1
fi
for expected in "${ns}Recommender::load(" "${ns}Recommender::load_from_memory(" "${ns}Recommender::recommend_batch(" \
                "${ns}set_num_threads(int)" "${ns}version()" "typeinfo for ${ns}Error" "vtable for ${ns}Error"; do
  # A here-string, not `printf | grep -q`: grep -q exits at the first match and, under
  # pipefail, printf's SIGPIPE would fail the check at random.
  grep -Eq "^${expected//(/\\(}" <<<"$symbols" ||
    { echo "exported_symbols: FAIL: $lib does not export ${expected}" >&2; exit 1; }
done
echo "exported_symbols: PASS"
