#!/usr/bin/env bash
# Issue 12, the Batch API (teacher.mode "batch"): a batch run labels every prompt at the
# discounted price (the mock's bill equals the recorded spend); batches respect
# teacher.batch_max_requests; a batch answer is never bought again live and a live answer never
# goes in a batch; kill -9 between the batch's creation and its completion, then a rerun,
# resumes the same batch and pays nothing twice; partial failures and expiry are retried in the
# next batch or live, as teacher.batch_retry says.
. "$(dirname "$0")/lib.sh"

N=60
IN=2.5
OUT=10
gen_prompts "$N" "$WORK/prompts.jsonl"
ANSWERS="$WORK/prompts.jsonl.answers.jsonl"
BATCH=(teacher.mode='"batch"' teacher.batch_poll_s=0.05)

# batch_spend: dollars the mock billed for batch rows, at half the prices above.
batch_spend() {
  local pt ct
  pt=$(mock_stats batch_prompt_tokens)
  ct=$(mock_stats batch_completion_tokens)
  awk -v pt="$pt" -v ct="$ct" -v i="$IN" -v o="$OUT" \
    'BEGIN { printf "%.10f\n", (pt * i / 1e6 + ct * o / 1e6) * 0.5 }'
}

# labels_ok: every prompt has the label the teacher meant.
labels_ok() {
  db_text_labels >"$WORK/labels.got"
  cmp -s "$WORK/prompts.jsonl.expected" "$WORK/labels.got" ||
    { diff "$WORK/prompts.jsonl.expected" "$WORK/labels.got" | head >&2; fail "$1: labels differ"; }
}

note "a batch run labels everything at the batch price"
start_teacher --answers "$ANSWERS" --batch-delay-ms 300
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts prompts "$WORK/config.json"
expect_ok label label "$WORK/config.json"
labels_ok "batch run"
assert_eq "$(mock_stats chat_requests)" 0 "live requests in batch mode"
assert_eq "$(mock_stats batches_created)" 1 "batches created"
assert_eq "$(mock_stats files_uploaded)" 1 "files uploaded"
assert_eq "$(mock_stats batch_billed)" "$N" "batch rows billed"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_close "$(db_spend)" "$(batch_spend)" "recorded spend against the mock's batch bill"
assert_eq "$(db "SELECT status || ' ' || collected || ' ' || answered FROM batches;")" \
  "completed 1 $N" "the batch in the workspace"
live_usd=$(db "SELECT printf('%.10f', live_usd - spent_usd) FROM batches;")
assert_close "$live_usd" "$(db_spend)" "saved = half the live price"
assert_grep "$WORK/label.out" "^batches: 1 created" "label's summary names the batch"

note "the batch's answers are never bought again live"
expect_ok live label "$WORK/config.json" --set teacher.mode='"live"'
assert_grep "$WORK/live.out" "$N cached, 0 answered now" "live rerun after a batch run"
assert_eq "$(mock_stats chat_requests)" 0 "live requests after a batch run"
assert_eq "$(mock_stats batches_created)" 1 "batches after a live rerun"

note "the report shows what the batch saved"
expect_ok train train "$WORK/config.json"
expect_ok eval eval "$WORK/config.json"
expect_ok report report "$WORK/config.json"
saved=$(json_get cost.batch_saved_usd <"$WORK/out/report.json")
assert_close "$saved" "$(db_spend)" "report.json cost.batch_saved_usd"
assert_grep "$WORK/out/report.md" "saved by the Batch API's discount" "report.md names the saving"
stop_mock

note "live answers are never sent in a batch; batch_max_requests splits the rest"
start_teacher --answers "$ANSWERS"
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}" teacher.batch_max_requests=25
# the first 10 prompts labelled live, in a workspace that holds only them at first
head -n 10 "$WORK/prompts.jsonl" >"$WORK/first.jsonl"
write_config "$WORK/live.json" data.inputs="[\"$WORK/first.jsonl\"]"
expect_ok prompts_live prompts "$WORK/live.json"
expect_ok live2 label "$WORK/live.json"
assert_eq "$(mock_stats chat_requests)" 10 "live requests for the first 10 prompts"
expect_ok prompts2 prompts "$WORK/config.json"
mock_reset
expect_ok label2 label "$WORK/config.json"
labels_ok "batch run after a live one"
assert_eq "$(mock_stats chat_requests)" 0 "live requests in the batch run"
assert_eq "$(mock_stats batch_rows)" $((N - 10)) "batch rows: only what live mode had not bought"
assert_eq "$(mock_stats batches_created)" 2 "batches of at most 25 requests"
assert_eq "$(db 'SELECT MAX(n_requests) FROM batches;')" 25 "largest batch"
stop_mock

note "kill -9 between the batch's creation and its completion, then a rerun"
start_teacher --answers "$ANSWERS" --batch-delay-ms 6000
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}" teacher.batch_poll_s=0.2
expect_ok prompts3 prompts "$WORK/config.json"
start_us kill1 label "$WORK/config.json"
batch_recorded() { [ "$(db 'SELECT COUNT(*) FROM batches;' 2>/dev/null || echo 0)" -ge 1 ]; }
wait_until 30 batch_recorded || fail "no batch recorded after 30 s"
sleep 5.5 # past the first progress line (every 5 s when not on a terminal)
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
assert_grep "$WORK/kill1.err" "batch (validating|in_progress): 1 open, $N requests" \
  "label printed the batch's progress"
