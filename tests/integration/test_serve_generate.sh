#!/usr/bin/env bash
# Issue 11: `understudy serve` for a generate task: the language-model student answers at
# threshold 0 (its confidence, the exponent of the mean token log-probability, in [0, 1]), the
# teacher at threshold 1, and the report's threshold is read when serve.threshold is unset.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

LM=(student.preset='"nano"' student.steps=4 student.batch_size=4 student.warmup_steps=1
  student.vocab_size=300 student.threads=1 teacher.max_tokens=64)
awk 'BEGIN {
  split("apples pears plums figs limes", item, " ");
  for (i = 1; i <= 200; i++) {
    t = sprintf("order %d: %d %s", i, (i * 7) % 13 + 1, item[i % 5 + 1]);
    printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/prompts.jsonl";
    printf "{\"text\":\"%s\",\"answer\":\"item %s\"}\n", t, item[i % 5 + 1] > "'"$WORK"'/answers.jsonl";
  }
}'
start_mock --answers "$WORK/answers.jsonl"
write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}","instructions":""}' "${LM[@]}"
expect_ok run run "$WORK/config.json"

body() {
  printf '{"model":"mock-teacher","messages":[{"role":"user","content":%s}],"stream":%s}' \
    "$(json_quote "$1")" "${2:-false}"
}

note "the report's threshold"
serve_start g0
assert_grep "$WORK/g0.err" 'from report.json' "the threshold comes from the report"
serve_stop TERM

note "threshold 0: the language model answers"
serve_start g1 --set serve.threshold=0 --set serve.audit_rate=0
assert_eq "$(chat s1 "$(body "order 999: 3 figs")")" 200 "a generate request"
assert_eq "$(route s1)" student "the student answers"
conf=$(sed -n 's/^x-understudy-confidence: *\([0-9.]*\).*/\1/Ip' "$WORK/s1.hdr")
assert_ge "$conf" 0 "confidence"
assert_le "$conf" 1 "confidence"
json_get choices[0].message.content <"$WORK/s1.json" >/dev/null || fail "no content"
assert_eq "$(chat s2 "$(body "order 998: 2 plums" true)")" 200 "streamed"
grep -q '^data: \[DONE\]' "$WORK/s2.json" || fail "the stream ends with [DONE]"
serve_stop TERM

note "threshold 1: the teacher answers"
mock_reset
serve_start g2 --set serve.threshold=1
assert_eq "$(chat t1 "$(body "order 997: 5 limes")")" 200 "a generate request"
assert_eq "$(route t1)" teacher "the teacher answers"
assert_eq "$(mock_stats requests)" 1 "one request reached the mock"
serve_stop TERM
assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE source = 'serve';")" 1 "the teacher's answer is a train prompt"
echo "PASS: $TEST_NAME"
