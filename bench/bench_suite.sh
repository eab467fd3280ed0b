#!/usr/bin/env bash
# Issue 13: understudy's classifier against fastText on a broader suite (banking77, SNIPS
# intents, and kim2014's SUBJ, CR, MPQA with 10-fold CV), side by side in one run: understudy's
# defaults, understudy's autotune (when the build has it), fastText with issue 13's fixed
# setting, and fastText's own -autotune-validation on the same validation slice with the same
# budget. The work is done by bench/suite.py; what it measures: bench/README.md.
#
# usage: bench/bench_suite.sh [--sets banking77,snips,subj,cr,mpqa] [--folds 10] [--budget 30]
#                             [--seeds 5] [--seed-sets cr,snips] [--tools LIST]
#                             [--no-understudy-autotune]
#                             [--no-fasttext] [--fresh] [--keep] [--markdown-only]
#   --sets        the data sets to run (default: all five)
#   --folds N     kim2014 sets: run folds 0..N-1 of the 10 (default 10)
#   --budget S    seconds of search for each autotune, per fold (default 30; 0 skips both)
#   --seeds N     understudy defaults with seeds 1..N on the --seed-sets (default 5)
#   --tools LIST  run only these of us_default,us_autotune,ft_fixed,ft_autotune; the others keep
#                 the figures of an earlier run on the same folds
#   --fresh       start bench/results_suite.json over (default: merge, replacing the sets run)
#   --keep        keep the split files and models under bench/results/suite/
#   --markdown-only  print the tables of bench/results_suite.json and stop
#   --merge FILE  copy the per-fold figures of another results file into it, print, stop
# env: BUILD (default build; bench_suite and understudy are built there if missing),
#      US_SHARED_DATA (default ../shared/data), OUT (default bench/results_suite.json)
# Everything runs under nice -n 5 with 2 threads at most.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${US_SHARED_DATA:-$ROOT/../shared/data}
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-$ROOT/bench/results_suite.json}
args=("$@")
for a in "$@"; do
  case $a in -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
done

markdown_only=0
for a in "$@"; do case $a in --markdown-only | --merge) markdown_only=1 ;; esac; done
if [ $markdown_only = 0 ]; then
  if [ ! -d "$DATA" ]; then
    echo "bench_suite: skipped: $DATA is absent (the suite needs ../shared/data: banking77, snips, kim2014)"
    exit 0
  fi
  if ! command -v fasttext >/dev/null; then
    echo "bench_suite: fastText is absent, so its columns are skipped (install it with" \
      "scripts/deps.sh bench, or apt-get install fasttext)" >&2
    args+=(--no-fasttext)
  fi
  if [ ! -x "$BUILD/bench/bench_suite" ] || [ ! -x "$BUILD/understudy" ]; then
    echo "bench_suite: building bench_suite and understudy in $BUILD" >&2
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    nice -n 5 cmake --build "$BUILD" -j2 --target bench_suite understudy_cli >/dev/null
  fi
  echo "bench_suite: $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
exec python3 "$ROOT/bench/suite.py" --driver "$BUILD/bench/bench_suite" \
  --us-bin "$BUILD/understudy" --data "$DATA" --out "$OUT" \
  --command "bench/bench_suite.sh $*" "${args[@]}"
