#!/usr/bin/env bash
# Issue 10, defects 11 and 12: a classify run through the mock teacher where the teacher's labels
# are random with respect to the text, so no student can learn them. The report must not
# recommend the student for any share of the traffic: the verdict is "stay with the teacher: the
# student did not learn this task", with the reason (its agreement against the majority-class
# and chance baselines), and the student's own answers are held to the target. Money in
# report.md and report.html reads as a person reads it (no 1e-05 notation); report.json keeps
# the exact figures.
. "$(dirname "$0")/lib.sh"

gen_prompts 600 "$WORK/prompts.jsonl" 7 # labels drawn at random, independent of the text
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/config.json" data.test_fraction=0.5 teacher.params_b=100

note "run"
expect_ok run run "$WORK/config.json"
rj=$(cat "$WORK/out/report.json")
get() { printf '%s' "$rj" | json_get "$1"; }

note "the verdict"
assert_eq "$(get cascade.verdict)" stay_not_learned "cascade verdict for an unlearnable task"
assert_eq "$(get cascade.recommended.kind)" teacher_only "what is recommended"
assert_eq "$(get headline.positive)" 0 "the headline is not positive"
assert_grep "$WORK/out/report.md" 'stay with the teacher: the student did not learn this task' \
  "report.md states the verdict"
assert_grep "$WORK/out/report.md" 'majority-class' "report.md gives the reason"
assert_grep "$WORK/out/report.html" 'did not learn this task' "report.html states the verdict"
assert_grep "$WORK/run.out" 'did not learn this task' "run prints the verdict"

note "the baselines"
chance=$(get cascade.baselines.chance)
assert_close "$chance" 0.25 "chance with four labels"
majority=$(get cascade.baselines.majority_class)
assert_ge "$majority" 0.25 "the majority class is at least chance"
assert_eq "$(get cascade.baselines.beaten)" 0 "the student beats no baseline"
low=$(get cascade.baselines.student_agreement_low)
assert_le "$low" "$majority" "the student's lower bound does not beat the majority class"

note "every threshold shows the student's own agreement, and none holds it to the target"
points() { # COUNT of cascade points of kind threshold matching the SQL condition on value
  db "SELECT COUNT(*) FROM json_each(readfile('$WORK/out/report.json'), '\$.cascade.points')
        WHERE json_extract(value, '\$.kind') = 'threshold' AND ($1);" :memory:
}
n_all=$(points 1)
assert_ge "$n_all" 10 "thresholds in the analysis"
assert_eq "$(points "json_extract(value, '\$.student_agreement') IS NULL")" 0 \
  "every threshold shows the agreement of the student's own answers"
n_ok=$(points "json_extract(value, '\$.student_agreement_low') >= 0.95")
[ "${n_ok:-0}" = 0 ] || fail "$n_ok thresholds hold the student's answers to 95%"

note "money as a person reads it"
assert_no_grep "$WORK/out/report.md" '\$-?[0-9.]+e[-+]?[0-9]' "scientific notation in report.md money"
assert_no_grep "$WORK/out/report.html" '\$-?[0-9.]+e[-+]?[0-9]' "scientific notation in report.html money"
exact=$(get cost.student_usd_per_million)
awk -v v="$exact" 'BEGIN { exit !(v > 0) }' || fail "report.json keeps the exact student cost ($exact)"
