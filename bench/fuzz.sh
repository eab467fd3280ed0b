#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS (see tests/fuzz/README.md):
#   bench/fuzz.sh TARGET SECONDS        e.g. bench/fuzz.sh config 600
# Installs clang if missing (scripts/deps.sh fuzz), builds the target with -DUS_FUZZ=ON (clang,
# -fsanitize=fuzzer,address,undefined) into build-fuzz/ (or $US_FUZZ_BUILD_DIR), and fuzzes,
# starting from tests/fuzz/corpus/TARGET and tests/fuzz/crashes/TARGET. New interesting inputs
# go to build-fuzz/fuzz-new/TARGET/ (a scratch folder; the committed corpus is never written:
# copy a few there by hand when they are worth keeping). Prints the executions and whether it
# found a crash, a leak, an out-of-memory or a timeout; each such input is copied into
# tests/fuzz/crashes/TARGET/ so the test suite replays it from then on. tests/fuzz/TARGET.dict,
# when there is one, is passed as libFuzzer's dictionary. Exit status: 0 nothing
# found, 1 something found, 2 usage or build error. Extra libFuzzer flags: $US_FUZZ_FLAGS.
# One fuzzer process at a time, one build job ($US_FUZZ_JOBS to change that).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//' | tr '\n' ' ')
if [ $# -ne 2 ] || [ ! -f "tests/fuzz/fuzz_$1.c" ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: bench/fuzz.sh TARGET SECONDS   (targets: $targets)" >&2
  exit 2
fi
target=$1 seconds=$2
scripts/deps.sh fuzz || exit 2
dir=${US_FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$dir"
echo "fuzz: building fuzz_$target in $dir/ (log: $dir/build.log)" >&2
if ! { cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DUS_FUZZ=ON -DBUILD_TESTING=OFF &&
       cmake --build "$dir" --target "fuzz_$target" -j"${US_FUZZ_JOBS:-1}"; } >"$dir/build.log" 2>&1; then
  grep -E "error|Error" "$dir/build.log" | head -20 >&2 || true
  echo "fuzz: the build failed; the full log is $dir/build.log" >&2
  exit 2
fi

new="$dir/fuzz-new/$target"
artifacts="$dir/fuzz-artifacts/$target"
crashes="tests/fuzz/crashes/$target"
log="$dir/fuzz-$target.log"
mkdir -p "$new" "$artifacts" "$crashes"
rm -f "$artifacts"/*
echo "fuzz: running fuzz_$target for $seconds s (log: $log)" >&2
# The first folder receives new inputs; the corpus and the crash inputs are only read.
dict=()
[ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  nice "$dir/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${US_FUZZ_FLAGS:-} \
    "$new" "tests/fuzz/corpus/$target" "$crashes" >"$log" 2>&1 || status=$?

# Executions: the final stats, or (fork mode, -fork=N) the last status line's count.
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
[ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
echo "fuzz: target $target, $seconds s, ${execs:-?} executions, $(ls "$new" | wc -l) new inputs in $new"
[ -n "$last" ] && echo "fuzz: last status: $last"
found=0
for f in "$artifacts"/*; do
  [ -e "$f" ] || continue
  found=1
  cp "$f" "$crashes/"
  echo "fuzz: FOUND $(basename "$f" | cut -d- -f1): kept as $crashes/$(basename "$f")"
done
if [ "$found" -eq 1 ] || [ "$status" -ne 0 ]; then
  { grep -E '^==[0-9]+==ERROR|runtime error|^SUMMARY|out-of-memory|ALARM|deadly signal' "$log" ||
      true; } | head -8 | sed 's/^/fuzz:   /'
  echo "fuzz: libFuzzer exited with status $status; the stack is in $log"
  exit 1
fi
echo "fuzz: no crash found"
