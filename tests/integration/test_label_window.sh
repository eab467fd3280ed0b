#!/usr/bin/env bash
# Issue 14, a million prompts: labelling reads the workspace in windows (teacher.window) and
# holds only the requests in flight and at most two windows of ready ones. A window far smaller
# than the job count gives the same answers and the same bill as one window; with faults the
# retries still complete every prompt; a kill -9 mid-run with a small window resumes with
# nothing paid twice beyond the requests in flight at the kill; a rerun of a finished workspace
# passes every window from the cache and sends nothing.
. "$(dirname "$0")/lib.sh"

N=700
C=16
IN=1.5
OUT=6
gen_prompts "$N" "$WORK/prompts.jsonl"
PRICES=(teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT)

note "reference: one window holds every prompt"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/ref.json" teacher.concurrency=$C teacher.window=100000 "${PRICES[@]}" \
  output="\"$WORK/ref\""
expect_ok ref_prompts prompts "$WORK/ref.json"
expect_ok ref_label label "$WORK/ref.json"
REF_DB="$WORK/ref/understudy.db"
assert_eq "$(db_unlabelled "$REF_DB")" 0 "unlabelled prompts with one window"
db_labels "$REF_DB" >"$WORK/labels.ref"
db_text_labels "$REF_DB" >"$WORK/text_labels.ref"
cmp -s "$WORK/text_labels.ref" "$WORK/prompts.jsonl.expected" ||
  fail "the reference labels differ from the teacher's answers"
ref_spend=$(db_spend "$REF_DB")
ref_billed=$(mock_spend $IN $OUT)
assert_close "$ref_spend" "$ref_billed" "reference: workspace spend vs the mock's bill"
assert_eq "$(mock_stats chat_requests)" "$N" "reference: requests"
mock_reset

note "window 7 (100 windows for $N prompts, smaller than the $C requests in flight)"
write_config "$WORK/w7.json" teacher.concurrency=$C teacher.window=7 "${PRICES[@]}" \
  output="\"$WORK/w7\""
expect_ok w7_prompts prompts "$WORK/w7.json"
expect_ok w7_label label "$WORK/w7.json" --verbose
W7_DB="$WORK/w7/understudy.db"
assert_eq "$(db_unlabelled "$W7_DB")" 0 "unlabelled prompts with window 7"
db_labels "$W7_DB" >"$WORK/labels.w7"
cmp -s "$WORK/labels.ref" "$WORK/labels.w7" ||
  { diff "$WORK/labels.ref" "$WORK/labels.w7" | head >&2; fail "labels differ with window 7"; }
assert_close "$(db_spend "$W7_DB")" "$ref_spend" "window 7: spend vs one window"
assert_close "$(mock_spend $IN $OUT)" "$ref_billed" "window 7: the mock's bill vs one window"
assert_eq "$(mock_stats chat_requests)" "$N" "window 7: requests"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "window 7: keys billed twice"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;' "$W7_DB")" "$N" "window 7: calls stored"
assert_grep "$WORK/w7_label.out" "prompts: $N in all, 0 cached, $N answered now, 0 failed, 0 left" \
  "window 7: the summary"
# the workspace was read a window at a time and never held more than two windows of requests
# besides those in flight and their retries (2 x 7 + 16)
line=$(grep -o "label: $N prompts read in [0-9]* windows of 7; at most [0-9]* requests" \
  "$WORK/w7_label.err") || { show "$WORK/w7_label.err"; fail "window 7: no window line in the log"; }
windows=$(echo "$line" | awk '{print $6}')
held=$(echo "$line" | awk '{print $12}')
note "window 7: $windows windows read, at most $held requests held"
assert_ge "$windows" "$((N / 7))" "window 7: windows read"
assert_le "$held" "$((2 * 7 + C))" "window 7: requests held in memory at once"

note "a rerun with window 3 finds every answer in the cache and sends nothing"
mock_reset
expect_ok w3_rerun label "$WORK/w7.json" --set teacher.window=3
assert_eq "$(mock_stats chat_requests)" 0 "requests of a cached rerun"
assert_grep "$WORK/w3_rerun.out" "prompts: $N in all, $N cached, 0 answered now, 0 failed, 0 left" \
  "cached rerun: the summary"
stop_mock

