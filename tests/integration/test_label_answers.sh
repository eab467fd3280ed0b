#!/usr/bin/env bash
# Issue 10, defects 3, 4, 5 and 9 through the real binary and the mock teacher:
# - an escaped NUL (\u0000) in a JSONL prompt is refused like a raw NUL byte, not cut short;
# - an answer that is not a label ("This is not billing.") is kept unmapped, never guessed;
#   teacher.structured sends a JSON schema of the labels and reads {"answer": ...} back;
# - prompts left unlabelled after their retries (400 to everything, an unreachable server)
#   make `label` exit 4 with the most common cause on stderr, and `run` stop at label with it;
# - a body over 16 MiB fails with "larger than 16 MiB", and a huge valid answer is stored cut.
. "$(dirname "$0")/lib.sh"

fresh() { rm -rf "$WORK/out"; }

note "defect 5: an escaped NUL in JSONL is refused like a raw NUL byte"
printf '{"text":"fine"}\n{"text":"nul\\u0000byte"}\n' >"$WORK/prompts.jsonl"
write_config "$WORK/config.json"
run_us nul_escape prompts "$WORK/config.json"
[ "$RC" -eq 1 ] || { show "$WORK/nul_escape.out" "$WORK/nul_escape.err"; fail "escaped NUL: exit $RC, expected 1"; }
assert_grep "$WORK/nul_escape.err" 'prompts\.jsonl:2: .*\\u0000' "escaped NUL: the line and the escape"
if [ -f "$WORK/out/understudy.db" ]; then
  assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE text = 'nul';")" 0 "a prompt cut at the NUL"
fi
fresh
printf '{"text":"fine"}\n{"text":"nul\0byte"}\n' >"$WORK/prompts.jsonl"
run_us nul_raw prompts "$WORK/config.json"
[ "$RC" -eq 1 ] || { show "$WORK/nul_raw.err"; fail "raw NUL: exit $RC, expected 1"; }
assert_grep "$WORK/nul_raw.err" 'prompts\.jsonl:2' "raw NUL: the line"
fresh

N=20
gen_prompts "$N" "$WORK/prompts.jsonl"

note "defect 3: an answer that negates a label is unmapped, the raw answer kept"
start_teacher --answer-text "This is not billing."
write_config "$WORK/config.json"
expect_ok prompts3 prompts "$WORK/config.json"
expect_ok label3 label "$WORK/config.json"
assert_eq "$(db "SELECT COUNT(*) FROM targets WHERE label IS NOT NULL;")" 0 "negated answers mapped to a label"
assert_eq "$(db "SELECT COUNT(*) FROM targets WHERE status = 1 AND text = 'This is not billing.';")" "$N" \
  "unmapped answers kept raw"
assert_grep "$WORK/label3.out" "$N answers match no label" "the unmapped count"
stop_mock
fresh

note "defect 3: teacher.structured sends an enum of the labels and reads {\"answer\": ...}"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --log-requests "$WORK/requests.log"
write_config "$WORK/config.json" teacher.structured=true
expect_ok prompts_s prompts "$WORK/config.json"
expect_ok label_s label "$WORK/config.json"
assert_grep "$WORK/requests.log" '"response_format":\{"json_schema":\{"name":"label","schema":\{"additionalProperties":false,"properties":\{"answer":\{"enum":\["billing","tech","account","other"\]' \
  "the schema in the request"
assert_eq "$(db "SELECT COUNT(*) FROM calls WHERE json_extract(response, '\$.choices[0].message.content') LIKE '{\"answer\":%';")" "$N" \
  "structured answers"
diff <(db_text_labels) "$WORK/prompts.jsonl.expected" >"$WORK/structured.diff" ||
  { show "$WORK/structured.diff"; fail "structured answers mapped to the wrong labels"; }
stop_mock
fresh

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

note "defect 9: a body over 16 MiB fails with a plain message, without retries"
start_teacher --answer-bytes 17000000
write_config "$WORK/config.json"
expect_ok prompts9 prompts "$WORK/config.json" # 20 prompts
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
