#!/usr/bin/env bash
# Issue 10, defect 3: an answer that is not a label ("This is not billing.") is kept unmapped
# (raw answer stored, counted), never guessed; teacher.structured sends a JSON schema whose
# answer is an enum of the labels and reads {"answer": ...} back.
. "$(dirname "$0")/lib.sh"

fresh() { rm -rf "$WORK/out"; }

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
note "defect 3: the unmapped answers are counted in the report"
gen_prompts 200 "$WORK/prompts.jsonl" 7
sed -E '1,5s/"answer":"[^"]*"/"answer":"It is not billing."/' "$WORK/prompts.jsonl.answers.jsonl" \
  >"$WORK/answers5.jsonl"
start_teacher --answers "$WORK/answers5.jsonl"
write_config "$WORK/config.json"
expect_ok run3 run "$WORK/config.json"
assert_eq "$(db "SELECT COUNT(*) FROM targets WHERE label IS NULL AND text = 'It is not billing.';")" 5 \
  "unmapped answers in the workspace"
assert_grep "$WORK/out/report.md" "unparsed teacher answers \| 5 \|" "report.md: the unmapped count"
assert_eq "$(json_get data.unparsed <"$WORK/out/report.json")" 5 "report.json: data.unparsed"
stop_mock
echo "PASS: $TEST_NAME"
