#!/usr/bin/env bash
# Issue 10, defect 4: prompts left unlabelled after their retries (400 to everything, an
# unreachable server with max_retries=0) make `label` exit 4 with the most common cause on
# stderr, and `run` stop at the label stage with that cause.
. "$(dirname "$0")/lib.sh"

fresh() { rm -rf "$WORK/out"; }

N=20
gen_prompts "$N" "$WORK/prompts.jsonl"

note "defect 4: 400 to everything: label exits 4 with the cause on stderr"
start_teacher --fail-status 400
write_config "$WORK/config.json"
expect_ok prompts4 prompts "$WORK/config.json"
run_us label4 label "$WORK/config.json"
[ "$RC" -eq 4 ] || { show "$WORK/label4.out" "$WORK/label4.err"; fail "400s: label exit $RC, expected 4"; }
assert_grep "$WORK/label4.err" "$N of $N prompts remain unlabelled" "400s: how many"
assert_grep "$WORK/label4.err" "most common cause \($N of $N\): HTTP 400" "400s: the cause"
assert_grep "$WORK/label4.out" "$N failed" "400s: the summary"

note "defect 4: run stops at the label stage with that cause"
run_us run4 run "$WORK/config.json"
[ "$RC" -eq 4 ] || { show "$WORK/run4.out" "$WORK/run4.err"; fail "400s: run exit $RC, expected 4"; }
assert_grep "$WORK/run4.err" "HTTP 400" "run: the cause"
assert_grep "$WORK/run4.err" "run stopped at the label stage" "run: the stage"
assert_no_grep "$WORK/run4.err" "understudy label. first" "run: the train stage's hint"
stop_mock
fresh

note "defect 4: an unreachable teacher with max_retries=0"
MOCK_URL= write_config "$WORK/config.json" teacher.max_retries=0
expect_ok prompts4u prompts "$WORK/config.json"
run_us label4u label "$WORK/config.json"
[ "$RC" -eq 4 ] || { show "$WORK/label4u.out" "$WORK/label4u.err"; fail "unreachable: label exit $RC, expected 4"; }
assert_grep "$WORK/label4u.err" "remain unlabelled.*most common cause \($N of $N\): .*(connect|Connection refused)" \
  "unreachable: the cause"
fresh
echo "PASS: $TEST_NAME"
