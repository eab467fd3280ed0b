#!/usr/bin/env bash
# Issue 2: logged calls seed the cache for free. A workspace labelled through the mock exports
# chat-format JSONL; a fresh workspace imports it and then labels the same prompts without a
# single request, at $0, with the same labels; `run` then reports what the cache saved.
. "$(dirname "$0")/lib.sh"

N=200
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/a.json" output="$(json_quote "$WORK/a")"
expect_ok prompts_a prompts "$WORK/a.json"
expect_ok label_a label "$WORK/a.json"
expect_ok export cache export "$WORK/a.json" "$WORK/calls.jsonl"
assert_eq "$(wc -l <"$WORK/calls.jsonl")" "$N" "exported lines"
assert_eq "$(head -n 1 "$WORK/calls.jsonl" | json_get 'messages[#-1].role')" assistant \
  "each exported line ends with the assistant's answer"
grep -q "$OPENAI_API_KEY" "$WORK/calls.jsonl" && fail "the API key is in the export"

note "a fresh workspace, seeded from the log"
mock_reset
write_config "$WORK/b.json" output="$(json_quote "$WORK/b")"
expect_ok prompts_b prompts "$WORK/b.json"
expect_ok import cache import "$WORK/b.json" "$WORK/calls.jsonl"
assert_grep "$WORK/import.err" "imported $N calls" "import says how many calls it took"
expect_ok label_b label "$WORK/b.json"
assert_eq "$(mock_stats requests)" 0 "requests sent after importing every answer"
assert_eq "$(db "SELECT COUNT(*) FROM calls WHERE imported = 1;" "$WORK/b/understudy.db")" "$N" \
  "calls stored as imported"
assert_eq "$(db_spend "$WORK/b/understudy.db")" "0.0000000000" "money spent in the seeded workspace"
diff <(db_labels "$WORK/a/understudy.db") <(db_labels "$WORK/b/understudy.db") >/dev/null ||
  fail "labels from imported answers differ from the paid ones"

note "importing again skips what is cached"
expect_ok import2 cache import "$WORK/b.json" "$WORK/calls.jsonl"
assert_grep "$WORK/import2.err" "imported 0 calls .*$N already cached" "a second import adds nothing"

note "a malformed log line is refused with its line number, nothing imported"
write_config "$WORK/c.json" output="$(json_quote "$WORK/c")"
{ head -n 3 "$WORK/calls.jsonl"; echo '{"messages": [oops'; } >"$WORK/bad.jsonl"
run_us import3 cache import "$WORK/c.json" "$WORK/bad.jsonl"
[ "$RC" -ne 0 ] || fail "a malformed import succeeded"
assert_grep "$WORK/import3.err" 'bad\.jsonl:4' "the error names the file and line"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;' "$WORK/c/understudy.db")" 0 "calls kept from a bad file"
echo "PASS: $TEST_NAME"
