#!/usr/bin/env bash
# Issue 2, test 4: the budget is a hard cap. With prices that make the budget cover about 30%
# of the prompts, `label` stops with exit status 3 and "budget reached", and neither the spend
# recorded nor the spend billed passes the budget. Raising the budget and rerunning finishes
# the rest without paying for anything twice.
. "$(dirname "$0")/lib.sh"

N=400
C=8
IN=1
OUT=10000       # every label is answered in 2 completion tokens: ~$0.02 a prompt
BUDGET=2.4      # ~30% of the ~$8 the whole set costs
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --latency-ms 5
write_config "$WORK/config.json" teacher.concurrency=$C teacher.budget_usd=$BUDGET \
  teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT
expect_ok prompts prompts "$WORK/config.json"

note "label with a budget for ~30%"
run_us label1 label "$WORK/config.json"
[ "$RC" -eq 3 ] || { show "$WORK/label1.out" "$WORK/label1.err"; fail "exit status: expected 3 (budget), got $RC"; }
assert_grep "$WORK/label1.err" "budget reached" "the budget stop says so"
assert_grep "$WORK/label1.err" "teacher\.budget_usd" "the budget stop names the key to raise"
done1=$(db_targets)
spent=$(db_spend)
billed=$(mock_spend "$IN" "$OUT")
note "stopped with $done1 of $N labelled; spend recorded \$$spent, billed \$$billed, budget \$$BUDGET"
assert_le "$spent" "$BUDGET" "spend recorded in the workspace"
assert_le "$billed" "$BUDGET" "spend billed by the teacher"
assert_close "$spent" "$billed" "spend recorded vs billed"
assert_ge "$done1" 1 "prompts labelled before the budget stop"
[ "$done1" -lt "$N" ] || fail "all prompts were labelled: the budget did not bind"
# Stopping early wastes budget; the cap may hold back at most the worst case of what was in
# flight (C requests of teacher.max_tokens completion tokens).
assert_ge "$spent" 1.0 "spend at the stop (the budget should be mostly used)"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"

note "a rerun at the same budget sends nothing it cannot pay for"
run_us label2 label "$WORK/config.json"
assert_eq "$RC" 3 "exit status of a rerun at the same budget"
assert_le "$(db_spend)" "$BUDGET" "spend after a rerun at the same budget"
assert_le "$(mock_spend "$IN" "$OUT")" "$BUDGET" "billed after a rerun at the same budget"

note "raise the budget and rerun"
expect_ok label3 label "$WORK/config.json" --set teacher.budget_usd=100
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts after raising the budget"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice across the runs"
assert_eq "$(mock_stats billed_keys)" "$N" "keys billed"
assert_close "$(db_spend)" "$(mock_spend "$IN" "$OUT")" "spend recorded vs billed after the rerun"
db_text_labels >"$WORK/labels.got"
cmp -s "$WORK/labels.got" "$WORK/prompts.jsonl.expected" || fail "labels differ from the teacher's answers"
echo "PASS: $TEST_NAME"
