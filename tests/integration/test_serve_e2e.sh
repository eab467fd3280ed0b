#!/usr/bin/env bash
# Issue 11: `understudy serve` with the real binary and the mock teacher. Routing honesty (the
# requests the mock receives are exactly the ones routed to the teacher; cache hits cost nothing;
# the dollars in /metrics are the mock's bill), both routes streaming and not, the teacher's
# answers becoming train prompts, every request a workspace row, OpenAI-style errors with the
# right statuses, client keys, and a clean drain on SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

serve_setup 400
prompts_before=$(db_prompts)

note "refusals before listening"
run_us nokeys serve "$WORK/config.json" --host 0.0.0.0 --port 0
[ "$RC" -ne 0 ] || fail "binding 0.0.0.0 without serve.api_keys_env was accepted"
assert_grep "$WORK/nokeys.err" 'serve.api_keys_env' "the refusal says why"

note "start with a fixed threshold, no audit"
serve_start s1 --set serve.threshold=0.6 --set serve.audit_rate=0
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" 200 "/health once loaded"
curl -sf "$SERVE_URL/v1/models" | grep -q '"mock-teacher"' || fail "/v1/models lists the model"
mock_reset

note "routing honesty: 40 new task requests"
teacher=0 student=0
for i in $(seq 1 40); do
  text="new message $i: my card payment was declined at the shop"
  [ $((i % 2)) -eq 0 ] && text="hello $i, something odd about wifi and maybe my bill"
  code=$(chat r$i "$(task_body "$text")")
  assert_eq "$code" 200 "task request $i"
  r=$(route r$i)
  case $r in
    teacher) teacher=$((teacher + 1)) ;;
    student) student=$((student + 1)) ;;
    cache) ;;
    *) show "$WORK/r$i.hdr"; fail "request $i has route '$r'" ;;
  esac
  grep -qi '^x-understudy-confidence: [0-9.]*' "$WORK/r$i.hdr" || fail "request $i has no confidence header"
  [ "$(json_get object <"$WORK/r$i.json")" = chat.completion ] || { show "$WORK/r$i.json"; fail "request $i is not a chat.completion"; }
done
note "  student $student, teacher $teacher"
[ "$student" -gt 0 ] || fail "the student answered nothing at threshold 0.6"
assert_eq "$(mock_stats requests)" "$teacher" "requests the mock received = requests routed to the teacher"

note "exact repeats come from the cache for free"
for i in $(seq 1 40); do
  r=$(route r$i)
  [ "$r" = teacher ] || continue
  text="new message $i: my card payment was declined at the shop"
  [ $((i % 2)) -eq 0 ] && text="hello $i, something odd about wifi and maybe my bill"
  chat again$i "$(task_body "$text")" >/dev/null
  assert_eq "$(route again$i)" cache "a repeat of request $i"
done
assert_eq "$(mock_stats requests)" "$teacher" "no request reached the mock for a repeat"

note "not the task: passed through unchanged, then cached"
other='{"model":"mock-teacher","messages":[{"role":"user","content":"write a haiku about tea"}]}'
assert_eq "$(chat o1 "$other")" 200 "a request that is not the task"
assert_eq "$(route o1)" teacher "another request goes to the teacher"
assert_eq "$(chat o2 "$other")" 200 "its repeat"
assert_eq "$(route o2)" cache "its repeat comes from the cache"
teacher=$((teacher + 1))
assert_eq "$(mock_stats requests)" "$teacher" "the mock saw the other request once"

note "streaming, both routes"
for i in $(seq 1 40); do [ "$(route r$i)" = student ] && break; done
text="new message $i: my card payment was declined at the shop"
[ $((i % 2)) -eq 0 ] && text="hello $i, something odd about wifi and maybe my bill"
assert_eq "$(chat st1 "$(task_body "$text" mock-teacher true)")" 200 "streamed student answer"
assert_eq "$(route st1)" student "streamed student route"
grep -q '^data: {.*"chat.completion.chunk"' "$WORK/st1.json" || { show "$WORK/st1.json"; fail "no SSE chunks"; }
tail -n 2 "$WORK/st1.json" | grep -q '^data: \[DONE\]' || fail "the stream ends with [DONE]"
assert_eq "$(chat st2 "$(task_body "a brand new question about roaming abroad" mock-teacher true)")" 200 "streamed task request"
grep -q '^data: \[DONE\]' "$WORK/st2.json" || fail "the teacher's answer streams too"
[ "$(route st2)" = teacher ] && teacher=$((teacher + 1))

note "/metrics: the dollars equal the mock's bill"
spent=$(metric understudy_teacher_spent_usd_total)
assert_close "$spent" "$(mock_spend 2.5 10)" "teacher dollars in /metrics"
assert_eq "$(metric understudy_requests_total 'route="teacher"')" "$teacher" "teacher requests in /metrics"
metric understudy_threshold | grep -q '^0.6' || fail "/metrics shows the threshold in force"

