#!/usr/bin/env bash
# Configures and builds understudy into build/ (or $US_BUILD_DIR). Extra args go to cmake.
# The compiler's output goes to <dir>/build.log and is shown only when the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${US_BUILD_DIR:-build}
mkdir -p "$dir"
echo "understudy: building in $dir/ (log: $dir/build.log)" >&2
if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
       cmake --build "$dir" -j"$(nproc)"; } >"$dir/build.log" 2>&1; then
  grep -E "error|Error|warning" "$dir/build.log" | head -40 >&2 || true
  tail -20 "$dir/build.log" >&2
  echo "understudy: the build failed; the full log is $dir/build.log" >&2
  exit 1
fi
