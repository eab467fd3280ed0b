#!/usr/bin/env bash
# Issue 9: `understudy run` is one call of the pipeline library, us_pipeline_run: the config is
# loaded and <output>/understudy.db opened exactly once (counted with strace), and the output is
# what the five commands print one after another. It stops as they do: a bad key at the prompts
# stage (exit 1), the budget at the label stage (3), Ctrl-C (130), each with the "run stopped
# at the X stage" line; a flag error is a usage error (2) without it.
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { echo "SKIP: strace is missing (apt-get install strace)"; exit 77; }
strace -f -qq -e trace=openat -o /dev/null true 2>/dev/null ||
  { echo "SKIP: strace cannot trace here (ptrace not permitted)"; exit 77; }

N=300
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
# one training thread: the same epochs (so the same progress lines) in both workspaces; a search
# budget that the model selection never reaches on 300 prompts (its default is wall-clock time,
# so a loaded machine would try fewer candidates in one of the two runs)
write_config "$WORK/config.json" student.threads=1 student.autotune_seconds=600

note "run under strace: config and workspace opened once"
RC=0
# LeakSanitizer cannot run under ptrace; the same run is leak-checked by the other tests
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -e trace=openat -o "$WORK/trace" "$US_BIN" run "$WORK/config.json" \
  >"$WORK/run.out" 2>"$WORK/run.err" || RC=$?
[ "$RC" -eq 0 ] || { show "$WORK/run.out" "$WORK/run.err"; fail "'understudy run' exited $RC"; }
opens() { grep -cF "\"$1\"" "$WORK/trace" || true; }
[ "$(opens "$WORK/out/understudy.db-wal")" -ge 1 ] || fail "strace saw no open of the WAL file"
assert_eq "$(opens "$WORK/out/understudy.db")" 1 "opens of $WORK/out/understudy.db by run"
assert_eq "$(opens "$WORK/config.json")" 1 "opens of the config by run"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts after run"
for f in student.bin report.md report.json report.html; do
  [ -s "$WORK/out/$f" ] || fail "run wrote no $f"
done

note "the same output as the five commands one by one"
write_config "$WORK/each.json" student.threads=1 student.autotune_seconds=600 output="$(json_quote "$WORK/each")"
: >"$WORK/each.out"
: >"$WORK/each.err"
for stage in prompts label train eval report; do
  expect_ok "each_$stage" "$stage" "$WORK/each.json"
  cat "$WORK/each_$stage.out" >>"$WORK/each.out"
  cat "$WORK/each_$stage.err" >>"$WORK/each.err"
done
# Timings and money differ from one run to the next: compare with every number masked, and
# without label's progress lines (printed every 5 s, so only when labelling is slow).
mask() {
  sed -e "s|$WORK/each|$WORK/out|g" -e '/^label: [0-9]*\/[0-9]*  cached/d' \
    -E -e 's/[0-9]+([.,][0-9]+)*(e[-+]?[0-9]+)?/N/g' "$1"
}
for s in out err; do
  mask "$WORK/run.$s" >"$WORK/run.$s.masked"
  mask "$WORK/each.$s" >"$WORK/each.$s.masked"
  diff "$WORK/each.$s.masked" "$WORK/run.$s.masked" >&2 ||
    fail "run's std$s differs from the five commands' (numbers masked)"
done
assert_grep "$WORK/run.out" '^report: ' "run ends with the report line"

note "a rerun opens the workspace once too and pays nothing"
requests=$(mock_stats requests)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -e trace=openat -o "$WORK/trace" "$US_BIN" run "$WORK/config.json" --quiet \
  >"$WORK/rerun.out" 2>"$WORK/rerun.err" || fail "the rerun failed"
assert_eq "$(opens "$WORK/out/understudy.db")" 1 "opens of the workspace by a rerun"
assert_eq "$(mock_stats requests)" "$requests" "requests sent by the rerun"

note "a bad key stops run at the prompts stage"
run_us badkey run "$WORK/config.json" --set student.hiden=[8]
assert_eq "$RC" 1 "exit status for a bad key"
assert_grep "$WORK/badkey.err" 'student\.hiden' "the error names the key"
assert_eq "$(tail -n 1 "$WORK/badkey.err")" \
  "understudy: run stopped at the prompts stage; fix the above and run again (finished work is kept)" \
  "the last line for a bad key"

note "an unknown flag is a usage error, without the stop line"
run_us badflag run "$WORK/config.json" --force
assert_eq "$RC" 2 "exit status for an unknown flag"
assert_grep "$WORK/badflag.err" "error: run: unknown option '--force'" "the error names the command and the flag"
assert_grep "$WORK/badflag.err" 'usage: understudy run' "the usage shown is run's"
assert_no_grep "$WORK/badflag.err" 'run stopped' "no stop line for a usage error"

note "the budget stops run at the label stage with exit 3"
write_config "$WORK/budget.json" output="$(json_quote "$WORK/budget")" teacher.budget_usd=0.5 \
  teacher.price.input_per_mtok=1 teacher.price.output_per_mtok=10000
run_us budget run "$WORK/budget.json"
[ "$RC" -eq 3 ] || { show "$WORK/budget.out" "$WORK/budget.err"; fail "exit status: expected 3, got $RC"; }
assert_grep "$WORK/budget.err" 'budget reached' "the budget stop says so"
assert_eq "$(tail -n 1 "$WORK/budget.err")" \
  "understudy: run stopped at the label stage; fix the above and run again (finished work is kept)" \
  "the last line at the budget"
assert_grep "$WORK/budget.out" '^prompts: [0-9]+ in all' "the label summary is printed"
[ -e "$WORK/budget/student.bin" ] && fail "run trained after the budget stop"

note "Ctrl-C stops run with exit 130"
start_teacher --latency-ms 100
write_config "$WORK/int.json" output="$(json_quote "$WORK/int")" teacher.concurrency=4
start_us int run "$WORK/int.json"
labelled_at_least() { [ -s "$WORK/int/understudy.db" ] && [ "$(db_targets "$WORK/int/understudy.db")" -ge "$1" ]; }
wait_until 60 labelled_at_least 20 || fail "fewer than 20 prompts labelled after 60 s"
kill -INT "$US_PID"
wait_us
[ "$RC" -eq 130 ] || { show "$WORK/int.err"; fail "exit status after SIGINT: expected 130, got $RC"; }
assert_grep "$WORK/int.err" 'run stopped at the label stage' "the stop line after Ctrl-C"
[ "$(db_unlabelled "$WORK/int/understudy.db")" -gt 0 ] || fail "run finished before SIGINT; the test proves nothing"
echo "PASS: $TEST_NAME"
