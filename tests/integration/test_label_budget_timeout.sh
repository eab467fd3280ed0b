#!/usr/bin/env bash
# Issue 12, a budget that really is a cap: a teacher slower than teacher.timeout_s answers, and
# bills, every request the client has already given up on (the mock's "slow" fault), and the
# retries pay again. Each such request counts at its worst case against the budget, so with 32
# requests in flight and a small budget the teacher's bill never passes the cap, and label's
# summary says how many requests may have been billed without an answer.
. "$(dirname "$0")/lib.sh"

N=200
IN=1
OUT=10000  # an answer of 2 completion tokens costs ~$0.02; a worst case (16 tokens) ~$0.16
BUDGET=1.5
SLOW_MS=1200
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --faults slow --fault-rate 0.5 \
  --fault-max-per-key 2 --slow-ms $SLOW_MS --price-input $IN --price-output $OUT
write_config "$WORK/config.json" teacher.concurrency=32 teacher.timeout_s=0.3 \
  teacher.max_retries=3 teacher.budget_usd=$BUDGET \
  teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT
expect_ok prompts prompts "$WORK/config.json"

note "label against a teacher slower than the timeout"
run_us label label "$WORK/config.json"
[ "$RC" -eq 3 ] || { show "$WORK/label.out" "$WORK/label.err"; fail "exit status: expected 3 (budget), got $RC"; }
sleep $((SLOW_MS / 1000 + 1)) # the slow answers still in the teacher's hands are billed too
billed=$(mock_stats billed_usd)
spent=$(db_spend)
worst=$(db "SELECT printf('%.10f', COALESCE(SUM(worst_usd), 0)) FROM unanswered;")
n=$(db "SELECT COUNT(*) FROM unanswered;")
note "billed \$$billed; recorded \$$spent for answers plus up to \$$worst for $n unanswered; budget \$$BUDGET"
assert_ge "$(mock_stats 'faults.slow')" 1 "slow answers served"
assert_ge "$n" 1 "requests recorded as maybe billed"
assert_le "$billed" "$BUDGET" "the teacher's bill against the cap"
assert_le "$(awk -v a="$spent" -v b="$worst" 'BEGIN { printf "%.10f", a + b }')" "$BUDGET" "spend plus worst cases"
assert_ge "$(awk -v a="$spent" -v b="$worst" 'BEGIN { printf "%.10f", a + b }')" "$billed" \
  "spend plus worst cases covers the bill"
assert_grep "$WORK/label.out" '[0-9]+ requests may have been billed without an answer: up to [$][0-9.]+' \
  "label's summary"
assert_grep "$WORK/label.err" "may have been billed without an answer" "the budget stop says why"

note "a rerun at the same budget sends nothing it cannot pay for"
run_us label2 label "$WORK/config.json"
assert_eq "$RC" 3 "exit status of a rerun"
sleep $((SLOW_MS / 1000 + 1))
assert_le "$(mock_stats billed_usd)" "$BUDGET" "the teacher's bill after a rerun"
echo "PASS: $TEST_NAME"
