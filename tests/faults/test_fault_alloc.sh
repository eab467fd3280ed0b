#!/usr/bin/env bash
# Issue 10, allocation failure injection: understudy_faults (our allocations routed through
# tests/faults/fault_alloc.c) runs each stage with its k-th allocation failing, for a classify
# task (config, prompts, label against the mock, train, eval, report) and a tiny language model
# (label, train, eval, report). Every run must either succeed or exit 1 with
# "understudy: error: ... out of memory ...", never crash, hang or leak (our allocations all
# freed at exit); the workspace passes PRAGMA integrity_check and student.bin is the previous
# model byte for byte or a complete model that loads.
# Which k: the first US_FAULT_DENSE (default 4) of each stage, then a stride that keeps each
# stage to about US_FAULT_SAMPLES (default 6) more runs, the stride's phase varying with the
# stage so that repeated runs with US_FAULT_SEED cover other ks. US_FAULT_FULL=1 sweeps every k
# (minutes; run it by hand after touching error paths); US_FAULT_ONLY=REGEX sweeps only the
# stages whose "stage:config" matches (e.g. 'train:lm' or 'label'). Every third run fails every
# allocation from the k-th on (US_FAULT_ALLOC_PERSIST=1) instead of the k-th alone.
# The runs wait on fsync more than they compute: keep the scratch folder in memory if we can.
[ -n "${TMPDIR:-}" ] || ! [ -w /dev/shm ] || export TMPDIR=/dev/shm
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/../integration/lib.sh"
: "${US_FAULT_BIN:?US_FAULT_BIN must name the understudy_faults binary}"

DENSE=${US_FAULT_DENSE:-4}
SAMPLES=${US_FAULT_SAMPLES:-6}
SEED=${US_FAULT_SEED:-0}
FULL=${US_FAULT_FULL:-0}
RUNS=0
FAILED_CLEANLY=0
ABSORBED=0
PROBLEMS=0

# check_run STAGE K CONFIG SNAPSHOT: restores the workspace from SNAPSHOT, runs STAGE with the
# K-th allocation failing and checks the outcome. Problems are listed, then counted.
problem() {
  echo "PROBLEM: $*" >&2
  PROBLEMS=$((PROBLEMS + 1))
}
check_run() {
  local stage=$1 k=$2 config=$3 snap=$4 ws
  ws=$(sed -n 's/.*"output": *"\([^"]*\)".*/\1/p' "$config" | head -1)
  rm -rf "$ws"
  [ -z "$snap" ] || cp -a "$snap" "$ws"
  rm -f "$WORK/stats"
  local rc=0 arg=$config
  [ "$stage" = predict ] && arg="$ws/student.bin --input $WORK/predict.txt"
  # shellcheck disable=SC2086
  US_FAULT_ALLOC_AT=$k US_FAULT_ALLOC_PERSIST=${PERSIST:-0} US_FAULT_ALLOC_STATS="$WORK/stats" timeout -s KILL 60 \
    "$US_FAULT_BIN" "$stage" $arg >"$WORK/f.out" 2>"$WORK/f.err" || rc=$?
  LAST_RC=$rc
  RUNS=$((RUNS + 1))
  local what="$stage k=$k${PERSIST:+ and after} ($(basename "$config"))"
  if [ "$rc" -ge 124 ]; then
    problem "$what: exit status $rc (crash or hang): $(tail -3 "$WORK/f.err" | tr '\n' ' ')"
    return
  fi
  if [ "$rc" -ne 0 ]; then
    FAILED_CLEANLY=$((FAILED_CLEANLY + 1))
    [ "$rc" -eq 1 ] || problem "$what: exit status $rc, expected 1"
    grep -q "^understudy: error: .*out of memory" "$WORK/f.err" ||
      problem "$what: no 'out of memory' error: $(head -3 "$WORK/f.err" | tr '\n' ' ')"
    grep -qiE "sanitizer|runtime error|assert" "$WORK/f.err" && problem "$what: $(head -3 "$WORK/f.err")"
  else
    ABSORBED=$((ABSORBED + 1))
    [ "${US_FAULT_VERBOSE:-0}" = 0 ] || [ "$k" = 0 ] ||
      note "$what succeeded: $(grep failed_at "$WORK/stats" | head -1)"
  fi
  if [ ! -s "$WORK/stats" ]; then
    problem "$what: no allocation statistics (did it exit through exit()?)"
  elif ! grep -q " live=0 " "$WORK/stats"; then
    problem "$what: leaked: $(head -4 "$WORK/stats" | tr '\n' ' ')"
  fi
  if [ -f "$ws/understudy.db" ]; then
    local ic
    ic=$(db 'PRAGMA integrity_check;' "$ws/understudy.db" 2>&1) || true
    [ "$ic" = ok ] || problem "$what: integrity_check: $ic"
  fi
  if [ -e "$ws/student.bin" ] && ! { [ -n "$snap" ] && cmp -s "$ws/student.bin" "$snap/student.bin"; }; then
    if grep -q '"type": *"generate"' "$config"; then
      "$US_BIN" generate "$ws/student.bin" --max-tokens 2 --prompt x >/dev/null 2>"$WORK/load.err" ||
        problem "$what: student.bin does not load: $(head -2 "$WORK/load.err")"
    else
      echo "hello" | "$US_BIN" predict "$ws/student.bin" >/dev/null 2>"$WORK/load.err" ||
        problem "$what: student.bin does not load: $(head -2 "$WORK/load.err")"
    fi
  fi
  ls "$ws" 2>/dev/null | grep -E '\.tmp|~$' >/dev/null && problem "$what: temporary file left: $(ls "$ws")"
  return 0
}

