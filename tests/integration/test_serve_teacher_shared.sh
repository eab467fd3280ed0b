#!/usr/bin/env bash
# `understudy serve` with several serving threads sending teacher requests at once: what they
# share must hold across them. teacher.concurrency caps the requests in flight from every thread
# together; the budget is one cap for all of them (the mock's bill stays within it, /metrics
# matches the bill, nothing is paid twice, a refused request never reaches the teacher); and
# SIGTERM with teacher requests in flight from every thread lets each one finish, answer its
# client and write its rows before the server exits 0. (Written by the "lanes" branch, h-lane,
# where each serving thread drives its own teacher transport; it holds for main's one gateway.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

IN=1
OUT=10000 # a worst case (prompt bound and serve.max_tokens 16 of output) costs about $0.16
serve_setup 200
labels_json=$(printf '%s\n' "$SERVE_LABELS" | while read -r l; do json_quote "$l"; done | paste -sd, -)

# burst NAME N: N concurrent requests the server does not answer itself, each on its own
# connection; each status in $WORK/NAME<i>.code, each body in $WORK/NAME<i>.json.
burst() {
  seq 1 "$2" | xargs -P "$2" -I{} sh -c \
    'curl -s -o "$1/$2{}.json" -w "%{http_code}\n" --max-time 120 -H "Content-Type: application/json" \
       --data-binary "{\"model\":\"mock-teacher\",\"messages\":[{\"role\":\"user\",\"content\":\"$2 shared request {}\"}]}" \
       "$3/v1/chat/completions" >"$1/$2{}.code"' _ "$WORK" "$1" "$SERVE_URL"
}

in_flight_is() { [ "$(mock_stats in_flight)" = "$1" ]; }

# count NAME N CODE: how many of NAME's N requests got CODE.
count() {
  local k=0 i
  for i in $(seq 1 "$2"); do [ "$(cat "$WORK/$1$i.code")" = "$3" ] && k=$((k + 1)); done
  echo "$k"
}

note "teacher.concurrency 3 over 3 serving threads: 12 concurrent requests, at most 3 at the teacher"
start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" \
  --latency-ms 300 --price-input 2.5 --price-output 10
write_config "$WORK/config.json" "task.labels=[$labels_json]" data.label_field='"label"' \
  teacher.concurrency=3 teacher.timeout_s=10 teacher.max_retries=2
serve_start c0 --set serve.threads=3 --set serve.threshold=1 --set serve.audit_rate=0
burst conc 12
assert_eq "$(count conc 12 200)" 12 "requests answered"
assert_eq "$(mock_stats chat_requests)" 12 "requests the mock received"
assert_le "$(mock_stats max_in_flight)" 3 "requests at the teacher at once (teacher.concurrency)"
assert_ge "$(mock_stats max_in_flight)" 2 "requests at the teacher at once (they run together)"
assert_close "$(metric understudy_teacher_spent_usd_total)" "$(mock_stats billed_usd)" \
  "dollars in /metrics against the mock's bill"
# what the server added to each answer: its time less the teacher's 0.3 s on the wire, so the
# waits for a slot stay in (9 of the 12 waited 0.3, 0.6 or 0.9 s: about 5.4 s in all) and the
# teacher's own time does not
assert_eq "$(metric understudy_teacher_added_seconds_count)" 12 "answers in the added-time histogram"
added=$(metric understudy_teacher_added_seconds_sum)
total=$(metric understudy_request_duration_seconds_sum 'route="teacher"')
assert_le "$added" "$(awk -v t="$total" 'BEGIN { print t - 12 * 0.3 }')" \
  "added time ($added s) without the teacher's 12 x 0.3 s (of $total s in all)"
assert_ge "$added" 4.5 "added time ($added s) with the waits for teacher.concurrency"
serve_stop

note "one budget for two serving threads: 24 concurrent requests against \$0.5 left"
spent_before=$(db_spend)
extra=0.5
budget=$(awk -v a="$spent_before" -v b="$extra" 'BEGIN { printf "%.10f", a + b }')
start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" \
  --latency-ms 200 --price-input $IN --price-output $OUT
write_config "$WORK/config.json" "task.labels=[$labels_json]" data.label_field='"label"' \
  teacher.concurrency=16 teacher.timeout_s=10 teacher.max_retries=2 teacher.budget_usd="$budget" \
  teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT
serve_start b0 --set serve.threads=2 --set serve.threshold=1 --set serve.audit_rate=0 \
  --set serve.max_tokens=16
burst budget 24
n200=$(count budget 24 200)
n429=$(count budget 24 429)
note "  200: $n200, 429: $n429"
assert_eq "$((n200 + n429))" 24 "every request answered or refused by the budget"
assert_ge "$n200" 1 "requests answered"
assert_ge "$n429" 1 "requests refused by the budget"
billed=$(mock_stats billed_usd)
assert_le "$billed" "$extra" "the teacher's bill against the cap"
assert_eq "$(mock_stats chat_requests)" "$n200" "requests the mock received (a refused one is never sent)"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "requests billed twice"
assert_close "$(metric understudy_teacher_spent_usd_total)" "$billed" \
  "dollars in /metrics against the mock's bill"
assert_le "$(metric understudy_teacher_in_flight_worst_usd)" 1e-9 "nothing reserved once every request is answered"
serve_stop
after=$(db_spend)
assert_close "$(awk -v a="$after" -v b="$spent_before" 'BEGIN { printf "%.10f", a - b }')" "$billed" \
  "what the workspace recorded against the mock's bill"

note "SIGTERM with a teacher request in flight from every thread: each one answered, its rows written"
start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" \
  --latency-ms 1500
write_config "$WORK/config.json" "task.labels=[$labels_json]" data.label_field='"label"' \
  teacher.concurrency=16 teacher.timeout_s=10 teacher.max_retries=2
teacher_rows=$(db "SELECT COUNT(*) FROM served WHERE route = 'teacher';")
calls=$(db "SELECT COUNT(*) FROM calls;")
serve_start d0 --set serve.threads=2 --set serve.threshold=1 --set serve.audit_rate=0
burst drain 8 &
burst_pid=$!
wait_until 10 in_flight_is 8 || fail "the 8 requests did not reach the teacher"
serve_stop
wait "$burst_pid"
assert_eq "$(count drain 8 200)" 8 "requests in flight at SIGTERM answered"
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route = 'teacher';")" "$((teacher_rows + 8))" \
  "served rows written before the exit"
assert_eq "$(db "SELECT COUNT(*) FROM calls;")" "$((calls + 8))" "answers stored before the exit"