note "errors: OpenAI-style objects with the right statuses"
assert_eq "$(chat e1 '{"model": "x", "messages": [')" 400 "truncated JSON"
assert_eq "$(json_get error.type <"$WORK/e1.json")" invalid_request_error "error type"
assert_eq "$(chat e2 '[1,2]')" 400 "not an object"
assert_eq "$(chat e3 '{"model":"x"}')" 400 "no messages"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$WORK/huge.txt"
code=$(curl -s -o "$WORK/e4.json" -w '%{http_code}' --data-binary @"$WORK/huge.txt" "$SERVE_URL/v1/chat/completions")
assert_eq "$code" 413 "a body over serve.max_body_bytes"
assert_eq "$(json_get error.code <"$WORK/e4.json")" request_too_large "413 code"
code=$(curl -s -o "$WORK/e5.json" -w '%{http_code}' "$SERVE_URL/v1/nothing")
assert_eq "$code" 404 "unknown route"
json_get error.message <"$WORK/e5.json" | grep -q 'Unknown request URL' || fail "404 message"
kill -0 "$SERVE_PID" || fail "the server died on bad requests"

note "SIGTERM: drain, every row written, exit 0"
answered=$(( $(metric understudy_requests_total 'route="student"') + $(metric understudy_requests_total 'route="teacher"') + $(metric understudy_requests_total 'route="cache"') + $(metric understudy_requests_total 'route="error"') ))
serve_stop TERM
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route != 'audit';")" "$answered" "a served row per request"
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route = 'teacher';")" "$teacher" "teacher rows"
n_new=$(db "SELECT COUNT(*) FROM prompts WHERE source = 'serve' AND split = 0;")
assert_eq "$n_new" "$((teacher - 1))" "each task answer of the teacher is a new train prompt"
assert_eq "$(db "SELECT COUNT(*) FROM prompts p JOIN targets t ON t.prompt_id = p.id WHERE p.source = 'serve';")" "$n_new" "with its target"
[ "$(db_prompts)" -gt "$prompts_before" ] || fail "no prompt was added"
assert_grep "$WORK/s1.err" 'serve: stopped' "the summary line"

note "report: the In production section"
expect_ok report report "$WORK/config.json"
assert_grep "$WORK/out/report.md" '^## In production' "report.md has the section"
assert_eq "$(json_get production.requests <"$WORK/out/report.json")" "$answered" "report.json counts every request"
assert_eq "$(json_get production.routes.teacher <"$WORK/out/report.json")" "$teacher" "teacher requests in the report"
assert_grep "$WORK/out/report.html" 'id="production"' "report.html has the panel"

note "the next train learns from production traffic"
expect_ok train2 train "$WORK/config.json"
assert_no_grep "$WORK/train2.out" 'up to date' "train sees the new prompts"

note "client keys"
export US_TEST_CLIENT_KEYS="key-one, key-two"
serve_start s2 --set serve.api_keys_env='"US_TEST_CLIENT_KEYS"' --set serve.threshold=0
code=$(curl -s -o "$WORK/a1.json" -w '%{http_code}' "$SERVE_URL/v1/models")
assert_eq "$code" 401 "no key"
assert_eq "$(json_get error.code <"$WORK/a1.json")" invalid_api_key "401 code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer key-two' "$SERVE_URL/v1/models")
assert_eq "$code" 200 "a listed key"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer key-three' "$SERVE_URL/v1/models")
assert_eq "$code" 401 "an unknown key"
grep -rq "$OPENAI_API_KEY" "$WORK"/*.json "$WORK"/*.hdr 2>/dev/null && fail "the teacher's key appears in a response"
serve_stop INT

note "budget reached: 429, and the student still answers"
serve_start s3 --set serve.threshold=0.6 --set teacher.budget_usd=0.000001
code=$(chat b1 "$(task_body "a never seen before message about a lost parcel 1")")
[ "$code" = 429 ] || [ "$(route b1)" = student ] || { show "$WORK/b1.json"; fail "budget: got $code"; }
[ "$code" = 429 ] && assert_eq "$(json_get error.code <"$WORK/b1.json")" budget_reached "429 code"
serve_stop TERM

note "teacher unreachable: 502"
stop_mock
serve_start s4 --set serve.threshold=1
code=$(chat u1 "$(task_body "another never seen message about a parcel")")
assert_eq "$code" 502 "the teacher is down"
assert_eq "$(json_get error.code <"$WORK/u1.json")" teacher_unreachable "502 code"
serve_stop TERM
echo "PASS: $TEST_NAME"