note "window 5 with faults (429, 500, 503, resets): retries complete every prompt"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --fault-rate 0.3 \
  --faults 429,500,503,reset
write_config "$WORK/f5.json" teacher.concurrency=$C teacher.window=5 "${PRICES[@]}" \
  output="\"$WORK/f5\""
expect_ok f5_prompts prompts "$WORK/f5.json"
expect_ok f5_label label "$WORK/f5.json"
F5_DB="$WORK/f5/understudy.db"
assert_eq "$(db_unlabelled "$F5_DB")" 0 "unlabelled prompts with window 5 and faults"
db_labels "$F5_DB" >"$WORK/labels.f5"
cmp -s "$WORK/labels.ref" "$WORK/labels.f5" || fail "labels differ with window 5 and faults"
assert_ge "$(mock_stats chat_requests)" "$((N + 1))" "requests with faults (some retried)"
assert_eq "$(mock_stats billed_keys)" "$N" "distinct keys billed with faults"
stop_mock

note "window 6 with a budget for ~30%: the stop counts the prompts not read yet as left"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/b6.json" teacher.concurrency=8 teacher.window=6 teacher.budget_usd=4.2 \
  teacher.price.input_per_mtok=1 teacher.price.output_per_mtok=10000 output="\"$WORK/b6\""
expect_ok b6_prompts prompts "$WORK/b6.json"
run_us b6_label label "$WORK/b6.json"
[ "$RC" -eq 3 ] || { show "$WORK/b6_label.out" "$WORK/b6_label.err"; fail "window 6, budget: expected exit 3, got $RC"; }
B6_DB="$WORK/b6/understudy.db"
done_b6=$(db_targets "$B6_DB")
note "budget stop with $done_b6 of $N labelled"
[ "$done_b6" -ge 1 ] && [ "$done_b6" -lt "$N" ] || fail "window 6: the budget did not bind ($done_b6 labelled)"
assert_grep "$WORK/b6_label.err" "budget reached: .* $((N - done_b6)) prompts left" \
  "window 6: the budget stop counts every prompt left, read or not"
assert_le "$(db_spend "$B6_DB")" 4.2 "window 6: spend within the budget"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "window 6: keys billed twice at the budget stop"
expect_ok b6_rerun label "$WORK/b6.json" --set teacher.budget_usd=100
assert_eq "$(db_unlabelled "$B6_DB")" 0 "window 6: unlabelled prompts after raising the budget"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "window 6: keys billed twice across the runs"
assert_eq "$(mock_stats billed_keys)" "$N" "window 6: keys billed"
stop_mock

note "kill -9 mid-run with window 10, then resume with window 10"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --latency-ms 60
write_config "$WORK/k.json" teacher.concurrency=$C teacher.window=10 "${PRICES[@]}"
expect_ok k_prompts prompts "$WORK/k.json"
start_us kill1 label "$WORK/k.json"
labelled_at_least() { [ "$(db_targets)" -ge "$1" ]; }
wait_until 60 labelled_at_least 250 || fail "fewer than 250 prompts labelled after 60 s"
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
at_kill=$(db_targets)
note "killed with $at_kill of $N labelled"
[ "$at_kill" -lt "$N" ] || fail "the run had finished before the kill; the test proves nothing"
assert_eq "$(db 'PRAGMA integrity_check;')" ok "workspace integrity after kill -9"
sleep 0.3 # let the requests that were in flight reach the teacher's books
expect_ok k_rerun label "$WORK/k.json"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts after the resume"
db_labels >"$WORK/labels.k"
cmp -s "$WORK/labels.ref" "$WORK/labels.k" || fail "labels after kill -9 and resume differ"
twice=$(mock_stats keys_billed_more_than_once)
note "keys billed twice: $twice (concurrency $C)"
assert_le "$twice" "$C" "keys billed twice (at most those in flight at the kill)"
assert_le "$(mock_stats max_bills_per_key)" 2 "bills for one key"
assert_eq "$(mock_stats billed_keys)" "$N" "distinct keys billed"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$N" "calls stored"
# the resume sent only what the killed run had not stored: the cached prompts were passed over
resumed=$(grep -o "prompts: $N in all, [0-9]* cached" "$WORK/k_rerun.out" | awk '{print $5}')
assert_eq "$resumed" "$at_kill" "prompts the resume found in the cache"
echo "PASS: $TEST_NAME"
