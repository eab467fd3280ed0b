#!/usr/bin/env bash
# Issue 2, test 3: `kill -9` in the middle of labelling, then a rerun, ends with the same labels
# as an uninterrupted run in another workspace, and at most the requests in flight at the kill
# are billed twice. SIGINT mid-run exits 130, keeps every answer, and a rerun finishes.
. "$(dirname "$0")/lib.sh"

N=600
C=16
gen_prompts "$N" "$WORK/prompts.jsonl"

note "reference: an uninterrupted run in its own workspace, against its own teacher"
start_teacher --latency-ms 20
write_config "$WORK/ref.json" teacher.concurrency=$C output="\"$WORK/ref\""
expect_ok ref_prompts prompts "$WORK/ref.json"
expect_ok ref_label label "$WORK/ref.json"
REF_DB="$WORK/ref/understudy.db"
assert_eq "$(db_unlabelled "$REF_DB")" 0 "unlabelled prompts in the reference run"
db_labels "$REF_DB" >"$WORK/labels.ref"
assert_eq "$(wc -l <"$WORK/labels.ref")" "$N" "reference labels"
stop_mock

note "kill -9 mid-run"
start_teacher --latency-ms 100
write_config "$WORK/config.json" teacher.concurrency=$C
expect_ok prompts prompts "$WORK/config.json"
start_us kill1 label "$WORK/config.json"
labelled_at_least() { [ "$(db_targets)" -ge "$1" ]; }
wait_until 60 labelled_at_least 150 || fail "fewer than 150 prompts labelled after 60 s"
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
at_kill=$(db_targets)
note "killed with $at_kill of $N labelled"
[ "$at_kill" -lt "$N" ] || fail "the run had finished before the kill; the test proves nothing"
assert_eq "$(db 'PRAGMA integrity_check;')" ok "workspace integrity after kill -9"
sleep 0.3 # let the requests that were in flight reach the teacher's books

note "rerun after the kill"
expect_ok rerun1 label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts after the rerun"
db_labels >"$WORK/labels.got"
cmp -s "$WORK/labels.ref" "$WORK/labels.got" ||
  { diff "$WORK/labels.ref" "$WORK/labels.got" | head >&2; fail "labels differ from the uninterrupted run"; }
twice=$(mock_stats keys_billed_more_than_once)
note "keys billed twice: $twice (concurrency $C)"
assert_le "$twice" "$C" "keys billed more than once (at most those in flight at the kill)"
assert_le "$(mock_stats max_bills_per_key)" 2 "bills for one key"
assert_eq "$(mock_stats billed_keys)" "$N" "distinct keys billed"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$N" "calls stored"

note "SIGINT mid-run"
mock_reset
rm -rf "$WORK/out"
expect_ok prompts2 prompts "$WORK/config.json"
start_us int1 label "$WORK/config.json"
wait_until 60 labelled_at_least 100 || fail "fewer than 100 prompts labelled after 60 s"
kill -INT "$US_PID"
wait_us
[ "$RC" -eq 130 ] || { show "$WORK/int1.err"; fail "exit status after SIGINT: expected 130, got $RC"; }
at_int=$(db_targets)
note "interrupted with $at_int of $N labelled"
[ "$at_int" -lt "$N" ] || fail "the run had finished before SIGINT; the test proves nothing"
assert_eq "$(db 'PRAGMA integrity_check;')" ok "workspace integrity after SIGINT"
# Nothing received was lost: every answer the teacher billed before the stop is in the workspace,
# or was still in flight (at most C of them).
sleep 0.3
billed_before=$(mock_stats billed_keys)
stored=$(db 'SELECT COUNT(*) FROM calls;')
assert_le "$stored" "$billed_before" "calls stored vs billed"
assert_le "$((billed_before - stored))" "$C" "answers billed but not stored after SIGINT"
expect_ok rerun2 label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts after the rerun"
db_labels >"$WORK/labels.got2"
cmp -s "$WORK/labels.ref" "$WORK/labels.got2" || fail "labels after SIGINT and rerun differ from the uninterrupted run"
assert_le "$(mock_stats keys_billed_more_than_once)" "$C" "keys billed twice after SIGINT and rerun"
echo "PASS: $TEST_NAME"
