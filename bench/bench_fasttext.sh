#!/usr/bin/env bash
# Issue 4: understudy's classifier against fastText, side by side on one machine.
# Protocol (the same for both tools): the train split minus a validation slice trains the
# weights; the validation slice picks the settings (fastText: its own autotune; understudy: its
# fixed defaults plus early stopping); the test split is used once, at the end. Both train with
# 2 threads; prediction speed is single-threaded through each tool's streaming CLI.
# Data: ../shared/data/banking77 (slice: train rows with us_hash64(text) % 10 == 0) and
# ../shared/data/snips (its own valid/ folder). fastText gets its tutorial's preprocessing
# (punctuation split off, lower case), which understudy's tokeniser does itself.
#
# usage: bench/bench_fasttext.sh            env: BUILD (default build), REPEAT (3),
#                                                AUTOTUNE_SECONDS (300), US_BIN, DATASETS,
#                                                BENCH_CLASSIFIER, REUSE_AUTOTUNE=1
# writes bench/results/<dataset>.json, bench/results/results.json (all data sets and the machine)
# and bench/results/fasttext_comparison.md, and prints the Markdown
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${US_SHARED_DATA:-$ROOT/../shared/data}
BUILD=${BUILD:-$ROOT/build}
REPEAT=${REPEAT:-3}
AUTOTUNE_SECONDS=${AUTOTUNE_SECONDS:-300}
OUT=$ROOT/bench/results
DATASETS=${DATASETS:-"banking77 snips"}

if ! command -v fasttext >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y fasttext
  else
    echo "bench_fasttext: fastText is missing; install it with: sudo apt-get install -y fasttext" >&2
    exit 1
  fi
fi
if [ ! -d "$DATA/banking77" ]; then
  echo "bench_fasttext: skipped: $DATA/banking77 is absent (the benchmark needs ../shared/data)"
  exit 0
fi
BC=${BENCH_CLASSIFIER:-$BUILD/bench/bench_classifier}
export US_BIN=${US_BIN:-$BUILD/understudy}
if [ ! -x "$BC" ] || [ ! -x "$US_BIN" ]; then
  cmake -S "$ROOT" -B "$BUILD" >/dev/null
  cmake --build "$BUILD" -j2 --target bench_classifier understudy_cli >/dev/null
fi
mkdir -p "$OUT"

# /usr/bin/time -v fields: wall seconds, CPU seconds (user + sys), peak RSS in KB
timed() { # timed LOGFILE COMMAND... (the command's stdout goes to LOGFILE.out)
  local log=$1; shift
  /usr/bin/time -v "$@" >"$log.out" 2>"$log"
}
time_fields() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def f(k): return re.search(re.escape(k) + r"\s*:?\s*(\S+)", t).group(1)
w = f("Elapsed (wall clock) time (h:mm:ss or m:ss):").split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
print(wall, float(f("User time (seconds):")) + float(f("System time (seconds):")),
      int(f("Maximum resident set size (kbytes):")))
PY
}

bench_dataset() {
  local ds=$1 args W
  case $ds in
    banking77) args=(--csv "$DATA/banking77") ;;
    snips) args=(--snips "$DATA/snips") ;;
    *) echo "bench_fasttext: unknown data set $ds" >&2; return 1 ;;
  esac
  if [ "$ds" = snips ] && [ ! -d "$DATA/snips" ]; then
    echo "bench_fasttext: skipped snips: $DATA/snips is absent"; return 0
  fi
  W=$OUT/work/$ds
  rm -rf "$W/us_speed_"* "$W/ft_speed_"* "$W/us_time_"* "$W/ft_time_"*
  mkdir -p "$W"
  echo "== $ds: exporting the split" >&2
  "$BC" "${args[@]}" --export "$W" --no-test --set epochs=1 --model "$W/export_student.bin" >/dev/null 2>&1
  sed 's/^__label__[^ ]* //' "$W/test.txt" >"$W/test_text.txt"

  echo "== $ds: fastText autotune (${AUTOTUNE_SECONDS}s on the validation slice)" >&2
  if [ "${REUSE_AUTOTUNE:-0}" = 1 ] && [ -s "$W/autotune.bin" ]; then
    echo "   (REUSE_AUTOTUNE=1: keeping $W/autotune.bin)" >&2
  else
    fasttext supervised -input "$W/train.txt" -output "$W/autotune" -thread 2 \
      -autotune-validation "$W/valid.txt" -autotune-duration "$AUTOTUNE_SECONDS" -verbose 3 \
      >"$W/autotune.log" 2>&1
  fi
  # the best settings: dump gives all but lr, which the verbose log reports for the best trial
  local ft_args
  ft_args=$(python3 "$ROOT/bench/fasttext_args.py" "$W/autotune.bin" "$W/autotune.log")
  echo "fastText best: $ft_args" >&2
  echo "$ft_args" >"$W/fasttext_args.txt"

  for r in $(seq 1 "$REPEAT"); do # alternate the tools
    echo "== $ds: round $r/$REPEAT understudy" >&2
    timed "$W/us_time_$r" "$BC" "${args[@]}" --model "$W/student.bin" --repeat 1
    echo "== $ds: round $r/$REPEAT fastText" >&2
    # shellcheck disable=SC2086
    timed "$W/ft_time_$r" fasttext supervised -input "$W/train.txt" -output "$W/fasttext" \
      -thread 2 -verbose 0 $ft_args
  done
  fasttext test "$W/fasttext.bin" "$W/test.txt" >"$W/ft_test.txt"
  fasttext quantize -input "$W/train.txt" -output "$W/fasttext" -qnorm -retrain -epoch 1 \
    -cutoff 100000 -thread 2 -verbose 0
  fasttext test "$W/fasttext.ftz" "$W/test.txt" >"$W/ft_test_q.txt"
  echo "== $ds: prediction speed (single thread, streaming CLI, alternating)" >&2
  # fastText's predict-prob answers with the label and its probability, as understudy does
  for r in $(seq 1 "$REPEAT"); do
    python3 "$ROOT/bench/fasttext_latency.py" "$W/test_text.txt" 1 -- \
      fasttext predict-prob "$W/fasttext.bin" - >"$W/ft_speed_$r.json"
    python3 "$ROOT/bench/fasttext_latency.py" "$W/test_text.txt" 1 -- \
      "$US_BIN" predict "$W/student.bin" >"$W/us_speed_$r.json"
  done
  for r in $(seq 1 "$REPEAT"); do
    echo "$(time_fields "$W/us_time_$r") $(time_fields "$W/ft_time_$r")"
  done >"$W/times.txt"
  python3 "$ROOT/bench/fasttext_report.py" "$ds" "$W" "$OUT/$ds.json"
}

for ds in $DATASETS; do bench_dataset "$ds"; done
python3 "$ROOT/bench/fasttext_report.py" --markdown "$OUT" "REPEAT=$REPEAT AUTOTUNE_SECONDS=$AUTOTUNE_SECONDS REUSE_AUTOTUNE=${REUSE_AUTOTUNE:-0} DATASETS=\"$DATASETS\" bench/bench_fasttext.sh" \
  >"$OUT/fasttext_comparison.md"
cat "$OUT/fasttext_comparison.md"
