# Helpers for the `understudy serve` tests (source after lib.sh): a trained workspace on the
# demo messages, the server on an ephemeral port, and Chat Completions requests for the task.

# serve_setup N: N demo messages as prompts, the mock answering with their labels, a config
# ($WORK/config.json) and `understudy run` (student.bin and report.json). Extra mock flags after N.
serve_setup() {
  local n=$1
  shift
  local src=${US_SOURCE_DIR:?}/demo/messages.jsonl
  head -n "$n" "$src" >"$WORK/prompts.jsonl"
  sed 's/"label":/"answer":/' "$WORK/prompts.jsonl" >"$WORK/answers.jsonl"
  SERVE_LABELS=$(sed -n 's/.*"label":"\([^"]*\)".*/\1/p' "$WORK/prompts.jsonl" | LC_ALL=C sort -u)
  local labels_json
  labels_json=$(printf '%s\n' "$SERVE_LABELS" | while read -r l; do json_quote "$l"; done | paste -sd, -)
  SERVE_LABELS_CSV=$(printf '%s\n' "$SERVE_LABELS" | paste -sd, -)
  SERVE_LABELS_JOINED=$(printf '%s\n' "$SERVE_LABELS" | paste -sd '|' - | sed 's/|/, /g')
  start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" "$@"
  # the serve tests route by the student's confidence on this small set; they test serving, so
  # the student trains with the settings as given (student.autotune would make it surer)
  write_config "$WORK/config.json" "task.labels=[$labels_json]" teacher.concurrency=16 \
    data.label_field='"label"' teacher.max_retries=2 teacher.timeout_s=5 student.autotune=false
  expect_ok run run "$WORK/config.json"
}

# serve_start NAME [understudy serve args...]: starts the server on an ephemeral port; sets
# SERVE_PID, SERVE_URL (http://127.0.0.1:PORT).
serve_start() {
  local name=$1
  shift
  rm -f "$WORK/$name.port"
  start_us "$name" serve "$WORK/config.json" --port 0 --port-file "$WORK/$name.port" "$@"
  SERVE_PID=$US_PID
  local _
  for _ in $(seq 1 300); do
    [ -s "$WORK/$name.port" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { show "$WORK/$name.err"; fail "serve did not start"; }
    sleep 0.05
  done
  [ -s "$WORK/$name.port" ] || { show "$WORK/$name.err"; fail "serve wrote no port file"; }
  SERVE_URL="http://127.0.0.1:$(cat "$WORK/$name.port")"
}

# serve_stop [SIGNAL]: signals the server (TERM by default) and checks it exits 0 within 30 s.
serve_stop() {
  kill -"${1:-TERM}" "$SERVE_PID"
  local _
  for _ in $(seq 1 600); do
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$SERVE_PID" 2>/dev/null && fail "serve did not stop within 30 s"
  wait_us "$SERVE_PID"
  [ "$RC" -eq 0 ] || fail "serve exited $RC on SIG${1:-TERM}"
}

# task_body TEXT [MODEL] [STREAM]: a Chat Completions request for the task with {text} = TEXT.
task_body() {
  local user=${US_TEMPLATE//\{labels\}/$SERVE_LABELS_JOINED}
  user=${user//\{text\}/$1}
  printf '{"model":%s,"stream":%s,"messages":[{"role":"system","content":%s},{"role":"user","content":%s}]}' \
    "$(json_quote "${2:-mock-teacher}")" "${3:-false}" "$(json_quote "$US_INSTRUCTIONS")" "$(json_quote "$user")"
}

# chat NAME BODY: POSTs BODY to /v1/chat/completions; the body to $WORK/NAME.json, headers to
# $WORK/NAME.hdr; prints the HTTP status.
chat() {
  curl -s -o "$WORK/$1.json" -D "$WORK/$1.hdr" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$2" "$SERVE_URL/v1/chat/completions"
}

# route NAME: the x-understudy-route header of a response.
route() {
  sed -n 's/^x-understudy-route: *\([a-z]*\).*/\1/Ip' "$WORK/$1.hdr" | head -n 1
}

# metric NAME [LABELS]: one value from /metrics.
metric() {
  local m=$1
  [ -z "${2:-}" ] || m="$1{$2}"
  curl -sf "$SERVE_URL/metrics" | awk -v m="$m" '$1 == m { print $2 }'
}
