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

note "a second server on the same port is refused, naming the port and the fix"
port=${SERVE_URL##*:}
run_us taken serve "$WORK/config.json" --port "$port"
[ "$RC" -ne 0 ] || fail "a second server on port $port started"
assert_grep "$WORK/taken.err" "cannot listen on 127.0.0.1 port $port" "the refusal names the port"
assert_grep "$WORK/taken.err" "with --port" "the refusal says what to do"

note "--host ::1 (IPv6 loopback) serves"
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  rm -f "$WORK/v6.port"
  start_us v6 serve "$WORK/config.json" --host ::1 --port 0 --port-file "$WORK/v6.port"
  v6_pid=$US_PID
  wait_until 15 test -s "$WORK/v6.port" || { show "$WORK/v6.err"; fail "serve --host ::1 wrote no port file"; }
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://[::1]:$(cat "$WORK/v6.port")/health")" 200 \
    "/health over IPv6"
  kill -TERM "$v6_pid"
  wait_us "$v6_pid"
  assert_eq "$RC" 0 "serve --host ::1 exit status after SIGTERM"
else
  note "skipped: this machine has no IPv6 loopback"
fi

note "out of file descriptors: the connections wait, a warning says what to raise, service resumes"
rm -f "$WORK/fd.port"
(ulimit -n 64 && exec "$US_BIN" serve "$WORK/config.json" --port 0 --port-file "$WORK/fd.port") \
  >"$WORK/fd.out" 2>"$WORK/fd.err" &
fd_pid=$!
BG_PIDS+=("$fd_pid")
wait_until 15 test -s "$WORK/fd.port" || { show "$WORK/fd.err"; fail "serve (ulimit -n 64) wrote no port file"; }
python3 - "$(cat "$WORK/fd.port")" <<'PY'
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(100)]
time.sleep(0.5)
for s in socks:
    s.close()
PY
assert_grep "$WORK/fd.err" "ulimit -n" "the warning names the limit to raise"
assert_eq "$(grep -c 'cannot accept a connection' "$WORK/fd.err")" 1 "the warning, once"
assert_eq "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$WORK/fd.port")/health")" \
  200 "/health once the connections closed"
kill -TERM "$fd_pid"
wait_us "$fd_pid"
assert_eq "$RC" 0 "exit status after SIGTERM"

note "a burst of connections is spread over the serving threads"
# 16 connections opened at once, as a client pool or wrk does: each serving thread takes its
# share (libmicrohttpd's own accept let the first thread awake take most of the burst)
python3 - "$port" >"$WORK/spread.txt" <<'PY'
import re, socket, sys
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
for s in socks:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
for s in socks:
    s.recv(4096)
m = socket.create_connection(("127.0.0.1", port))
m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
text = b""
while True:
    chunk = m.recv(65536)
    if not chunk:
        break
    text += chunk
found = re.findall(r'^understudy_connections\{thread="\d+"\} (\d+)$', text.decode(), re.M)
print(" ".join(found))
PY
read -r -a spread <"$WORK/spread.txt"
assert_eq "${#spread[@]}" 4 "serving threads holding connections (serve.threads 4): ${spread[*]}"
total=0 most=0
for c in "${spread[@]}"; do
  total=$((total + c))
  [ "$c" -gt "$most" ] && most=$c
done
assert_eq "$total" 17 "open connections counted (16 and the scrape's own): ${spread[*]}"
assert_le "$most" 8 "the busiest thread's share of 17 connections: ${spread[*]}"

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
