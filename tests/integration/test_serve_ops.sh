#!/usr/bin/env bash
# Issue 11: operations. A newer student.bin (and SIGHUP) is swapped in while requests keep
# coming, and none is dropped; malformed, truncated, huge, slow and abandoned requests never
# bring the server down (run this under the ASan build: US_SANITIZE=ON); SIGINT drains.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"
# the abuse below writes to connections the server closes: EPIPE, not a dead test script
trap '' PIPE

serve_setup 300
serve_start o1 --set serve.threshold=0 --set serve.audit_rate=0 --set serve.reload_check_s=0.1 \
  --set serve.threads=4

note "hot reload under load: no request dropped"
body=$(task_body "my card payment was declined at the shop")
printf '%s' "$body" >"$WORK/body.json"
(
  for _ in $(seq 1 150); do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
      --data-binary @"$WORK/body.json" "$SERVE_URL/v1/chat/completions"
  done
) >"$WORK/load1.codes" &
load1=$!
(
  for _ in $(seq 1 150); do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
      -d "$(task_body "hello, something odd about wifi and maybe my bill" mock-teacher true)" \
      "$SERVE_URL/v1/chat/completions"
  done
) >"$WORK/load2.codes" &
load2=$!
for k in 1 2 3; do
  sleep 0.3
  cp "$WORK/out/student.bin" "$WORK/out/student.bin.new"
  touch -d "+$k seconds" "$WORK/out/student.bin.new"
  mv "$WORK/out/student.bin.new" "$WORK/out/student.bin"
done
sleep 0.3
kill -HUP "$SERVE_PID"
wait "$load1" "$load2"
assert_eq "$(sort -u "$WORK/load1.codes" "$WORK/load2.codes" | paste -sd, -)" 200 "every status during the reloads"
assert_eq "$(cat "$WORK/load1.codes" "$WORK/load2.codes" | wc -l)" 300 "every request answered"
reloads=$(metric understudy_student_reloads)
assert_ge "$reloads" 3 "reloads (three newer files and a SIGHUP)"

note "a broken student.bin is refused and the old one keeps answering"
printf 'not a model' >"$WORK/out/student.bin.bad"
touch -d '+10 seconds' "$WORK/out/student.bin.bad"
cp "$WORK/out/student.bin" "$WORK/student.good"
mv "$WORK/out/student.bin.bad" "$WORK/out/student.bin"
sleep 0.5
assert_eq "$(chat k1 "$body")" 200 "a request after a broken file appeared"
assert_grep "$WORK/o1.err" 'keeping the student in use' "the refusal is logged"
cp "$WORK/student.good" "$WORK/out/student.bin"

note "abuse: nothing a client sends brings the server down"
port=${SERVE_URL##*:}
raw() { # raw BYTES: sends BYTES on a fresh connection and closes it after 1 s
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
  printf '%b' "$1" >&3 || true
  timeout 1 cat <&3 >/dev/null 2>&1 || true
  exec 3<&- 3>&- || true
}
raw 'GARBAGE\r\n\r\n'
raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"model":'
raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'
raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n'
raw "GET /$(head -c 20000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\n\r\n"
raw "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: $(head -c 100000 /dev/zero | tr '\0' b)\r\n\r\n"
for junk in '{"model":1,"messages":"x"}' '{"model":"mock-teacher","messages":[{}]}' \
  '{"model":"mock-teacher","messages":[{"role":"user","content":[{"type":"image_url"}]}]}' \
  '{"model":"mock-teacher","messages":[{"role":"system","content":null},{"role":"user","content":7}]}' \
  "$(printf '{"model":"mock-teacher","messages":[{"role":"user","content":"\\u0000\xff\xfe"}]}')" \
  '"just a string"' 'null' '{}' '{"a":' "$(head -c 3000 /dev/zero | tr '\0' '[')"; do
  code=$(chat j "$junk")
  case $code in 200|400|404|413|502) ;; *) show "$WORK/j.json"; fail "junk '$junk' got $code" ;; esac
done
# a slow client: the body trickles in; another client is served meanwhile
(
  exec 4<>"/dev/tcp/127.0.0.1/$port"
  printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n' >&4
  for _ in 1 2 3 4 5 6 7 8 9 10; do printf '{' >&4; sleep 0.2; done
  exec 4<&- 4>&-
) &
slow=$!
sleep 0.3
assert_eq "$(chat k2 "$body")" 200 "served while a slow client trickles"
wait "$slow" || true
# a huge chunked body with no length
code=$(head -c 3000000 /dev/zero | tr '\0' x | curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @- "$SERVE_URL/v1/chat/completions")
assert_eq "$code" 413 "a huge chunked body"
kill -0 "$SERVE_PID" || fail "the server died"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$SERVE_URL/health")" 200 "healthy after the abuse"

note "SIGINT drains and exits 0"
serve_stop INT

note "SIGTERM with teacher requests in flight: each is answered, each row written"
stop_mock
start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" \
  --latency-ms 1500
serve_start o2 --set serve.threshold=1 --set teacher.base_url="\"$MOCK_URL\""
before=$(db "SELECT COUNT(*) FROM served;")
for k in 1 2 3 4 5; do
  (chat inflight$k "$(task_body "a message still in flight number $k")" >"$WORK/inflight$k.code") &
  BG_PIDS+=($!)
done
wait_until 10 sh -c "[ \"\$(curl -sf '$MOCK_ROOT/_stats' | sed -n 's/.*\"requests\":\\([0-9]*\\).*/\\1/p')\" = 5 ]" ||
  fail "the five requests did not reach the mock"
serve_stop TERM
for k in 1 2 3 4 5; do
  wait_until 10 test -s "$WORK/inflight$k.code" || fail "request $k got no answer"
  assert_eq "$(cat "$WORK/inflight$k.code")" 200 "in-flight request $k"
  assert_eq "$(route inflight$k)" teacher "in-flight request $k route"
done
assert_eq "$(db "SELECT COUNT(*) FROM served;")" "$((before + 5))" "a row for each in-flight request"
echo "PASS: $TEST_NAME"
