#!/usr/bin/env bash
# Issue 2, test 1: 2,000 prompts at concurrency 32 against a teacher that fails ~10% of attempts
# (429, 500, 503, malformed and truncated bodies, a body cut mid-way, connection resets, stalls
# past the client's timeout). Every prompt ends up labelled, the spend recorded in the workspace
# equals what the teacher billed, and no request key is billed twice.
. "$(dirname "$0")/lib.sh"

N=2000
IN=1.5
OUT=6
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --fault-rate 0.10 --fault-seed 7 --timeout-delay-ms 8000 \
  --faults 429,500,503,malformed,truncated,partial,reset,timeout --ratelimit-headers
write_config "$WORK/config.json" teacher.concurrency=32 teacher.timeout_s=3 \
  teacher.max_retries=8 teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT

note "prompts"
expect_ok prompts prompts "$WORK/config.json"
assert_eq "$(db_prompts)" "$N" "prompts stored"

note "label against a faulty teacher"
start=$SECONDS
expect_ok label label "$WORK/config.json"
note "labelled in $((SECONDS - start)) s"

assert_eq "$(db_unlabelled)" 0 "prompts without a target"
assert_eq "$(db_targets)" "$N" "prompts with a target"
assert_eq "$(db 'SELECT COUNT(*) FROM failures;')" 0 "calls recorded as failed (all faults were transient)"

faults=$(mock_stats faults_total)
note "faults injected: $faults $(curl -sf "$MOCK_ROOT/_stats" | json_get faults)"
assert_ge "$faults" 100 "faults injected (the test must exercise the retries)"
for f in 429 500 503 malformed truncated partial reset timeout; do
  assert_ge "$(mock_stats "faults.\"$f\"")" 1 "faults of kind $f injected"
done

billed_keys=$(mock_stats billed_keys)
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed more than once"
assert_eq "$(mock_stats billed)" "$billed_keys" "bills (one per key)"
assert_eq "$billed_keys" "$(db 'SELECT COUNT(*) FROM calls WHERE imported = 0;')" "paid calls in the workspace"
assert_le "$(mock_stats max_in_flight)" 32 "requests in flight at once (teacher.concurrency)"

assert_eq "$(db_sum prompt_tokens)" "$(mock_stats prompt_tokens)" "prompt tokens recorded vs billed"
assert_eq "$(db_sum completion_tokens)" "$(mock_stats completion_tokens)" "completion tokens recorded vs billed"
spent=$(db_spend)
billed=$(mock_spend "$IN" "$OUT")
note "spend recorded \$$spent, billed \$$billed"
assert_close "$spent" "$billed" "spend recorded in the workspace vs billed by the teacher"
assert_ge "$spent" 0.000001 "spend (prices are non-zero)"

# Each prompt holds its own answer (mapped onto the labels): nothing cut, mixed up or dropped.
assert_eq "$(db "SELECT COUNT(*) FROM targets WHERE status != 0 OR label IS NULL;")" 0 "unparsed targets"
db_text_labels >"$WORK/labels.got"
cmp -s "$WORK/labels.got" "$WORK/prompts.jsonl.expected" ||
  { diff "$WORK/prompts.jsonl.expected" "$WORK/labels.got" | head >&2; fail "labels differ from the teacher's answers"; }
echo "PASS: $TEST_NAME"
