#!/usr/bin/env bash
# Issue 10: kill -9 at random points of `train`, `eval` and `report` (test_label_kill.sh does
# `label`). After each kill the workspace passes PRAGMA integrity_check, student.bin is the
# previous model byte for byte or a complete model that loads, report.json is absent, the
# previous one or whole JSON; a rerun then completes. The kill times are drawn uniformly from
# the stage's measured duration (US_KILL_SEED fixes the draw; US_KILL_ROUNDS per stage, default 6).
. "$(dirname "$0")/../integration/lib.sh"

ROUNDS=${US_KILL_ROUNDS:-6}
RANDOM=${US_KILL_SEED:-$$}
note "seed ${US_KILL_SEED:-$$}"

gen_prompts 400 "$WORK/prompts.jsonl"
start_teacher
# long enough (about a second) for a kill to land anywhere in training; without the model search
# (student.autotune, 30 s and more), whose candidates write nothing, so the kills land in the
# training and the save this test is about
SETTINGS=(student.dim=48 student.epochs=150 student.buckets=20000 student.threads=1 student.patience=0
  student.autotune=false)
write_config "$WORK/config.json" "${SETTINGS[@]}"
write_config "$WORK/old.json" "${SETTINGS[@]}" student.seed=7
expect_ok prompts prompts "$WORK/config.json"
expect_ok label label "$WORK/config.json"
expect_ok old train "$WORK/old.json"
cp "$WORK/out/student.bin" "$WORK/old.bin"
expect_ok old_eval eval "$WORK/old.json"
expect_ok old_report report "$WORK/old.json"
cp "$WORK/out/report.json" "$WORK/old.report.json"
cp -a "$WORK/out" "$WORK/base"
printf 'my card was charged twice\nthe app crashes\n' >"$WORK/predict.txt"

model_ok() { # the model file is the old one or loads
  [ -e "$WORK/out/student.bin" ] || return 0
  cmp -s "$WORK/out/student.bin" "$WORK/old.bin" && return 0
  "$US_BIN" predict "$WORK/out/student.bin" --input "$WORK/predict.txt" >/dev/null 2>"$WORK/load.err"
}
check_consistent() {
  local what=$1
  assert_eq "$(db 'PRAGMA integrity_check;')" ok "$what: integrity_check"
  model_ok || { show "$WORK/load.err"; fail "$what: student.bin is neither the old model nor loadable"; }
  if [ -e "$WORK/out/report.json" ] && ! cmp -s "$WORK/out/report.json" "$WORK/old.report.json"; then
    json_get verdict <"$WORK/out/report.json" >/dev/null 2>&1 ||
      python3 -m json.tool "$WORK/out/report.json" >/dev/null 2>&1 ||
      fail "$what: report.json is not whole JSON"
  fi
}

# duration STAGE: milliseconds an uninterrupted run of STAGE takes from the base workspace.
duration() {
  rm -rf "$WORK/out"
  cp -a "$WORK/base" "$WORK/out"
  [ "$1" = train ] || expect_ok "pre_$1" train "$WORK/config.json"
  [ "$1" = report ] && expect_ok "pre2_$1" eval "$WORK/config.json"
  local t0 t1
  t0=$(date +%s%N)
  expect_ok "time_$1" "$1" "$WORK/config.json"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

for stage in train eval report; do
  ms=$(duration "$stage")
  killed=0
  for ((r = 1; r <= ROUNDS; r++)); do
    rm -rf "$WORK/out"
    cp -a "$WORK/base" "$WORK/out"
    [ "$stage" = train ] || expect_ok "pre_$stage" train "$WORK/config.json"
    [ "$stage" = report ] && expect_ok "pre2_$stage" eval "$WORK/config.json"
    delay_ms=$(((RANDOM * 32768 + RANDOM) % (ms + 1)))
    start_us "kill_$stage" "$stage" "$WORK/config.json"
    sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -KILL "$US_PID" 2>/dev/null || true
    wait_us
    [ "$RC" -ne 137 ] || killed=$((killed + 1))
    check_consistent "$stage killed after $delay_ms ms (exit $RC)"
    expect_ok "rerun_$stage" "$stage" "$WORK/config.json"
    check_consistent "$stage rerun after the kill at $delay_ms ms"
    case $stage in
    train) [ -s "$WORK/out/student.bin" ] && ! cmp -s "$WORK/out/student.bin" "$WORK/old.bin" ||
      fail "the train rerun left the old model" ;;
    eval) expect_ok "post_report" report "$WORK/config.json" ;;
    report) for f in report.md report.json report.html; do
      [ -s "$WORK/out/$f" ] || fail "the report rerun wrote no $f"
    done ;;
    esac
  done
  note "$stage: $ms ms uninterrupted; $killed of $ROUNDS runs killed mid-way"
  [ "$killed" -ge 1 ] || fail "$stage: no run was killed before it finished; the test proves nothing"
done
leftover=$(find "$WORK/out" -name '*.tmp*' | head -3)
[ -z "$leftover" ] || note "temporary files left by killed runs: $leftover"
echo "PASS: $TEST_NAME"
