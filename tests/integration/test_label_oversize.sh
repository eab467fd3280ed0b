#!/usr/bin/env bash
# Issue 10, defect 9: a response body over 16 MiB fails with "the teacher's response was larger
# than 16 MiB" (not curl's "Failed writing received data"), without retries; a huge valid answer
# to a classify prompt is stored cut to the answer cap, and label says so.
. "$(dirname "$0")/lib.sh"

fresh() { rm -rf "$WORK/out"; }

N=4
gen_prompts "$N" "$WORK/prompts.jsonl"

note "defect 9: a body over 16 MiB fails with a plain message, without retries"
start_teacher --answer-bytes 17000000
write_config "$WORK/config.json"
expect_ok prompts9 prompts "$WORK/config.json"
run_us label9 label "$WORK/config.json" --set teacher.concurrency=2
[ "$RC" -eq 4 ] || { show "$WORK/label9.out" "$WORK/label9.err"; fail "huge body: label exit $RC, expected 4"; }
assert_grep "$WORK/label9.err" "the teacher's response was larger than 16 MiB" "huge body: the message"
assert_no_grep "$WORK/label9.err" "Failed writing" "huge body: curl's message"
assert_eq "$(mock_stats requests)" "$N" "huge body: requests (no retries)"
stop_mock
fresh

note "defect 9: a 2 MB valid answer to a classify prompt is stored cut, and said so"
start_teacher --answer-bytes 2000000
write_config "$WORK/config.json"
expect_ok prompts9b prompts "$WORK/config.json"
expect_ok label9b label "$WORK/config.json" --set teacher.concurrency=2
assert_grep "$WORK/label9b.out" "note: $N answers were longer than 4 KiB" "big answers: the note"
assert_le "$(db "SELECT MAX(length(text)) FROM targets;")" 4096 "big answers: target text"
assert_le "$(db "SELECT MAX(length(response)) FROM calls;")" 8192 "big answers: cached body"
assert_eq "$(db "SELECT COUNT(*) FROM calls WHERE json_valid(response);")" "$N" "big answers: bodies still JSON"
stop_mock
echo "PASS: $TEST_NAME"
