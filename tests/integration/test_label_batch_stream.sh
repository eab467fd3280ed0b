#!/usr/bin/env bash
# Issue 14, a million prompts in batch mode (teacher.mode "batch"): the jobs stream from the
# workspace in windows and leave memory once written to a batch, so more prompts than one
# batch's cap (teacher.batch_max_requests) give several batches, every prompt answered and each
# request paid once, with no more than two windows of requests in memory; a kill -9 after the
# second of three batches is created resumes every batch with no request sent twice; and an open
# batch an earlier run left, whose requests this run does not ask for, is still polled and its
# answers committed.
. "$(dirname "$0")/lib.sh"

N=60
CAP=20
WINDOW=7
gen_prompts "$N" "$WORK/prompts.jsonl"
ANSWERS="$WORK/prompts.jsonl.answers.jsonl"
BATCH=(teacher.mode='"batch"' teacher.batch_poll_s=0.05 teacher.batch_max_requests=$CAP
  teacher.window=$WINDOW teacher.concurrency=4)

labels_ok() {
  db_text_labels >"$WORK/labels.got"
  cmp -s "$WORK/prompts.jsonl.expected" "$WORK/labels.got" ||
    { diff "$WORK/prompts.jsonl.expected" "$WORK/labels.got" | head >&2; fail "$1: labels differ"; }
}

note "$N prompts, at most $CAP a batch, read $WINDOW at a time: three batches, each request paid once"
start_teacher --answers "$ANSWERS" --batch-delay-ms 200
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts prompts "$WORK/config.json"
expect_ok label label "$WORK/config.json" --verbose
labels_ok "three batches"
assert_eq "$(mock_stats batches_created)" 3 "batches created"
assert_eq "$(mock_stats files_uploaded)" 3 "files uploaded"
assert_eq "$(mock_stats batch_rows)" "$N" "batch rows sent"
assert_eq "$(mock_stats batch_billed)" "$N" "batch rows billed"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_eq "$(mock_stats chat_requests)" 0 "live requests"
assert_eq "$(db 'SELECT MAX(n_requests) || " " || SUM(n_requests) FROM batches;')" "$CAP $N" \
  "batch sizes in the workspace"
assert_eq "$(db 'SELECT COUNT(*) FROM batches WHERE collected = 1;')" 3 "batches collected"
assert_eq "$(db 'SELECT COUNT(*) FROM batch_requests WHERE request IS NULL OR prompt_id IS NULL;')" \
  0 "every batch row keeps its prompt and request"
assert_grep "$WORK/label.out" "^batches: 3 created" "label's summary"
line=$(grep -o "label: $N prompts read in [0-9]* windows of $WINDOW; at most [0-9]* requests" \
  "$WORK/label.err") || { show "$WORK/label.err"; fail "no window line in the log"; }
held=$(echo "$line" | awk '{print $12}')
note "at most $held requests held in memory (a batch holds $CAP)"
assert_le "$held" "$((2 * WINDOW + 4))" "requests held in memory at once"
stop_mock

note "kill -9 after the second of three batches is created, then a rerun"
# the mock creates the third batch but answers 3 s late, and no batch completes for 4 s: the kill
# lands after two batches are recorded, while the third is being created
start_teacher --answers "$ANSWERS" --batch-delay-ms 4000 --batch-create-delay-ms 3000 \
  --batch-create-delay-at 2
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}"
expect_ok prompts2 prompts "$WORK/config.json"
start_us kill1 label "$WORK/config.json"
# two batches recorded, the third's file uploaded and its creation asked for (held by the mock)
two_created() {
  [ "$(db "SELECT SUM(id LIKE 'batch_%') || ' ' || SUM(id LIKE 'pending:%') FROM batches;" \
    2>/dev/null)" = "2 1" ]
}
wait_until 30 two_created || fail "two batches were not recorded within 30 s"
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
assert_eq "$(db "SELECT id FROM batches ORDER BY created_at;" | tr '\n' ' ')" \
  "batch_mock1 batch_mock2 pending:file-mock3 " "rows at the kill"
assert_eq "$(db_targets)" 0 "answers before any batch completed"
expect_ok rerun label "$WORK/config.json"
labels_ok "rerun after kill -9"
assert_eq "$(mock_stats batches_created)" 3 "batches created across the kill"
assert_eq "$(mock_stats batch_rows)" "$N" "batch rows sent across the kill (none twice)"
assert_eq "$(mock_stats batch_billed)" "$N" "batch rows billed across the kill"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_eq "$(mock_stats chat_requests)" 0 "live requests"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$N" "answers stored"
assert_eq "$(db 'SELECT COUNT(*) FROM batches WHERE collected = 0;')" 0 "batches left open"
stop_mock

note "an open batch from an earlier run, whose requests this run does not ask for, is collected"
start_teacher --answers "$ANSWERS" --batch-delay-ms 1500
rm -rf "$WORK/out"
write_config "$WORK/config.json" "${BATCH[@]}" teacher.batch_max_requests=50000
expect_ok prompts3 prompts "$WORK/config.json"
start_us kill2 label "$WORK/config.json"
one_created() {
  [ "$(db "SELECT COUNT(*) FROM batches WHERE id LIKE 'batch_%';" 2>/dev/null || echo 0)" -ge 1 ]
}
wait_until 30 one_created || fail "no batch recorded within 30 s"
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
old=$(db "SELECT id FROM batches;")
# a longer max_tokens changes every request, so none of this run's keys is in the old batch
expect_ok other label "$WORK/config.json" --set teacher.max_tokens=17
assert_eq "$(db "SELECT collected || ' ' || answered FROM batches WHERE id = '$old';")" "1 $N" \
  "the earlier run's batch, collected"
assert_eq "$(db "SELECT COUNT(*) FROM calls c JOIN batch_requests r ON r.key = c.key
                 WHERE r.batch_id = '$old';")" "$N" "its answers committed"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$((2 * N))" "answers: the old batch's and this run's"
assert_eq "$(mock_stats batches_created)" 2 "batches: the old one and this run's"
assert_eq "$(mock_stats batch_billed)" "$((2 * N))" "rows billed"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
stop_mock
echo "PASS: $TEST_NAME"
