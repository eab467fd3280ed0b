#!/usr/bin/env bash
# Issue 11 (teacher route cost): the server keeps the keys of the stored answers in memory, so a
# request whose answer is not stored skips the workspace read; what it must still find: answers
# stored before it started (labelling's), its own once they are on disk (the recent table is
# cleared then), and answers another process stores while it runs (`cache import`). The paid
# answers are written while the server runs (several per transaction), not only at the stop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

serve_setup 60
serve_start s1 --set serve.threshold=1 --set serve.audit_rate=0
mock_reset

note "an answer labelling stored before the start is a cache hit"
first=$(head -n 1 "$WORK/prompts.jsonl" | json_get text)
assert_eq "$(chat l1 "$(task_body "$first")")" 200 "a labelled prompt's task request"
assert_eq "$(route l1)" cache "labelling's answer is found"
assert_eq "$(mock_stats requests)" 0 "requests the mock received"

note "a paid answer is in the workspace while the server runs, then still a cache hit"
calls_before=$(db 'SELECT COUNT(*) FROM calls;')
other='{"model":"mock-teacher","messages":[{"role":"user","content":"name three teas"}]}'
assert_eq "$(chat o1 "$other")" 200 "a request that is not the task"
assert_eq "$(route o1)" teacher "it goes to the teacher"
stored() { [ "$(db 'SELECT COUNT(*) FROM calls;')" -gt "$calls_before" ]; }
wait_until 30 stored || fail "the teacher's answer is not in the workspace 30 s later"
for i in 1 2 3; do
  assert_eq "$(chat o2_$i "$other")" 200 "its repeat $i"
  assert_eq "$(route o2_$i)" cache "repeat $i comes from the workspace"
done
assert_eq "$(mock_stats requests)" 1 "the mock saw the request once"

note "an answer another process stores while the server runs is found"
text="a message nobody has labelled yet, about a lost card"
user=${US_TEMPLATE//\{labels\}/$SERVE_LABELS_JOINED}
user=${user//\{text\}/$text}
label=$(printf '%s\n' "$SERVE_LABELS" | head -n 1)
printf '{"messages":[{"role":"system","content":%s},{"role":"user","content":%s},{"role":"assistant","content":%s}]}\n' \
  "$(json_quote "$US_INSTRUCTIONS")" "$(json_quote "$user")" "$(json_quote "$label")" >"$WORK/import.jsonl"
expect_ok import cache import "$WORK/config.json" "$WORK/import.jsonl"
assert_grep "$WORK/import.err" "imported 1 calls" "the answer is imported"
# no wait: a key not in the server's set is looked for again once the workspace changed
assert_eq "$(chat i1 "$(task_body "$text")")" 200 "the imported prompt's task request"
assert_eq "$(route i1)" cache "the imported answer is found"
assert_eq "$(json_get 'choices[0].message.content' <"$WORK/i1.json")" "$label" "the imported answer"
assert_eq "$(mock_stats requests)" 1 "requests the mock received"

note "new task requests still reach the teacher, once each"
for i in 1 2 3 4 5; do
  assert_eq "$(chat n$i "$(task_body "fresh message $i about my account")")" 200 "new request $i"
  assert_eq "$(route n$i)" teacher "new request $i goes to the teacher"
done
assert_eq "$(mock_stats requests)" 6 "requests the mock received"
serve_stop
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route = 'teacher';")" 6 "teacher rows"
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route = 'cache';")" 5 "cache rows"
echo "PASS: $TEST_NAME"
