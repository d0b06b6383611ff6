#!/bin/sh
# `zig cc -E` given several inputs drops its own include dir ("stddef.h not found"), and MicroPython's
# qstr scanner passes many: preprocess one input per call. "-" means C from stdin.
# usage: zig-cpp.sh ZIG TARGET cpp-args...
ZIG=$1; ZIG_TARGET=$2; shift 2
flags=""; files=""
for a in "$@"; do
  case "$a" in
    -) files="$files -" ;;
    -*) flags="$flags '$(printf %s "$a" | sed "s/'/'\\\\''/g")'" ;;
    *.c|*.h|*.cpp) files="$files $a" ;;
    *) flags="$flags '$(printf %s "$a" | sed "s/'/'\\\\''/g")'" ;;
  esac
done
for f in $files; do
  if [ "$f" = "-" ]; then eval "\"$ZIG\" cc -target $ZIG_TARGET -E $flags -x c -" || exit 1
  else eval "\"$ZIG\" cc -target $ZIG_TARGET -E $flags \"$f\"" || exit 1
  fi
done