assert_eq "$(db_targets)" 0 "labels before the batch completed"
assert_eq "$(db 'SELECT collected FROM batches;')" 0 "the batch is open in the workspace"
expect_ok rerun label "$WORK/config.json"
labels_ok "rerun after kill -9"
assert_eq "$(mock_stats batches_created)" 1 "batches created across the kill (resumed, not recreated)"
assert_eq "$(mock_stats files_uploaded)" 1 "files uploaded across the kill"
assert_eq "$(mock_stats batch_billed)" "$N" "rows billed across the kill"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_eq "$(mock_stats chat_requests)" 0 "live requests"
assert_close "$(db_spend)" "$(batch_spend)" "recorded spend against the mock's bill"
stop_mock

note "killed after the API created the batch but before its id was recorded, then a rerun"
# the mock creates the first batch, then holds its answer 3 s: a kill -9 meanwhile is a real kill
# in the window between the API's creation and the id's commit
start_teacher --answers "$ANSWERS" --batch-delay-ms 500 --batch-create-delay-ms 3000
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts8 prompts "$WORK/config.json"
start_us window label "$WORK/config.json"
created_unrecorded() {
  [ "$(mock_stats batches_created)" -ge 1 ] &&
    [ "$(db "SELECT COUNT(*) FROM batches WHERE id LIKE 'pending:%';" 2>/dev/null || echo 0)" -ge 1 ]
}
wait_until 30 created_unrecorded || fail "the batch was not created within 30 s"
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status of the run killed in the window"
assert_eq "$(db "SELECT id FROM batches;")" "pending:file-mock1" "the row written before the batch"
note "the same, when the API never created the batch: its requests go in a new one"
mock_reset
rm -rf "$WORK/out"
expect_ok prompts9 prompts "$WORK/config.json"
db "INSERT INTO batches(id, input_file_id, status, n_requests, created_at, updated_at)
    VALUES('pending:file-none', 'file-none', 'creating', 1, 0, 0);"
expect_ok orphan label "$WORK/config.json"
labels_ok "rerun with a pending row no batch matches"
assert_eq "$(db "SELECT COUNT(*) FROM batches WHERE id LIKE 'pending:%';")" 0 "pending rows left"
assert_eq "$(mock_stats batches_created)" 1 "batches created"
stop_mock

note "partial failures: retried in the next batch (teacher.batch_retry \"batch\")"
start_teacher --answers "$ANSWERS" --batch-fail-rate 0.3 --fault-max-per-key 1
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts4 prompts "$WORK/config.json"
expect_ok label4 label "$WORK/config.json"
labels_ok "partial failures, retried in batches"
assert_eq "$(mock_stats batches_created)" 2 "a second batch for the failed rows"
assert_eq "$(mock_stats chat_requests)" 0 "live requests"
assert_eq "$(mock_stats batch_billed)" "$N" "rows billed"
second=$(db "SELECT n_requests FROM batches ORDER BY created_at DESC, id DESC LIMIT 1;")
[ "$second" -gt 0 ] && [ "$second" -lt "$N" ] || fail "second batch: expected the failed rows only, got $second"
assert_close "$(db_spend)" "$(batch_spend)" "recorded spend against the mock's bill"
stop_mock

note "partial failures: retried live (teacher.batch_retry \"live\")"
start_teacher --answers "$ANSWERS" --batch-fail-rate 0.3 --fault-max-per-key 1
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}" teacher.batch_retry='"live"'
expect_ok prompts5 prompts "$WORK/config.json"
expect_ok label5 label "$WORK/config.json"
labels_ok "partial failures, retried live"
assert_eq "$(mock_stats batches_created)" 1 "batches"
failed_rows=$((N - $(mock_stats batch_billed)))
[ "$failed_rows" -gt 0 ] || fail "the mock failed no batch row; the test proves nothing"
assert_eq "$(mock_stats chat_requests)" "$failed_rows" "live requests: exactly the failed rows"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
live_part=$(mock_spend "$IN" "$OUT")
total=$(awk -v a="$live_part" -v b="$(batch_spend)" 'BEGIN { printf "%.10f", a + b }')
assert_close "$(db_spend)" "$total" "recorded spend: live rows at the live price, batch rows at half"
stop_mock

note "expiry: the rows an expired batch left are retried in the next batch"
start_teacher --answers "$ANSWERS" --batch-expire 1
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts6 prompts "$WORK/config.json"
expect_ok label6 label "$WORK/config.json"
labels_ok "expired batch"
assert_eq "$(mock_stats batches_created)" 2 "batches: the expired one and its retry"
assert_eq "$(db "SELECT status FROM batches ORDER BY created_at, id LIMIT 1;")" expired \
  "the first batch's status"
assert_eq "$(mock_stats batch_billed)" "$N" "rows billed"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_close "$(db_spend)" "$(batch_spend)" "recorded spend against the mock's bill"
stop_mock

note "expiry, retried live"
start_teacher --answers "$ANSWERS" --batch-expire 1
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}" teacher.batch_retry='"live"'
expect_ok prompts7 prompts "$WORK/config.json"
expect_ok label7 label "$WORK/config.json"
labels_ok "expired batch, retried live"
assert_eq "$(mock_stats batches_created)" 1 "batches"
assert_eq "$(mock_stats chat_requests)" $((N - $(mock_stats batch_billed))) "live requests: the expired rows"
stop_mock
echo "PASS: $TEST_NAME"