# sweep STAGE CONFIG SNAPSHOT: counts the stage's allocations in a clean run, then runs the ks.
sweep() {
  local stage=$1 config=$2 snap=$3 calls k stride phase n=0 t0=$SECONDS
  [[ "$stage:$(basename "$config")" =~ ${US_FAULT_ONLY:-.} ]] || return 0
  local before=$PROBLEMS
  check_run "$stage" 0 "$config" "$snap"
  [ "$LAST_RC" -eq 0 ] && [ "$PROBLEMS" -eq "$before" ] || fail "$stage without any failure: $(head -3 "$WORK/f.err")"
  calls=$(sed -n 's/^calls=\([0-9]*\).*/\1/p' "$WORK/stats")
  if [ "$FULL" = 1 ]; then
    stride=1
  else
    stride=$(((calls - DENSE) / SAMPLES + 1))
    [ "$stride" -ge 1 ] || stride=1
  fi
  phase=$(((SEED * 7 + ${#stage} * 3 + ${#config}) % stride))
  for ((k = 1; k <= calls; k++)); do
    if [ "$k" -le "$DENSE" ] || [ $(((k - DENSE) % stride)) -eq "$phase" ]; then
      # every third run fails every allocation from the k-th on: the error path must not need
      # memory either
      PERSIST=
      [ $((n % 3)) -ne 2 ] || PERSIST=1
      check_run "$stage" "$k" "$config" "$snap"
      PERSIST=
      n=$((n + 1))
    fi
  done
  note "$stage ($(basename "$config")): $calls allocations, $n runs (stride $stride), $((SECONDS - t0)) s"
}

# snapshot NAME CONFIG: copies the workspace of CONFIG to $WORK/snap/NAME.
snapshot() {
  local ws
  ws=$(sed -n 's/.*"output": *"\([^"]*\)".*/\1/p' "$2" | head -1)
  mkdir -p "$WORK/snap"
  rm -rf "$WORK/snap/$1"
  cp -a "$ws" "$WORK/snap/$1"
}

gen_prompts 40 "$WORK/prompts.jsonl"
printf 'my card was charged twice\nthe app crashes\n' >"$WORK/predict.txt"
start_teacher
TINY=(student.dim=8 student.epochs=2 student.buckets=1000 student.threads=1)
write_config "$WORK/cls.json" "${TINY[@]}"
# the previous model: trained with another seed, so that a new one differs from it
write_config "$WORK/old.json" "${TINY[@]}" student.seed=7

note "classify: config and prompts"
sweep prompts "$WORK/cls.json" ""
expect_ok p prompts "$WORK/cls.json"
snapshot prompted "$WORK/cls.json"
note "classify: label against the mock"
sweep label "$WORK/cls.json" "$WORK/snap/prompted"
expect_ok l label "$WORK/cls.json"
expect_ok t0 train "$WORK/old.json"
snapshot labelled "$WORK/cls.json"
note "classify: train (over a previous model)"
sweep train "$WORK/cls.json" "$WORK/snap/labelled"
expect_ok t train "$WORK/cls.json"
snapshot trained "$WORK/cls.json"
sweep predict "$WORK/cls.json" "$WORK/snap/trained"
note "classify: eval"
sweep eval "$WORK/cls.json" "$WORK/snap/trained"
expect_ok e eval "$WORK/cls.json"
snapshot evaluated "$WORK/cls.json"
note "classify: report"
sweep report "$WORK/cls.json" "$WORK/snap/evaluated"

note "generate: a tiny language model"
stop_mock
start_mock
LM=(student.preset='"nano"' student.steps=2 student.batch_size=2 student.warmup_steps=1
  student.vocab_size=270 student.threads=1 student.checkpoint_every=0 teacher.max_tokens=16)
write_config "$WORK/lm.json" 'task={"type":"generate","template":"{text}"}' "${LM[@]}" \
  output="$(json_quote "$WORK/lm")"
expect_ok gp prompts "$WORK/lm.json"
snapshot lm_prompted "$WORK/lm.json"
sweep label "$WORK/lm.json" "$WORK/snap/lm_prompted"
expect_ok gl label "$WORK/lm.json"
snapshot lm_labelled "$WORK/lm.json"
sweep train "$WORK/lm.json" "$WORK/snap/lm_labelled"
expect_ok gt train "$WORK/lm.json"
snapshot lm_trained "$WORK/lm.json"
sweep eval "$WORK/lm.json" "$WORK/snap/lm_trained"
expect_ok ge eval "$WORK/lm.json"
snapshot lm_evaluated "$WORK/lm.json"
sweep report "$WORK/lm.json" "$WORK/snap/lm_evaluated"

note "$RUNS runs: $FAILED_CLEANLY failed cleanly, $ABSORBED absorbed the failure and succeeded"
[ "$PROBLEMS" -eq 0 ] || fail "$PROBLEMS problems (listed above)"
echo "PASS: $TEST_NAME"
